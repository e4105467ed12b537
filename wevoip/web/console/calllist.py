"""
The call list of a tenant or a subscriber: a search form (GET, so a search is a link that
can be kept), the table, and the same rows as CSV.
"""

from __future__ import annotations

import csv
import datetime
import io
from urllib.parse import urlencode

from wevoip.store import calllog
from wevoip.store.errors import Invalid
from wevoip.web.console.context import Ctx, Download
from wevoip.web.csvrows import cell
from wevoip.web.console.widgets import Field, Form, Table

_FILTERS = ("since", "until", "number", "direction", "disposition")
COLUMNS = [("started", "Started (UTC)"), ("direction", "Direction"), ("username", "Subscriber"),
           ("caller", "From"), ("callee", "To"), ("talk", "Talk time"), ("result", "Result"),
           ("media", "Media"), ("price", "Price")]
# What the relay saw of an answered call's media; nothing shown when it did not measure.
MEDIA = {"both": "both ways", "caller_only": "one way: only the caller was heard",
         "callee_only": "one way: only the callee was heard", "none": "no media", None: ""}


def _day(name: str, text: str) -> datetime.datetime | None:
    if not text:
        return None
    try:
        day = datetime.date.fromisoformat(text)
    except ValueError:
        raise Invalid(name, "must be a date as YYYY-MM-DD") from None
    return datetime.datetime.combine(day, datetime.time(), datetime.timezone.utc)


def filters(ctx: Ctx) -> dict:
    until = _day("until", ctx.query("until"))
    return {"since": _day("since", ctx.query("since")),
            "until": until + datetime.timedelta(days=1) if until else None,  # the whole last day
            "number": ctx.query("number"), "direction": ctx.query("direction"),
            "disposition": ctx.query("disposition")}


def _talk(milliseconds: int) -> str:
    seconds = milliseconds // 1000
    return f"{seconds // 60}:{seconds % 60:02d}"


def shaped(rows: list[dict]) -> list[dict]:
    for row in rows:
        row["started"] = f"{row['started_at']:%Y-%m-%d %H:%M:%S}"
        row["caller"] = row["caller_e164"] or row["caller_dialled"]
        row["callee"] = row["callee_e164"] or row["callee_dialled"]
        row["talk"] = _talk(row["talk_ms"])
        row["media"] = MEDIA[row["media_flow"]]
        row["result"] = row["disposition"]
        if row["disposition"] == "refused":     # why: what the caller was answered
            row["result"] = f"refused {row['sip_code'] or ''} {row['reason']}".replace("  ", " ").strip()
    return rows


async def search(ctx: Ctx, **scope) -> list[dict]:
    """The rows, or none with the error shown by the search form."""
    try:
        return shaped(await ctx.tx(calllog.search_calls, ctx.isp_id, **scope, **filters(ctx)))
    except Invalid as error:
        ctx.error, ctx.error_field, ctx.status = f"{error.field.capitalize()} {error.problem}.", error.field, 422
        return []


def sections(ctx: Ctx, rows: list[dict], action: str) -> list:
    query = urlencode({name: ctx.query(name) for name in _FILTERS if ctx.query(name)})
    options = [("", "(any)")]
    return [Form(action, "Search", [
        Field("since", "From day", "date", ctx.query("since")),
        Field("until", "To day", "date", ctx.query("until")),
        Field("number", "Number", value=ctx.query("number"), help="Any part of either number."),
        Field("direction", "Direction", "select", ctx.query("direction"),
              options + [(d, d) for d in calllog.DIRECTIONS]),
        Field("disposition", "Result", "select", ctx.query("disposition"),
              options + [(d, d.replace("_", " ")) for d in calllog.DISPOSITIONS])], method="get"),
        Table(COLUMNS, rows, empty="No calls match.", csv=f"{action}.csv" + (f"?{query}" if query else ""))]


def as_csv(rows: list[dict], filename: str) -> Download:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([label for _, label in COLUMNS])
    for row in rows:
        writer.writerow([cell(row[key]) for key, _ in COLUMNS])
    return Download("text/csv; charset=utf-8", filename, out.getvalue().encode("utf-8"))
