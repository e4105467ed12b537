"""
Failed logins, counted per source address and per account over a sliding window.

Kept in PostgreSQL so that every node counts the same failures: an attacker spreading
guesses over the nodes behind a load balancer gains nothing.
"""

from __future__ import annotations

import datetime

from wevoip.store.database import Tx


async def record_failure(tx: Tx, keys: list[str]) -> None:
    await tx.execute("insert into login_failures (key) select unnest(%s::text[])", (keys,))


async def recent_failures(tx: Tx, keys: list[str], window: datetime.timedelta) -> dict[str, int]:
    rows = await tx.fetch(
        "select key, count(*) as n from login_failures where key = any(%s) and at > now() - %s"
        " group by key", (keys, window))
    return {row["key"]: row["n"] for row in rows}


async def clear_failures(tx: Tx, key: str) -> None:
    """A good login forgets the account's failures (not the source's)."""
    await tx.execute("delete from login_failures where key = %s", (key,))


async def forget_old_failures(tx: Tx, window: datetime.timedelta) -> int:
    return await tx.execute("delete from login_failures where at <= now() - %s", (window,))
