"""
The questions the router asks of the store, each scoped to the caller's ISP.

A number is on-net when it is a DID of any tenant of the same ISP or a subscriber's own
number there; everything else leaves through the ISP's carriers.
"""

from __future__ import annotations

from wevoip.store.database import Row, Tx

# Migration 0051's triggers publish an ISP's id here when its subscribers, DIDs, gateways or
# carriers change, and `sources` when which addresses are trunks may have.
CHANNEL = "call_routing"


async def subscriber_by_extension(tx: Tx, isp_id: int, tenant_id: int, extension: str) -> Row | None:
    return await tx.fetch_one(
        "select id, tenant_id, customer_id, username, extension, e164 from subscribers"
        " where isp_id = %s and tenant_id = %s and extension = %s", (isp_id, tenant_id, extension))


async def local_number(tx: Tx, isp_id: int, e164: str) -> Row | None:
    """Who holds this number in the ISP: a routed DID first, then a subscriber's own number.

    The row has tenant_id, customer_id, subscriber_id (None for a DID not routed to anyone)
    and `via` ('did' or 'subscriber').
    """
    did = await tx.fetch_one(
        "select *, 'did' as via from dids where isp_id = %s and e164 = %s and tenant_id is not null",
        (isp_id, e164))
    if did is not None:
        return did
    return await tx.fetch_one(
        "select id as subscriber_id, tenant_id, customer_id, e164, 'subscriber' as via"
        " from subscribers where isp_id = %s and e164 = %s", (isp_id, e164))


async def outbound_gateways(tx: Tx, isp_id: int) -> list[Row]:
    """Enabled gateways of enabled carriers, in the order calls try them."""
    return await tx.fetch(
        "select g.*, c.name as carrier_name from gateways g join carriers c"
        " on c.isp_id = g.isp_id and c.id = g.carrier_id"
        " where g.isp_id = %s and g.enabled and c.enabled order by g.priority, g.id", (isp_id,))


async def caller_identity(tx: Tx, isp_id: int, subscriber_id: int) -> Row | None:
    """A subscriber's tenant and customer, and the number it shows: its own, else the pilot's."""
    return await tx.fetch_one(
        "select s.id as subscriber_id, s.tenant_id, s.customer_id,"
        " coalesce(s.e164, (select p.e164 from subscribers p where p.isp_id = s.isp_id"
        " and p.tenant_id = s.tenant_id and p.is_pilot)) as e164"
        " from subscribers s where s.isp_id = %s and s.id = %s", (isp_id, subscriber_id))
