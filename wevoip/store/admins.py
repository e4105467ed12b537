"""Platform administrators and API tokens (platform, ISP or customer wide)."""

from __future__ import annotations

from wevoip.credentials import token_digest
from wevoip.store import fields
from wevoip.store.customers import get_customer
from wevoip.store.database import Row, Tx
from wevoip.store.isps import get_isp
from wevoip.store.errors import NotFound
from wevoip.store.rows import insert_row

# What a token's holder may see of it: never its hash.
_SHOWN = "id, isp_id, customer_id, name, scopes, created_at, last_used_at"

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


async def list_api_tokens(tx: Tx, isp_id: int, customer_id: int | None = None, *, limit: int = 100,
                          offset: int = 0) -> list[Row]:
    customer = "" if customer_id is None else " and customer_id = %s"
    values = (isp_id,) if customer_id is None else (isp_id, customer_id)
    return await tx.fetch(f"select {_SHOWN} from api_tokens where isp_id = %s{customer} order by id"
                          " limit %s offset %s", (*values, limit, offset))


async def get_api_token(tx: Tx, isp_id: int, token_id: int) -> Row:
    row = await tx.fetch_one(f"select {_SHOWN} from api_tokens where isp_id = %s and id = %s", (isp_id, token_id))
    if row is None:
        raise NotFound("API token")
    return row


async def revoke_api_token(tx: Tx, isp_id: int, token_id: int) -> None:
    """The token stops working at once: authentication looks it up on every request."""
    if await tx.execute("delete from api_tokens where isp_id = %s and id = %s", (isp_id, token_id)) == 0:
        raise NotFound("API token")


async def token_holder(tx: Tx, token: str) -> Row | None:
    return await tx.fetch_one(
        "update api_tokens set last_used_at = now() where token_sha256 = %s "
        "returning id, isp_id, customer_id, name, scopes", (token_digest(token),))
