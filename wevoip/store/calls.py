"""
Calls in progress, counted in PostgreSQL so that concurrent-call limits hold across nodes.

`admit_call` locks the customer, then the tenant, then the carrier (always that order, so
two admissions cannot deadlock), counts what is active under each, and inserts the call;
a second node admitting a call for the same customer waits on the lock and counts the
first one. The call's row is deleted when it ends; rows a dead node left are closed by
`end_calls_of_node` at its next start.
"""

from __future__ import annotations

from wevoip.store.database import Row, Tx
from wevoip.store.errors import LimitReached, NotAllowed, NotFound

DIRECTIONS = ("outbound", "inbound", "internal")


async def admit_call(tx: Tx, isp_id: int, *, customer_id: int, tenant_id: int, call_id: str,
                     node: str, direction: str, carrier_id: int | None = None) -> Row:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}")
    customer = await tx.fetch_one(
        "select status, max_concurrent_calls from customers where isp_id = %s and id = %s for update",
        (isp_id, customer_id))
    if customer is None:
        raise NotFound("customer")
    if customer["status"] == "SUSPENDED":
        raise NotAllowed("customer suspended")
    if customer["status"] != "ACTIVE":
        raise NotAllowed("customer not yet activated")
    await _check(tx, "customer_id", customer_id, customer["max_concurrent_calls"], "customer")
    tenant = await tx.fetch_one(
        "select max_concurrent_calls from tenants where isp_id = %s and id = %s and customer_id = %s"
        " for update", (isp_id, tenant_id, customer_id))
    if tenant is None:
        raise NotFound("tenant")
    await _check(tx, "tenant_id", tenant_id, tenant["max_concurrent_calls"], "tenant")
    if carrier_id is not None:
        carrier = await tx.fetch_one(
            "select enabled, max_concurrent_calls from carriers where isp_id = %s and id = %s for update",
            (isp_id, carrier_id))
        if carrier is None:
            raise NotFound("carrier")
        if not carrier["enabled"]:
            raise NotAllowed("carrier disabled")
        await _check(tx, "carrier_id", carrier_id, carrier["max_concurrent_calls"], "carrier")
    return await tx.fetch_one(
        "insert into active_calls (isp_id, customer_id, tenant_id, carrier_id, call_id, node, direction)"
        " values (%s, %s, %s, %s, %s, %s, %s) returning *",
        (isp_id, customer_id, tenant_id, carrier_id, call_id, node, direction))


async def _check(tx: Tx, column: str, value: int, limit: int | None, what: str) -> None:
    if limit is None:
        return
    active = await tx.fetch_value(f"select count(*) from active_calls where {column} = %s", (value,))
    if active >= limit:
        raise LimitReached(f"{what} max_concurrent_calls", limit)


async def end_call(tx: Tx, isp_id: int, active_call_id: int) -> bool:
    """Whether the call was still counted (ending twice is harmless)."""
    count = await tx.execute("delete from active_calls where isp_id = %s and id = %s",
                             (isp_id, active_call_id))
    return count == 1


async def count_active_calls(tx: Tx, isp_id: int, *, customer_id: int | None = None,
                             tenant_id: int | None = None, carrier_id: int | None = None) -> int:
    return await tx.fetch_value(
        "select count(*) from active_calls where isp_id = %s"
        " and (%s::bigint is null or customer_id = %s) and (%s::bigint is null or tenant_id = %s)"
        " and (%s::bigint is null or carrier_id = %s)",
        (isp_id, customer_id, customer_id, tenant_id, tenant_id, carrier_id, carrier_id))


async def end_calls_of_node(tx: Tx, node: str) -> list[Row]:
    """Calls a node left when it died; the caller closes their records and then they go."""
    return await tx.fetch("delete from active_calls where node = %s returning *", (node,))
