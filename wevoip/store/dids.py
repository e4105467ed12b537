"""
The ISP's number inventory: DIDs that are added, allocated to a tenant, and routed there.

Ranges are added in one statement and refused whole if any number in them is taken, so an
inventory upload never half-succeeds.
"""

from __future__ import annotations

import re
from typing import Any, Collection

from wevoip.store import fields
from wevoip.store.database import Row, Tx
from wevoip.store.errors import Conflict, Invalid, NotFound
from wevoip.store.rows import fetch_row
from wevoip.store.subscribers import get_subscriber
from wevoip.store.tenants import get_tenant

MAX_RANGE = 10_000
STATES = ("free", "allocated", "routed")
_FEATURE = re.compile(r"[a-z][a-z0-9_-]{0,31}(:[A-Za-z0-9._@+-]{1,64})?")
# Each number with who holds it: the customer, the tenant and the subscriber or feature.
_HELD = """
    select d.*, c.name as customer_name, t.name as tenant_name, s.username as subscriber_username
    from dids d left join customers c on c.id = d.customer_id left join tenants t on t.id = d.tenant_id
    left join subscribers s on s.id = d.subscriber_id
"""
_STATE = {"free": "d.tenant_id is null",
          "allocated": "d.tenant_id is not null and d.subscriber_id is null and d.feature is null",
          "routed": "(d.subscriber_id is not null or d.feature is not null)"}


def feature(field: str, value: Any, served: Collection[str]) -> str:
    """A destination 'name' or 'name:argument' whose name a call application on this node
    serves: a route to a feature nobody serves would only ever answer 480."""
    value = fields.text(field, value, max_length=97)
    if not _FEATURE.fullmatch(value):
        raise Invalid(field, "must be a feature name, optionally with ':' and its target, as 'echo'")
    name = value.partition(":")[0]
    if name not in served:
        raise Invalid(field, f"no installed call application serves '{name}'"
                             f" (served here: {', '.join(sorted(served)) or 'none'})")
    return value


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
    free = {"customer_name": None, "tenant_name": None, "subscriber_username": None}
    return [{**row, **free} for row in sorted(rows, key=lambda row: row["e164"])]


async def get_did(tx: Tx, isp_id: int, did_id: int) -> Row:
    row = await tx.fetch_one(_HELD + " where d.isp_id = %s and d.id = %s", (isp_id, did_id))
    if row is None:
        raise NotFound("DID")
    return row


async def list_dids(tx: Tx, isp_id: int, tenant_id: int | None = None, *, customer_id: int | None = None,
                    state: str | None = None, limit: int = 100, offset: int = 0) -> list[Row]:
    """The inventory in number order, with who holds each; narrowed to a tenant, a customer or a state."""
    conditions, values = ["d.isp_id = %s"], [isp_id]
    for column, value in (("d.tenant_id", tenant_id), ("d.customer_id", customer_id)):
        if value is not None:
            conditions.append(f"{column} = %s")
            values.append(value)
    if state is not None:
        conditions.append(_STATE[fields.one_of("state", state, STATES)])
    return await tx.fetch(_HELD + f" where {' and '.join(conditions)} order by d.e164 limit %s offset %s",
                          (*values, limit, offset))


async def allocate_did(tx: Tx, isp_id: int, did_id: int, tenant_id: int) -> Row:
    tenant = await get_tenant(tx, isp_id, tenant_id)
    did = await fetch_row(tx, "dids", {"isp_id": isp_id, "id": did_id}, "DID", lock=True)
    if did["tenant_id"] is not None:
        raise Conflict("did_id", "is already allocated")
    await tx.execute("update dids set tenant_id = %s, customer_id = %s, allocated_at = now() "
                     "where isp_id = %s and id = %s", (tenant_id, tenant["customer_id"], isp_id, did_id))
    return await get_did(tx, isp_id, did_id)


async def route_did(tx: Tx, isp_id: int, did_id: int, subscriber_id: int | None = None,
                    feature_name: str | None = None, served: Collection[str] = ()) -> Row:
    """To a subscriber of the DID's tenant, or to a feature that one of the `served` call
    applications answers; neither unroutes it."""
    did = await fetch_row(tx, "dids", {"isp_id": isp_id, "id": did_id}, "DID", lock=True)
    if did["tenant_id"] is None:
        raise Invalid("did_id", "is not allocated to a tenant")
    if subscriber_id is not None and feature_name is not None:
        raise Invalid("feature", "a DID goes to a subscriber or to a feature, not both")
    if subscriber_id is not None:
        subscriber = await get_subscriber(tx, isp_id, subscriber_id)
        if subscriber["tenant_id"] != did["tenant_id"]:
            raise Invalid("subscriber_id", "belongs to another tenant than the DID")
    if feature_name is not None:
        feature_name = feature("feature", feature_name, served)
    await tx.execute("update dids set subscriber_id = %s, feature = %s where isp_id = %s and id = %s",
                     (subscriber_id, feature_name, isp_id, did_id))
    return await get_did(tx, isp_id, did_id)


async def release_did(tx: Tx, isp_id: int, did_id: int) -> Row:
    """Back to the free inventory; its route goes with its tenant. Refused while a subscriber
    of the tenant has it as its own number (the caller ID it shows): that subscriber's
    number changes first, so no subscriber ever keeps a number its tenant gave back."""
    did = await fetch_row(tx, "dids", {"isp_id": isp_id, "id": did_id}, "DID", lock=True)
    user = await tx.fetch_value(
        "select username from subscribers where isp_id = %s and tenant_id = %s and e164 = %s",
        (isp_id, did["tenant_id"], did["e164"])) if did["tenant_id"] is not None else None
    if user is not None:
        raise Conflict("did_id", f"is the own number of subscriber {user}: change that subscriber's number first")
    await tx.execute("update dids set tenant_id = null, customer_id = null, allocated_at = null "
                     "where isp_id = %s and id = %s", (isp_id, did_id))
    return await get_did(tx, isp_id, did_id)


async def did_by_number(tx: Tx, e164: str) -> list[Row]:
    """The SIP stack's question for an inbound call: whose number is this (one row per ISP)?"""
    return await tx.fetch("select * from dids where e164 = %s", (e164,))
