"""
ISP signups in progress: an e-mail confirmed by a link, then the onboarding steps.

Nothing of the ISP exists until the last step, which creates the ISP and its first admin
in one transaction; an abandoned signup leaves only this row, which expires.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from wevoip.credentials import token_digest
from wevoip.store import fields
from wevoip.store.database import Row, Tx
from wevoip.store.errors import Invalid, NotFound
from wevoip.store.outbox import enqueue_mail
from wevoip.store.rows import insert_row

LOGO_TYPES = ("image/png", "image/jpeg", "image/svg+xml")


async def start_signup(tx: Tx, email: str, token: str, lifetime: datetime.timedelta) -> Row:
    return await insert_row(tx, "signups", {
        "email": fields.email("email", email, required=True).lower(), "token_sha256": token_digest(token),
        "expires_at": await tx.fetch_value("select now() + %s", (lifetime,))})


def _mail_body(link: str) -> str:
    return (f"Hello,\n\nsomeone (we hope you) asked to create an ISP on WeVoIP with this address.\n"
            f"To go on, open this link within 24 hours:\n\n{link}\n\n"
            f"If it was not you, ignore this mail; nothing has been created.\n")


async def mail_link(tx: Tx, signup: Row, token: str, link: str) -> None:
    """The confirmation mail, queued in the caller's transaction; its outbox row is keyed by
    the signup and the token, so the platform admin's list shows whether it left."""
    key = f"signup:{signup['id']}:{token_digest(token).hex()[:16]}"
    await enqueue_mail(tx, None, to=signup["email"], subject="Confirm your e-mail to create your ISP",
                       body=_mail_body(link), dedupe_key=key)


async def pending_signups(tx: Tx, *, limit: int = 100, offset: int = 0) -> list[Row]:
    """Signups not finished yet, newest first, with what became of their latest mail:
    `mail_state` is 'sent', 'failed' (with `mail_error`), 'queued' or 'none' (no mail keyed
    to it: a signup from before the mails were keyed)."""
    return await tx.fetch(
        "select s.id, s.email, s.created_at, s.expires_at, s.confirmed_at, s.expires_at <= now() as expired,"
        " coalesce(m.state, 'none') as mail_state, coalesce(m.last_error, '') as mail_error,"
        " m.sent_at as mail_sent_at"
        " from signups s left join lateral (select o.sent_at, o.last_error,"
        " case when o.sent_at is not null then 'sent' when o.last_error <> '' then 'failed' else 'queued' end"
        " as state from outbox o where o.isp_id is null and o.kind = 'mail'"
        " and o.dedupe_key like 'signup:' || s.id || ':%%' order by o.id desc limit 1) m on true"
        " where s.isp_id is null order by s.id desc limit %s offset %s", (limit, offset))


async def renew_link(tx: Tx, signup_id: int, token: str, lifetime: datetime.timedelta) -> Row:
    """A new link for an unfinished signup (the old one stops working): how the platform
    admin hands a link over, or has it mailed again, when the first never arrived."""
    row = await tx.fetch_one(
        "update signups set token_sha256 = %s, expires_at = now() + %s where id = %s and isp_id is null"
        " returning *", (token_digest(token), lifetime, signup_id))
    if row is None:
        raise NotFound("signup")
    return row


async def signup_by_token(tx: Tx, token: str) -> Row | None:
    """An unexpired, unfinished signup; None for a wrong, used or old link."""
    return await tx.fetch_one(
        "select * from signups where token_sha256 = %s and expires_at > now() and isp_id is null",
        (token_digest(token),))


async def confirm_signup(tx: Tx, signup_id: int) -> Row:
    return await tx.fetch_one(
        "update signups set confirmed_at = coalesce(confirmed_at, now()) where id = %s returning *",
        (signup_id,))


async def save_signup_step(tx: Tx, signup_id: int, step: str, values: dict[str, Any]) -> Row:
    return await tx.fetch_one(
        "update signups set data = jsonb_set(data, %s, %s::jsonb) where id = %s returning *",
        ([step], json.dumps(values), signup_id))


async def set_signup_logo(tx: Tx, signup_id: int, logo: bytes, content_type: str) -> Row:
    fields.one_of("logo", content_type, LOGO_TYPES)
    if len(logo) > 512 * 1024:
        raise Invalid("logo", "must be at most 512 KiB")
    return await tx.fetch_one("update signups set logo = %s, logo_type = %s where id = %s returning *",
                              (logo, content_type, signup_id))


async def finish_signup(tx: Tx, signup_id: int, isp_id: int) -> None:
    await tx.execute("update signups set isp_id = %s where id = %s", (isp_id, signup_id))


async def delete_stale_signups(tx: Tx) -> int:
    """Unfinished signups whose link has expired: nothing else refers to them."""
    return await tx.execute("delete from signups where isp_id is null and expires_at <= now()")
