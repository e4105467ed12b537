"""
Small pieces the data-access modules share: look-ups, pages and partial updates.

ISP-owned rows are always fetched with `isp_id` in the WHERE clause (the `where` mapping
the callers pass holds it), so a row of another ISP is simply not found.
"""

from __future__ import annotations

from typing import Any, Callable

from psycopg2 import sql

from wevoip.store.database import Row, Tx
from wevoip.store.errors import Invalid, NotFound

Checks = dict[str, Callable[[str, Any], Any]]


def _where(where: dict[str, Any]) -> sql.Composable:
    return sql.SQL(" and ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in where)


async def fetch_row(tx: Tx, table: str, where: dict[str, Any], what: str,
                    *, lock: bool = False) -> Row:
    query = sql.SQL("select * from {} where {}{}").format(
        sql.Identifier(table), _where(where), sql.SQL(" for update" if lock else ""))
    row = await tx.fetch_one(query, tuple(where.values()))
    if row is None:
        raise NotFound(what)
    return row


async def fetch_page(tx: Tx, table: str, where: dict[str, Any], limit: int, offset: int) -> list[Row]:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise Invalid("limit", "must be from 1 to 1000")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise Invalid("offset", "must be a whole number, not negative")
    condition = _where(where) if where else sql.SQL("true")
    query = sql.SQL("select * from {} where {} order by id limit %s offset %s").format(
        sql.Identifier(table), condition)
    return await tx.fetch(query, (*where.values(), limit, offset))


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
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = %s").format(sql.Identifier(name)) for name in values)
    row = await tx.fetch_one(
        sql.SQL("update {} set {} where {} returning *").format(
            sql.Identifier(table), assignments, _where(where)),
        (*values.values(), *where.values()))
    if row is None:
        raise NotFound(what)
    return row


async def insert_row(tx: Tx, table: str, values: dict[str, Any]) -> Row:
    query = sql.SQL("insert into {} ({}) values ({}) returning *").format(
        sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, values)),
        sql.SQL(", ").join(sql.Placeholder() * len(values)))
    return await tx.fetch_one(query, tuple(values.values()))
