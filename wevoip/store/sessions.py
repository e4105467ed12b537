"""
Console sessions at rest: the cookie holds a random id, this table its SHA-256.

Kept in PostgreSQL rather than in a node's memory, so a session survives a restart and
works on every node behind a load balancer. A session ends at its absolute expiry, after
an idle time, at logout, or when its account is deleted (foreign keys cascade).
"""

from __future__ import annotations

import datetime
from typing import Any

from wevoip.store.database import Row, Tx
from wevoip.store.rows import insert_row

ROLES = ("platform", "isp", "customer", "subscriber")


async def create_session(tx: Tx, digest: bytes, role: str, csrf_token: str, lifetime: datetime.timedelta,
                         **owner: Any) -> Row:
    """`owner` names the account: isp_id, isp_admin_id, customer_id, subscriber_id ..."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    return await insert_row(tx, "web_sessions", {
        "id_sha256": digest, "role": role, "csrf_token": csrf_token,
        "expires_at": await tx.fetch_value("select now() + %s", (lifetime,)), **owner})


TOUCH_EVERY = datetime.timedelta(minutes=1)


async def live_session(tx: Tx, digest: bytes, idle: datetime.timedelta) -> Row | None:
    """The session; None when it is unknown, expired, idle too long, or its customer is
    suspended (a suspended customer's people are logged out at once). Its last use is
    written at most once a minute, so most page loads only read."""
    row = await tx.fetch_one(
        "select s.*, s.last_seen_at < now() - %s as stale from web_sessions s where id_sha256 = %s"
        " and expires_at > now() and last_seen_at > now() - %s"
        " and not exists (select 1 from customers c where c.id = s.customer_id"
        "                 and c.status = 'SUSPENDED' and s.impersonator_id is null)", (TOUCH_EVERY, digest, idle))
    if row is not None and row.pop("stale"):
        await tx.execute("update web_sessions set last_seen_at = now() where id_sha256 = %s", (digest,))
    return row


async def end_session(tx: Tx, digest: bytes) -> int:
    return await tx.execute("delete from web_sessions where id_sha256 = %s", (digest,))


async def delete_expired_sessions(tx: Tx) -> int:
    return await tx.execute("delete from web_sessions where expires_at <= now()")
