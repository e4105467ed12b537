"""An ISP's API tokens: made for the ISP or one of its customers, listed, revoked."""

from __future__ import annotations

from wevoip.credentials import new_secret
from wevoip.store import admins
from wevoip.web.api.errors import ApiError
from wevoip.web.api.routes import ID, ID_IN, STAMP, Call, api_route, nullable, obj, record, text

_SCOPES = {"type": "array", "items": {"enum": list(admins.SCOPES)}, "maxItems": 4, "uniqueItems": True}
TOKEN_CREATE = obj({"name": text(100), "customer_id": ID_IN,
                    "scopes": _SCOPES})
TOKEN = record({"id": ID, "isp_id": ID, "customer_id": nullable(ID), "name": {"type": "string"},
                "scopes": {"type": "array", "items": {"type": "string"}}, "created_at": STAMP,
                "last_used_at": nullable(STAMP)})
TOKEN_CREATED = {**TOKEN, "properties": {**TOKEN["properties"], "token": {"type": "string"}},
                 "required": [*TOKEN["required"], "token"]}


@api_route("POST", "/isps/{isp_id}/tokens", scope="admin", tag="tokens", body=TOKEN_CREATE,
           returns=TOKEN_CREATED, status=201,
           summary="Create an API token for the ISP or one of its customers; the token is shown this once")
async def create_token(call: Call):
    """The server keeps only the token's hash; a token never grants a scope its creator lacks."""
    scopes = tuple(call.body.get("scopes") or ("read", "write"))
    missing = sorted(set(scopes) - call.principal.scopes)
    if missing:
        raise ApiError(403, "forbidden", f"scopes: this token cannot grant {', '.join(missing)}", field="scopes")
    token = new_secret("wv_", 32)
    row = await call.tx(lambda tx: admins.create_api_token(
        tx, token, name=call.body.get("name", ""), scopes=scopes, isp_id=call.params["isp_id"],
        customer_id=call.body.get("customer_id")))
    return {**row, "token": token}


@api_route("GET", "/isps/{isp_id}/tokens", scope="admin", tag="tokens", returns=TOKEN, listing=True,
           query=("customer_id",), summary="List the ISP's API tokens (never the tokens themselves)")
async def list_tokens(call: Call):
    limit, offset = call.page()
    return await call.tx(lambda tx: admins.list_api_tokens(tx, call.params["isp_id"], call.query_int("customer_id"),
                                                           limit=limit, offset=offset))


@api_route("GET", "/isps/{isp_id}/tokens/{token_id}", scope="admin", tag="tokens", returns=TOKEN,
           summary="Show an API token's name, holder, scopes and last use")
async def get_token(call: Call):
    return await call.tx(admins.get_api_token, call.params["isp_id"], call.params["token_id"])


@api_route("DELETE", "/isps/{isp_id}/tokens/{token_id}", scope="admin", tag="tokens", status=204,
           summary="Revoke an API token: it stops working at once")
async def revoke_token(call: Call):
    await call.tx(admins.revoke_api_token, call.params["isp_id"], call.params["token_id"])
