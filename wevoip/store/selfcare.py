"""
What a subscriber changes about itself in the self-care pages, its web password, and the
look-up that logs a subscriber in. (Migration 0035's `subscriber_settings`, forwarding and
voicemail, is kept but neither read nor written: the call path serves neither yet.)
"""

from __future__ import annotations

from wevoip.store.database import Row, Tx
from wevoip.store.errors import Invalid, NotFound
from wevoip.store.rows import fetch_row
from wevoip.store.subscribers import checked_web_username


async def set_web_password(tx: Tx, isp_id: int, subscriber_id: int, password_hash: str) -> None:
    count = await tx.execute(
        "update subscribers set web_password_hash = %s where isp_id = %s and id = %s"
        " and web_username is not null", (password_hash, isp_id, subscriber_id))
    if count != 1:
        raise Invalid("password", "this subscriber has no web login")


async def set_web_login(tx: Tx, isp_id: int, subscriber_id: int, web_username: str | None,
                        password_hash: str | None) -> None:
    """The administrator gives (or with None takes away) a subscriber's web login."""
    if (web_username is None) != (password_hash is None):
        raise Invalid("web_password", "a web login needs both a username and a password")
    if web_username is not None:
        web_username = checked_web_username("web_username", web_username)
    count = await tx.execute("update subscribers set web_username = %s, web_password_hash = %s"
                             " where isp_id = %s and id = %s", (web_username, password_hash, isp_id, subscriber_id))
    if count != 1:
        raise NotFound("subscriber")


async def web_password_hash(tx: Tx, isp_id: int, subscriber_id: int) -> str | None:
    row = await fetch_row(tx, "subscribers", {"isp_id": isp_id, "id": subscriber_id}, "subscriber")
    return row["web_password_hash"]


async def subscriber_for_login(tx: Tx, domain: str, web_username: str) -> Row | None:
    """Sipwise's /login/subscriber: a web username within a tenant's SIP domain."""
    return await tx.fetch_one(
        "select s.id, s.isp_id, s.customer_id, s.tenant_id, s.web_password_hash, c.status"
        " from subscribers s join tenants t on t.id = s.tenant_id join domains d on d.id = t.domain_id"
        " join customers c on c.id = s.customer_id"
        " where d.name = %s and s.web_username = %s and s.web_password_hash is not null",
        (domain.strip().lower().rstrip("."), web_username.strip()))
