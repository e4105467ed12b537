"""
Which customer an object in an API path belongs to, so a customer-wide token is stopped
at the gate, before its body is even read, for anything of another customer's.
"""

from __future__ import annotations

from psycopg2 import sql

from wevoip.store.database import Tx
from wevoip.store.errors import NotFound

# Path parameter -> the table whose rows carry the owning customer_id.
OWNED = {"tenant_id": "tenants", "subscriber_id": "subscribers", "did_id": "dids"}


async def customer_of(tx: Tx, isp_id: int, parameter: str, object_id: int) -> int | None:
    """The owning customer (None for an ISP-wide object such as a free DID)."""
    if parameter == "customer_id":
        return object_id
    query = sql.SQL("select customer_id from {} where isp_id = %s and id = %s").format(
        sql.Identifier(OWNED[parameter]))
    row = await tx.fetch_one(query, (isp_id, object_id))
    if row is None:
        raise NotFound(parameter.removesuffix("_id"))
    return row["customer_id"]
