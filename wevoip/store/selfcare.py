"""
What a subscriber changes about itself in the self-care pages: call forwarding, voicemail
settings and its web password; and the look-up that logs a subscriber in.
"""

from __future__ import annotations

import re
from typing import Any

from wevoip.store import fields
from wevoip.store.database import Row, Tx
from wevoip.store.errors import Invalid, NotFound
from wevoip.store.rows import checked, fetch_row
from wevoip.store.subscribers import checked_web_username

DEFAULTS = {"forward_always": None, "forward_busy": None, "forward_no_answer": None,
            "no_answer_seconds": 20, "voicemail_enabled": True, "voicemail_pin_hash": None,
            "voicemail_email": "", "voicemail_attach": True}


def _target(field: str, value: Any) -> str | None:
    if value in (None, ""):
        return None
    value = fields.text(field, value, max_length=16)
    if not re.fullmatch(r"\+[1-9][0-9]{1,14}|[0-9]{2,8}", value):
        raise Invalid(field, "must be an E.164 number (+ and digits) or an extension (2 to 8 digits)")
    return value


def _seconds(field: str, value: Any) -> int:
    value = fields.count(field, value, maximum=120)
    if value < 5:
        raise Invalid(field, "must be from 5 to 120 seconds")
    return value


def voicemail_pin(field: str, value: Any) -> str:
    value = fields.text(field, value, max_length=8)
    if not re.fullmatch(r"[0-9]{4,8}", value):
        raise Invalid(field, "must be 4 to 8 digits")
    if len(set(value)) == 1 or value in "0123456789" or value in "9876543210":
        raise Invalid(field, "is too easy to guess (all one digit or a run)")
    return value


_CHECKS = {
    "forward_always": _target,
    "forward_busy": _target,
    "forward_no_answer": _target,
    "no_answer_seconds": _seconds,
    "voicemail_enabled": fields.flag,
    "voicemail_email": fields.email,
    "voicemail_attach": fields.flag,
    "voicemail_pin_hash": lambda field, value: value,
}


async def subscriber_settings(tx: Tx, isp_id: int, subscriber_id: int) -> Row:
    """The settings, or the defaults for a subscriber that never changed them."""
    await fetch_row(tx, "subscribers", {"isp_id": isp_id, "id": subscriber_id}, "subscriber")
    row = await tx.fetch_one("select * from subscriber_settings where isp_id = %s and subscriber_id = %s",
                             (isp_id, subscriber_id))
    settings = dict(DEFAULTS) if row is None else dict(row)
    settings["voicemail_pin_set"] = settings.pop("voicemail_pin_hash") is not None
    return settings


async def update_subscriber_settings(tx: Tx, isp_id: int, subscriber_id: int, **changes: Any) -> Row:
    """`voicemail_pin_hash` comes from hashing a PIN checked by `voicemail_pin`."""
    values = checked(changes, _CHECKS, "subscriber setting")
    await fetch_row(tx, "subscribers", {"isp_id": isp_id, "id": subscriber_id}, "subscriber", lock=True)
    if values:
        columns = ", ".join(values)
        placeholders = ", ".join(["%s"] * len(values))
        updates = ", ".join(f"{name} = excluded.{name}" for name in values)
        await tx.execute(
            f"insert into subscriber_settings (isp_id, subscriber_id, {columns}) values (%s, %s, {placeholders})"
            f" on conflict (isp_id, subscriber_id) do update set {updates}, updated_at = now()",
            (isp_id, subscriber_id, *values.values()))
    return await subscriber_settings(tx, isp_id, subscriber_id)


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
