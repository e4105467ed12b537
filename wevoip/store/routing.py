"""
The questions the router asks of the store, each scoped to the caller's ISP.

A number is on-net when it is a DID of any tenant of the same ISP (a subscriber's own
number is one of its tenant's DIDs); everything else leaves through the ISP's carriers.
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
    """Who holds this number in the ISP: a DID allocated to a tenant, routed to a subscriber
    or a feature, else to the subscriber of that tenant whose own number it is.

    The row has tenant_id, customer_id, subscriber_id (None for a DID not routed to anyone),
    feature and the DID's id. Only DIDs are on-net: a subscriber's number
    that its tenant does not hold (written before issue 12 checked it) reaches nobody here,
    so it cannot capture calls to a real number outside.
    """
    return await tx.fetch_one(
        "select d.id, d.isp_id, d.e164, d.tenant_id, d.customer_id, d.feature,"
        " coalesce(d.subscriber_id, case when d.feature is null then s.id end) as subscriber_id"
        " from dids d left join subscribers s on s.isp_id = d.isp_id and s.tenant_id = d.tenant_id"
        " and s.e164 = d.e164"
        " where d.isp_id = %s and d.e164 = %s and d.tenant_id is not null", (isp_id, e164))


async def outbound_gateways(tx: Tx, isp_id: int) -> list[Row]:
    """Enabled gateways of enabled carriers, in the order calls try them."""
    return await tx.fetch(
        "select g.*, c.name as carrier_name from gateways g join carriers c"
        " on c.isp_id = g.isp_id and c.id = g.carrier_id"
        " where g.isp_id = %s and g.enabled and c.enabled order by g.priority, g.id", (isp_id,))


async def caller_identity(tx: Tx, isp_id: int, subscriber_id: int) -> Row | None:
    """A subscriber's tenant and customer, and the number it shows: its own, else the pilot's,
    each only while the tenant holds it as a DID (a number written before issue 12 checked
    it, or by hand, is never presented); None when neither is held (the call goes out
    anonymous)."""
    return await tx.fetch_one(
        "select s.id as subscriber_id, s.tenant_id, s.customer_id,"
        " (select p.e164 from subscribers p join dids d on d.isp_id = p.isp_id and d.tenant_id = p.tenant_id"
        " and d.e164 = p.e164 where p.isp_id = s.isp_id and p.tenant_id = s.tenant_id"
        " and (p.id = s.id or p.is_pilot) order by p.id = s.id desc limit 1) as e164"
        " from subscribers s where s.isp_id = %s and s.id = %s", (isp_id, subscriber_id))


async def unheld_numbers(tx: Tx) -> list[Row]:
    """Per ISP, how many subscribers have a number their tenant does not hold as a DID (rows
    from before issue 12's check): carriers are not shown those numbers, which an operator
    upgrading must hear about, at start."""
    return await tx.fetch(
        "select s.isp_id, count(*) as subscribers from subscribers s where s.e164 is not null and not exists"
        " (select 1 from dids d where d.isp_id = s.isp_id and d.tenant_id = s.tenant_id and d.e164 = s.e164)"
        " group by s.isp_id order by s.isp_id")
