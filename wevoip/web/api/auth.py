"""
Who is calling: a bearer token names a platform admin, an ISP or one customer of an ISP,
with scopes. A path names an ISP; a token of another ISP gets 404, as if it did not exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from wevoip.store.admins import token_holder
from wevoip.store.database import Database
from wevoip.web.api.errors import ApiError


@dataclass(frozen=True)
class Principal:
    token_id: int
    isp_id: int | None
    customer_id: int | None
    scopes: frozenset[str]

    @property
    def platform(self) -> bool:
        return self.isp_id is None

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise ApiError(403, "forbidden", f"this token lacks the {scope!r} scope")

    def require_platform(self) -> None:
        if not self.platform:
            raise ApiError(403, "forbidden", "only a platform token may do this")

    def check_isp(self, isp_id: int) -> None:
        if not self.platform and self.isp_id != isp_id:
            raise ApiError(404, "not_found", "isp not found")

    def check_customer(self, customer_id: int | None) -> None:
        """A customer-wide token sees its own customer's objects only."""
        if self.customer_id is not None and customer_id != self.customer_id:
            raise ApiError(404, "not_found", "not found")


async def authenticate(request, database: Database) -> Principal:
    header = (request.getHeader(b"authorization") or b"").decode("latin-1")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "send 'Authorization: Bearer <token>'")
    row = await database.transact(token_holder, token.strip())
    if row is None:
        raise ApiError(401, "unauthorized", "the token is not valid")
    return Principal(row["id"], row["isp_id"], row["customer_id"], frozenset(row["scopes"]))
