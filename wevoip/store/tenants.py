"""Tenants: one PBX of a customer, reached at its own SIP domain."""

from __future__ import annotations

from wevoip.store import fields
from wevoip.store.customers import get_customer
from wevoip.store.database import Row, Tx
from wevoip.store.domains import DOMAINS_CHANNEL, create_namespace_domain, domain_usable, get_domain
from wevoip.store.errors import Invalid, NotFound
from wevoip.store.notify import publish
from wevoip.store.rows import insert_row, update_row

_WITH_DOMAIN = """
    select t.*, d.name as sip_domain from tenants t join domains d on d.id = t.domain_id
    where t.isp_id = %s and t.id = %s
"""


async def create_tenant(tx: Tx, isp_id: int, customer_id: int, *, name: str,
                        label: str | None = None, domain_id: int | None = None) -> Row:
    """The SIP domain is `<label>.<namespace>`, or a verified domain of the ISP's."""
    name = fields.text("name", name)
    await get_customer(tx, isp_id, customer_id)
    if (label is None) == (domain_id is None):
        raise Invalid("label", "give either a label under the namespace or a verified domain_id")
    if domain_id is not None:
        domain = await get_domain(tx, isp_id, domain_id, lock=True)
        if not domain_usable(domain):
            raise Invalid("domain_id", "the domain's DNS TXT record has not been verified yet")
    else:
        domain = await create_namespace_domain(tx, isp_id, label)
    row = await insert_row(tx, "tenants", {"isp_id": isp_id, "customer_id": customer_id,
                                           "name": name, "domain_id": domain["id"]})
    await publish(tx, DOMAINS_CHANNEL, domain["name"])
    return {**row, "sip_domain": domain["name"]}


async def get_tenant(tx: Tx, isp_id: int, tenant_id: int) -> Row:
    row = await tx.fetch_one(_WITH_DOMAIN, (isp_id, tenant_id))
    if row is None:
        raise NotFound("tenant")
    return row


async def list_tenants(tx: Tx, isp_id: int, customer_id: int | None = None, *,
                       limit: int = 100, offset: int = 0) -> list[Row]:
    customer = "" if customer_id is None else " and t.customer_id = %s"
    values = (isp_id,) if customer_id is None else (isp_id, customer_id)
    return await tx.fetch(
        "select t.*, d.name as sip_domain from tenants t join domains d on d.id = t.domain_id"
        f" where t.isp_id = %s{customer} order by t.id limit %s offset %s", (*values, limit, offset))


async def rename_tenant(tx: Tx, isp_id: int, tenant_id: int, name: str) -> Row:
    await update_row(tx, "tenants", {"isp_id": isp_id, "id": tenant_id}, "tenant", {"name": name},
                     {"name": fields.text})
    return await get_tenant(tx, isp_id, tenant_id)


async def tenant_by_sip_domain(tx: Tx, domain: str) -> Row | None:
    """The SIP stack's question: which tenant, and so which ISP, owns this domain."""
    return await tx.fetch_one(
        "select t.*, d.name as sip_domain from tenants t join domains d on d.id = t.domain_id "
        "where d.name = %s and (d.kind = 'namespace' or d.verified_at is not null)",
        (domain.lower().rstrip("."),))
