"""Rows as CSV, the same bytes whether the API or a console sends them, and safe to open
in a spreadsheet: text that would run as a formula is quoted."""

from __future__ import annotations

import csv
import io


def cell(value) -> str:
    """Text a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not text.lstrip("+-").replace(".", "").isdigit():
        return "'" + text
    return text


def rows_csv(rows: list[dict]) -> bytes:
    """A header of the rows' keys, then one line per row; None is an empty cell."""
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\r\n")
        writer.writeheader()
        writer.writerows({key: cell(value) for key, value in row.items()} for row in rows)
    return out.getvalue().encode()
