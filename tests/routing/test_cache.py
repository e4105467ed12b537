"""The node's routing cache: served from memory once warm, and a change made through any
pool (the store's functions or plain SQL: the triggers publish it) is seen by the next
call on every node once the notification has arrived."""

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from plugins.dialplan_presets import us
from tests.routing.test_router import _world
from wevoip.routing.cache import RoutingCache
from wevoip.routing.router import Local, Outbound, Refusal, origin_of, route_from_subscriber, route_from_trunk
from wevoip.store import carriers, dids, routing
from wevoip.store.database import Database
from wevoip.store.notify import Notifier


class NoStore:
    """A transaction that must not be used: routing answered from memory."""

    def __getattr__(self, name):
        raise AssertionError(f"the store was asked ({name}) although the cache is warm")


class Node:
    """A node's share of the test: its own pool, notifier and cache."""

    def __init__(self, dsn):
        self.database = Database(reactor, dsn, size=1)
        self.notifier = Notifier(reactor, dsn)
        self.cache = RoutingCache()
        self.heard = []
        self._waiting = []

    async def start(self):
        await self.database.connect()
        await self.notifier.start()
        await self.cache.attach(self.notifier)
        await self.notifier.subscribe(routing.CHANNEL, self._heard)

    def _heard(self, payload):
        self.heard.append(payload)
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            waiter.callback(payload)

    def notified(self):
        waiter = defer.Deferred()
        self._waiting.append(waiter)
        return waiter.addTimeout(5, reactor)

    async def stop(self):
        self.notifier.stop()
        await self.database.close()


@pytest_twisted.async_yield_fixture
async def nodes(dsn, database):
    pair = (Node(dsn), Node(dsn))
    for node in pair:
        await node.start()
    yield pair
    for node in pair:
        await node.stop()


async def routed(node, origin, dialled):
    return await node.database.transact(route_from_subscriber, origin, dialled, us.rules(), cache=node.cache)


@pytest_twisted.ensureDeferred
async def test_a_warm_cache_routes_every_kind_of_call_without_the_store(database, nodes):
    tree, origin, bob, other, carol, *_ = await _world(database)
    a, _ = nodes
    for dialled in ("100", "5550177", "2125550100"):
        first = await routed(a, origin, dialled)
        assert await route_from_subscriber(NoStore(), origin, dialled, us.rules(), cache=a.cache) == first
    assert await a.database.transact(origin_of, tree.isp["id"], bob["id"], cache=a.cache) == origin
    assert await origin_of(NoStore(), tree.isp["id"], bob["id"], cache=a.cache) == origin
    inbound = await a.database.transact(route_from_trunk, "192.0.2.10", "+14155550177", cache=a.cache)
    assert await route_from_trunk(NoStore(), "192.0.2.10", "+14155550177", cache=a.cache) == inbound
    assert inbound[1] == Local(tree.isp["id"], tree.customer["id"], other["id"], carol["id"], "+14155550177")


@pytest_twisted.ensureDeferred
async def test_a_gateway_disabled_on_one_node_is_left_out_by_the_next_call_on_both(database, nodes):
    tree, origin, bob, other, carol, cheap, cheap_gw = await _world(database)
    a, b = nodes
    for node in nodes:
        assert [g.gateway_id for g in (await routed(node, origin, "2125550100")).gateways] == \
            [tree.gateway["id"], cheap_gw["id"]]
    heard_a, heard_b = a.notified(), b.notified()
    await b.database.transact(carriers.update_gateway, tree.isp["id"], tree.gateway["id"], enabled=False)
    await heard_a
    await heard_b
    for node in nodes:
        route = await routed(node, origin, "2125550100")
        assert isinstance(route, Outbound) and [g.gateway_id for g in route.gateways] == [cheap_gw["id"]]


@pytest_twisted.ensureDeferred
async def test_a_did_rerouted_by_plain_sql_reaches_its_new_subscriber_on_both_nodes(database, nodes):
    tree, origin, bob, other, carol, *_ = await _world(database)
    a, b = nodes
    for node in nodes:
        _, route = await node.database.transact(route_from_trunk, "192.0.2.10", "+14155550177", cache=node.cache)
        assert route.subscriber_id == carol["id"]
    heard_a, heard_b = a.notified(), b.notified()
    await database.transact(lambda tx: tx.execute(
        "update dids set tenant_id = %s, subscriber_id = %s where e164 = '+14155550177'",
        (tree.tenant["id"], bob["id"])))
    await heard_a
    await heard_b
    for node in nodes:
        _, route = await node.database.transact(route_from_trunk, "192.0.2.10", "+14155550177", cache=node.cache)
        assert route == Local(tree.isp["id"], tree.customer["id"], tree.tenant["id"], bob["id"], "+14155550177")


@pytest_twisted.ensureDeferred
async def test_a_new_number_and_a_carrier_switched_off_are_seen(database, nodes):
    tree, origin, bob, other, carol, cheap, cheap_gw = await _world(database)
    a, _ = nodes
    assert isinstance(await routed(a, origin, "+14155550188"), Outbound)

    async def new_number(tx):
        did = (await dids.add_dids(tx, tree.isp["id"], "+14155550188"))[0]
        await dids.allocate_did(tx, tree.isp["id"], did["id"], tree.tenant["id"])
        await dids.route_did(tx, tree.isp["id"], did["id"], bob["id"])
    heard = a.notified()
    await database.transact(new_number)
    await heard
    assert (await routed(a, origin, "+14155550188")).subscriber_id == bob["id"]
    heard = a.notified()
    await database.transact(lambda tx: tx.execute("update carriers set enabled = false"))
    await heard
    assert isinstance(await routed(a, origin, "2125550100"), Refusal)
    _, route = await a.database.transact(route_from_trunk, "192.0.2.10", "+14155550177", cache=a.cache)
    assert route.status == 403


@pytest_twisted.ensureDeferred
async def test_a_value_read_while_a_change_arrived_is_not_kept(database, nodes):
    tree, origin, *_ = await _world(database)
    a, _ = nodes
    gateways = a.cache.outbound_gateways

    async def read_while_changed(tx, isp_id):
        rows = await routing.outbound_gateways(tx, isp_id)
        a.cache.spaces._forget(str(isp_id))     # a notification arrives during the read
        return rows
    await a.cache._read(str(tree.isp["id"]), "gateways",
                        lambda: a.database.transact(read_while_changed, tree.isp["id"]))
    with pytest.raises(AssertionError):
        await gateways(NoStore(), tree.isp["id"])
