"""Builds a whole ISP tree through the data-access functions, as an operator would."""

from __future__ import annotations

from dataclasses import dataclass

import datetime
from decimal import Decimal

from wevoip.store import carriers, customers, dialplans, dids, registrations, subscribers, tenants
from wevoip.store.database import Database
from wevoip.store.isps import create_isp


BINDING = registrations.BindingRecord(
    contact="sip:alice@192.0.2.50:5060", q=Decimal("1"), call_id="call-1@phone", cseq=1,
    expires_at=datetime.datetime(2100, 1, 1, tzinfo=datetime.timezone.utc),
    source="192.0.2.50:5060", transport="udp")


@dataclass
class Tree:
    isp: dict
    plan: dict
    customer: dict
    tenant: dict
    subscriber: dict
    carrier: dict
    gateway: dict
    did: dict
    domain: dict
    rule: dict


async def held(tx, isp_id: int, tenant_id: int, e164: str) -> dict:
    """A DID added to the inventory and allocated to the tenant, as a subscriber's own number
    must be (issue 12, point 7)."""
    did = (await dids.add_dids(tx, isp_id, e164))[0]
    return await dids.allocate_did(tx, isp_id, did["id"], tenant_id)


async def build_tree(database: Database, namespace: str, *, max_subscribers: int = 10) -> Tree:
    async def work(tx):
        isp = await create_isp(tx, name=f"ISP {namespace}", namespace=namespace, currency="USD",
                               country="US", contact_email=f"ops@{namespace}")
        plan = await customers.create_service_plan(tx, isp["id"], name="Basic")
        customer = await customers.create_customer(tx, isp["id"], name="Acme", service_plan_id=plan["id"],
                                                   max_subscribers=max_subscribers, status="ACTIVE")
        tenant = await tenants.create_tenant(tx, isp["id"], customer["id"], name="Acme HQ", label="acme")
        await held(tx, isp["id"], tenant["id"], "+15550100100")
        subscriber = await subscribers.create_subscriber(
            tx, isp["id"], tenant["id"], username="alice", password="correct-horse-9",
            extension="100", e164="+15550100100", is_pilot=True)
        carrier = await carriers.create_carrier(tx, isp["id"], name="Carrier One")
        gateway = await carriers.create_gateway(tx, isp["id"], carrier["id"], host="192.0.2.10")
        did = (await dids.add_dids(tx, isp["id"], "+15550199000"))[0]
        did = await dids.allocate_did(tx, isp["id"], did["id"], tenant["id"])
        domain = await tx.fetch_one("select * from domains where id = %s", (tenant["domain_id"],))
        await registrations.save_binding(tx, isp["id"], tenant["id"], subscriber["id"], BINDING, "test-node")
        rule = await dialplans.create_rule(tx, isp["id"], match=r"0\d+", subs=r"^0(\d+)$", replacement=r"+_CC\1")
        return Tree(isp, plan, customer, tenant, subscriber, carrier, gateway, did, domain, rule)
    return await database.transact(work)
