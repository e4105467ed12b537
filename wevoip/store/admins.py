"""Platform administrators and API tokens (platform, ISP or customer wide)."""

from __future__ import annotations

from wevoip.credentials import token_digest
from wevoip.store import fields
from wevoip.store.customers import get_customer
from wevoip.store.database import Row, Tx
from wevoip.store.isps import get_isp
from wevoip.store.rows import insert_row

SCOPES = ("read", "write", "billing", "admin")


async def create_platform_admin(tx: Tx, username: str, password_hash: str) -> Row:
    return await insert_row(tx, "platform_admins", {"username": fields.text("username", username, max_length=63),
                                                    "password_hash": password_hash})


async def platform_admin_by_username(tx: Tx, username: str) -> Row | None:
    return await tx.fetch_one("select * from platform_admins where username = %s", (username,))


async def create_api_token(tx: Tx, token: str, *, name: str = "", scopes: tuple[str, ...] = SCOPES,
                           isp_id: int | None = None, customer_id: int | None = None) -> Row:
    """Keeps only the token's SHA-256: the token itself is shown once, to its creator."""
    for scope in scopes:
        fields.one_of("scopes", scope, SCOPES)
    if isp_id is not None:
        await get_isp(tx, isp_id)
    if customer_id is not None:
        await get_customer(tx, isp_id, customer_id)
    row = await insert_row(tx, "api_tokens", {
        "token_sha256": token_digest(token), "name": fields.text("name", name, required=False),
        "scopes": list(scopes), "isp_id": isp_id, "customer_id": customer_id})
    return {key: value for key, value in row.items() if key != "token_sha256"}


async def token_holder(tx: Tx, token: str) -> Row | None:
    return await tx.fetch_one(
        "update api_tokens set last_used_at = now() where token_sha256 = %s "
        "returning id, isp_id, customer_id, name, scopes", (token_digest(token),))
