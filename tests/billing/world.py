"""A priced ISP for billing tests: carriers with published cards, a plan, a funded customer."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from tests.store.builders import Tree, build_tree
from wevoip.billing.calls import CallEnd, authorise_call
from wevoip.billing.decks import DeckIndexes, upload_draft
from wevoip.store import carriers, customers, ledger, pricing, ratedecks

EPOCH = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
NOW = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.timezone.utc)

CARRIER_ONE = """prefix,description,cost,connection_fee,increment,class
44,UK,0.0200,0,1/1,
447,UK mobile,0.0500,0,1/1,
1,North America,0.0090,0,6/6,
1900,US premium,0.5000,0,60/60,premium
8816,Iridium,1.2000,0,60/60,satellite
"""
CARRIER_TWO = """prefix,description,cost,connection_fee,increment
44,UK,0.0150,0.010000,30/6
1,North America,0.0120,0,1/1
"""


@dataclass
class World:
    tree: Tree
    indexes: DeckIndexes
    one: dict
    two: dict
    deck_one: dict
    deck_two: dict

    @property
    def isp_id(self) -> int:
        return self.tree.isp["id"]

    @property
    def customer_id(self) -> int:
        return self.tree.customer["id"]


async def publish_csv(tx, isp_id: int, deck_id: int, text: str, at=EPOCH) -> dict:
    draft = await upload_draft(tx, isp_id, deck_id, text)
    return await ratedecks.publish_version(tx, isp_id, draft["id"], at)


async def price_north_america(tx, isp_id: int, tree: Tree, *, balance: str = "10.00") -> None:
    """The tree's carrier sells North America at 0.01 a started minute, the plan sells at
    cost, and the customer is HARD prepaid with `balance`: what call tests need to be billed."""
    await ledger.set_isp_billing(tx, isp_id, home_prefix="1")
    deck = await ratedecks.create_deck(tx, isp_id, name="One", kind="carrier", carrier_id=tree.carrier["id"])
    await publish_csv(tx, isp_id, deck["id"], "prefix,description,cost,connection_fee,increment\n"
                                              "1,North America,0.0100,0,60/60\n")
    await pricing.set_plan_pricing(tx, isp_id, tree.plan["id"], service_deck=True)
    await customers.update_customer(tx, isp_id, tree.customer["id"], balance_management="HARD")
    await ledger.add_payment(tx, isp_id, tree.customer["id"], amount=balance, description="opening")


async def build_world(database, namespace: str = "billing.example.net", *, balance: str | None = "10.00",
                      management: str = "HARD", **plan: object) -> World:
    tree = await build_tree(database, namespace)
    isp_id = tree.isp["id"]

    async def work(tx):
        await ledger.set_isp_billing(tx, isp_id, home_prefix="1")
        two = await carriers.create_carrier(tx, isp_id, name="Carrier Two")
        await carriers.update_carrier(tx, isp_id, tree.carrier["id"], enabled=True)
        deck_one = await ratedecks.create_deck(tx, isp_id, name="One", kind="carrier", carrier_id=tree.carrier["id"])
        deck_two = await ratedecks.create_deck(tx, isp_id, name="Two", kind="carrier", carrier_id=two["id"])
        await publish_csv(tx, isp_id, deck_one["id"], CARRIER_ONE)
        await publish_csv(tx, isp_id, deck_two["id"], CARRIER_TWO)
        await pricing.set_plan_pricing(tx, isp_id, tree.plan["id"], **{"service_deck": True, **plan})
        await customers.update_customer(tx, isp_id, tree.customer["id"], balance_management=management,
                                        email="payer@acme.example", first_name="Ada", last_name="Lovelace")
        if balance is not None:
            await ledger.add_payment(tx, isp_id, tree.customer["id"], amount=balance, description="opening")
        return two, deck_one, deck_two
    two, deck_one, deck_two = await database.transact(work)
    return World(tree, DeckIndexes(), tree.carrier, two, deck_one, deck_two)


def authorise(world: World, destination: str = "+442071838750", call_id: str = "a@phone", node: str = "node-a",
              **extra):
    """A call's authorisation at NOW, as a transaction's work."""
    return lambda tx: authorise_call(tx, world.isp_id, customer_id=world.customer_id, destination=destination,
                                     call_id=call_id, node=node, indexes=world.indexes, at=NOW, **extra)


def answered_for(seconds: float, carrier_id: int | None = None) -> CallEnd:
    return CallEnd(ended_at=NOW + datetime.timedelta(seconds=seconds), disposition="answered", answered_at=NOW,
                   sip_code=200, hangup_by="caller", carrier_id=carrier_id, b_call_id="b@carrier")
