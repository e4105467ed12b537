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
from wevoip.store.errors import Invalid
from wevoip.store.rows import insert_row

LOGO_TYPES = ("image/png", "image/jpeg", "image/svg+xml")


async def start_signup(tx: Tx, email: str, token: str, lifetime: datetime.timedelta) -> Row:
    return await insert_row(tx, "signups", {
        "email": fields.email("email", email, required=True).lower(), "token_sha256": token_digest(token),
        "expires_at": await tx.fetch_value("select now() + %s", (lifetime,))})


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
