"""
Small pieces the data-access modules share: look-ups, pages and partial updates.

ISP-owned rows are always fetched with `isp_id` in the WHERE clause (the `where` mapping
the callers pass holds it), so a row of another ISP is simply not found.

The statements are plain text made once per table and set of columns and kept: a call's
record and its settlement go through here on every call, and psycopg2's composed SQL is
quoted again, identifier by identifier, each time it is sent.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

from wevoip.store.database import Row, Tx
from wevoip.store.errors import Invalid, NotFound

Checks = dict[str, Callable[[str, Any], Any]]


def _name(identifier: str) -> str:
    """An identifier quoted as SQL has it (what PostgreSQL's own quote_ident does)."""
    return '"' + identifier.replace('"', '""') + '"'


def _where(columns: tuple[str, ...]) -> str:
    return " and ".join(f"{_name(column)} = %s" for column in columns)


@lru_cache(maxsize=512)
def _select_sql(table: str, where: tuple[str, ...], lock: bool) -> str:
    return f"select * from {_name(table)} where {_where(where)}{' for update' if lock else ''}"


@lru_cache(maxsize=512)
def _page_sql(table: str, where: tuple[str, ...]) -> str:
    return f"select * from {_name(table)} where {_where(where) if where else 'true'} order by id limit %s offset %s"


@lru_cache(maxsize=512)
def _update_sql(table: str, columns: tuple[str, ...], where: tuple[str, ...]) -> str:
    assignments = ", ".join(f"{_name(column)} = %s" for column in columns)
    return f"update {_name(table)} set {assignments} where {_where(where)} returning *"


@lru_cache(maxsize=512)
def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    return (f"insert into {_name(table)} ({', '.join(map(_name, columns))})"
            f" values ({', '.join(['%s'] * len(columns))}) returning *")


async def fetch_row(tx: Tx, table: str, where: dict[str, Any], what: str,
                    *, lock: bool = False) -> Row:
    row = await tx.fetch_one(_select_sql(table, tuple(where), lock), tuple(where.values()))
    if row is None:
        raise NotFound(what)
    return row


def check_window(limit: int, offset: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise Invalid("limit", "must be from 1 to 1000")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise Invalid("offset", "must be a whole number, not negative")


async def fetch_page(tx: Tx, table: str, where: dict[str, Any], limit: int, offset: int) -> list[Row]:
    check_window(limit, offset)
    return await tx.fetch(_page_sql(table, tuple(where)), (*where.values(), limit, offset))


def checked(values: dict[str, Any], checks: Checks, what: str) -> dict[str, Any]:
    """Each value through its field's check; a field without one is refused by name."""
    for name in values:
        if name not in checks:
            raise Invalid(name, f"is not a field of a {what} that can be set here")
    return {name: checks[name](name, value) for name, value in values.items()}


async def update_row(tx: Tx, table: str, where: dict[str, Any], what: str,
                     changes: dict[str, Any], checks: Checks) -> Row:
    values = checked(changes, checks, what)
    if not values:
        return await fetch_row(tx, table, where, what)
    row = await tx.fetch_one(_update_sql(table, tuple(values), tuple(where)), (*values.values(), *where.values()))
    if row is None:
        raise NotFound(what)
    return row


async def insert_row(tx: Tx, table: str, values: dict[str, Any]) -> Row:
    return await tx.fetch_one(_insert_sql(table, tuple(values)), tuple(values.values()))
