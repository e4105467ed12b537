"""
The ISP's number inventory: DIDs that are added, allocated to a tenant, and routed there.

Ranges are added in one statement and refused whole if any number in them is taken, so an
inventory upload never half-succeeds.
"""

from __future__ import annotations

from wevoip.store import fields
from wevoip.store.database import Row, Tx
from wevoip.store.errors import Conflict, Invalid
from wevoip.store.rows import fetch_page, fetch_row, update_row
from wevoip.store.subscribers import get_subscriber
from wevoip.store.tenants import get_tenant

MAX_RANGE = 10_000


async def add_dids(tx: Tx, isp_id: int, first: str, last: str | None = None) -> list[Row]:
    """Add one number, or every number from `first` to `last` of the same length."""
    first = fields.e164("first", first)
    last = first if last is None else fields.e164("last", last)
    if len(first) != len(last) or int(last) < int(first):
        raise Invalid("last", "must be a number of the same length, not below first")
    if int(last) - int(first) + 1 > MAX_RANGE:
        raise Invalid("last", f"a range holds at most {MAX_RANGE} numbers")
    width = len(first) - 1
    numbers = [f"+{n:0{width}d}" for n in range(int(first), int(last) + 1)]
    rows = await tx.fetch(
        "insert into dids (isp_id, e164) select %s, unnest(%s::text[]) "
        "on conflict (isp_id, e164) do nothing returning *", (isp_id, numbers))
    if len(rows) != len(numbers):
        raise Conflict("first", f"{len(numbers) - len(rows)} of these numbers are already in the inventory")
    return sorted(rows, key=lambda row: row["e164"])


async def get_did(tx: Tx, isp_id: int, did_id: int) -> Row:
    return await fetch_row(tx, "dids", {"isp_id": isp_id, "id": did_id}, "DID")


async def list_dids(tx: Tx, isp_id: int, tenant_id: int | None = None, *, limit: int = 100,
                    offset: int = 0) -> list[Row]:
    where = {"isp_id": isp_id} if tenant_id is None else {"isp_id": isp_id, "tenant_id": tenant_id}
    return await fetch_page(tx, "dids", where, limit, offset)


async def list_inventory(tx: Tx, isp_id: int, *, limit: int = 100, offset: int = 0) -> list[Row]:
    """The inventory with who holds each number: customer, tenant and subscriber names."""
    return await tx.fetch(
        "select d.*, c.name as customer_name, t.name as tenant_name, s.username as subscriber_username"
        " from dids d left join customers c on c.id = d.customer_id left join tenants t on t.id = d.tenant_id"
        " left join subscribers s on s.id = d.subscriber_id where d.isp_id = %s order by d.e164"
        " limit %s offset %s", (isp_id, limit, offset))


async def list_free_dids(tx: Tx, isp_id: int, *, limit: int = 100) -> list[Row]:
    """Numbers not allocated to any tenant, which a customer may take for its tenants."""
    return await tx.fetch("select * from dids where isp_id = %s and tenant_id is null order by e164 limit %s",
                          (isp_id, limit))


async def allocate_did(tx: Tx, isp_id: int, did_id: int, tenant_id: int) -> Row:
    tenant = await get_tenant(tx, isp_id, tenant_id)
    did = await fetch_row(tx, "dids", {"isp_id": isp_id, "id": did_id}, "DID", lock=True)
    if did["tenant_id"] is not None:
        raise Conflict("did_id", "is already allocated")
    return await tx.fetch_one(
        "update dids set tenant_id = %s, customer_id = %s, allocated_at = now() "
        "where isp_id = %s and id = %s returning *",
        (tenant_id, tenant["customer_id"], isp_id, did_id))


async def route_did(tx: Tx, isp_id: int, did_id: int, subscriber_id: int | None) -> Row:
    did = await fetch_row(tx, "dids", {"isp_id": isp_id, "id": did_id}, "DID", lock=True)
    if did["tenant_id"] is None:
        raise Invalid("did_id", "is not allocated to a tenant")
    if subscriber_id is not None:
        subscriber = await get_subscriber(tx, isp_id, subscriber_id)
        if subscriber["tenant_id"] != did["tenant_id"]:
            raise Invalid("subscriber_id", "belongs to another tenant than the DID")
    return await update_row(tx, "dids", {"isp_id": isp_id, "id": did_id}, "DID",
                            {"subscriber_id": subscriber_id}, {"subscriber_id": lambda f, v: v})


async def release_did(tx: Tx, isp_id: int, did_id: int) -> Row:
    await fetch_row(tx, "dids", {"isp_id": isp_id, "id": did_id}, "DID", lock=True)
    return await tx.fetch_one(
        "update dids set tenant_id = null, customer_id = null, subscriber_id = null, "
        "allocated_at = null where isp_id = %s and id = %s returning *", (isp_id, did_id))


async def did_by_number(tx: Tx, e164: str) -> list[Row]:
    """The SIP stack's question for an inbound call: whose number is this (one row per ISP)?"""
    return await tx.fetch("select * from dids where e164 = %s", (e164,))
