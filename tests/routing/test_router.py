"""Where calls go, decided against the real store: extensions, on-net numbers, carriers, trunks."""

import pytest_twisted

from plugins.dialplan_presets import us
from tests.store.builders import build_tree, held
from wevoip.routing.router import (Gateway, Local, Origin, Outbound, Refusal, origin_of,
                                   route_from_subscriber, route_from_trunk)
from wevoip.store import carriers, dids, subscribers, tenants


async def _world(database):
    """Two tenants of one ISP, a second carrier, and a gateway that rewrites numbers."""
    tree = await build_tree(database, "route.example.net")
    isp_id = tree.isp["id"]

    async def more(tx):
        await held(tx, isp_id, tree.tenant["id"], "+14155550101")
        bob = await subscribers.create_subscriber(tx, isp_id, tree.tenant["id"], username="bob",
                                                  password="correct-horse-9", extension="101",
                                                  e164="+14155550101")
        other = await tenants.create_tenant(tx, isp_id, tree.customer["id"], name="Branch", label="branch")
        carol = await subscribers.create_subscriber(tx, isp_id, other["id"], username="carol",
                                                    password="correct-horse-9", extension="100")
        did = (await dids.add_dids(tx, isp_id, "+14155550177"))[0]
        await dids.allocate_did(tx, isp_id, did["id"], other["id"])
        await dids.route_did(tx, isp_id, did["id"], carol["id"])
        await carriers.update_gateway(tx, isp_id, tree.gateway["id"], strip_digits=2, prefix="011", priority=20)
        cheap = await carriers.create_carrier(tx, isp_id, name="Cheap")
        cheap_gw = await carriers.create_gateway(tx, isp_id, cheap["id"], host="192.0.2.20", priority=30)
        return bob, other, carol, cheap, cheap_gw
    bob, other, carol, cheap, cheap_gw = await database.transact(more)
    origin = await database.transact(origin_of, isp_id, bob["id"])
    return tree, origin, bob, other, carol, cheap, cheap_gw


@pytest_twisted.ensureDeferred
async def test_an_extension_rings_the_subscriber_of_the_same_tenant(database):
    tree, origin, bob, other, carol, *_ = await _world(database)
    route = await database.transact(route_from_subscriber, origin, "100", us.rules())
    assert route == Local(tree.isp["id"], tree.customer["id"], tree.tenant["id"], tree.subscriber["id"],
                          tree.subscriber["e164"])


@pytest_twisted.ensureDeferred
async def test_a_did_of_another_tenant_stays_on_net(database):
    tree, origin, bob, other, carol, *_ = await _world(database)
    # Seven digits: the US preset puts the caller's area code (415, from bob's number) in front.
    route = await database.transact(route_from_subscriber, origin, "5550177", us.rules())
    assert route == Local(tree.isp["id"], tree.customer["id"], other["id"], carol["id"], "+14155550177")


@pytest_twisted.ensureDeferred
async def test_an_allocated_did_routed_to_no_one_is_refused_clearly(database):
    tree, origin, *_ = await _world(database)
    route = await database.transact(route_from_subscriber, origin, "+15550199000", us.rules())
    assert isinstance(route, Refusal) and route.status == 480


@pytest_twisted.ensureDeferred
async def test_other_numbers_leave_through_gateways_in_priority_order_with_their_digits(database):
    tree, origin, bob, other, carol, cheap, cheap_gw = await _world(database)
    route = await database.transact(route_from_subscriber, origin, "2125550100", us.rules())
    assert route == Outbound("+12125550100", (
        Gateway(tree.carrier["id"], tree.gateway["id"], "192.0.2.10", 5060, "udp", "0112125550100"),
        Gateway(cheap["id"], cheap_gw["id"], "192.0.2.20", 5060, "udp", "+12125550100"),
    ), "+14155550101")


@pytest_twisted.ensureDeferred
async def test_least_cost_order_decides_and_leaves_out_carriers_without_a_rate(database):
    tree, origin, bob, other, carol, cheap, cheap_gw = await _world(database)
    route = await database.transact(route_from_subscriber, origin, "2125550100", us.rules(),
                                    carrier_order=[cheap["id"]])
    assert [gateway.gateway_id for gateway in route.gateways] == [cheap_gw["id"]]


@pytest_twisted.ensureDeferred
async def test_what_the_dialplan_cannot_read_is_address_incomplete(database):
    tree, origin, *_ = await _world(database)
    route = await database.transact(route_from_subscriber, origin, "12", us.rules())
    assert route.status == 484


@pytest_twisted.ensureDeferred
async def test_no_carrier_means_503(database):
    tree, origin, *_ = await _world(database)
    await database.transact(lambda tx: tx.execute("update carriers set enabled = false"))
    route = await database.transact(route_from_subscriber, origin, "2125550100", us.rules())
    assert route.status == 503


@pytest_twisted.ensureDeferred
async def test_a_carrier_call_to_a_did_reaches_its_subscriber_with_or_without_plus(database):
    tree, origin, bob, other, carol, *_ = await _world(database)
    for number in ("+14155550177", "14155550177"):
        isp_id, route = await database.transact(route_from_trunk, "192.0.2.10", number)
        assert isp_id == tree.isp["id"]
        assert route == Local(tree.isp["id"], tree.customer["id"], other["id"], carol["id"], "+14155550177")


@pytest_twisted.ensureDeferred
async def test_trunk_calls_from_unknown_addresses_or_to_unknown_numbers_are_refused(database):
    await _world(database)
    assert (await database.transact(route_from_trunk, "203.0.113.9", "+14155550177"))[1].status == 403
    assert (await database.transact(route_from_trunk, "not-an-ip", "+14155550177"))[1].status == 403
    assert (await database.transact(route_from_trunk, "192.0.2.10", "+14155559999"))[1].status == 404
    assert (await database.transact(route_from_trunk, "192.0.2.10", "sip-junk"))[1].status == 404


@pytest_twisted.ensureDeferred
async def test_a_subscriber_without_a_number_shows_the_pilots(database):
    tree, origin, bob, other, carol, *_ = await _world(database)
    assert origin == Origin(tree.isp["id"], tree.customer["id"], tree.tenant["id"], bob["id"], "+14155550101")
    pilotless = await database.transact(origin_of, tree.isp["id"], carol["id"])
    assert pilotless.e164 is None
    async def numberless(tx):
        return await subscribers.create_subscriber(tx, tree.isp["id"], tree.tenant["id"], username="dan",
                                                   password="correct-horse-9", extension="102")
    dan = await database.transact(numberless)
    assert (await database.transact(origin_of, tree.isp["id"], dan["id"])).e164 == tree.subscriber["e164"]
