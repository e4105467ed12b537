import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from wevoip.store.notify import EVERYTHING, InvalidatedCache, Notifier, publish


async def received_on(notifier, channel):
    got = []
    arrived = defer.Deferred()

    def on(payload):
        got.append(payload)
        if not arrived.called:
            arrived.callback(None)
    await notifier.subscribe(channel, on)
    return got, arrived


def within(deferred, seconds=5.0):
    return deferred.addTimeout(seconds, reactor)


@pytest_twisted.ensureDeferred
async def test_a_committed_change_reaches_every_node_and_a_rolled_back_one_none(database, dsn):
    node_a, node_b = Notifier(reactor, dsn), Notifier(reactor, dsn)
    await node_a.start()
    await node_b.start()
    try:
        got_a, arrived_a = await received_on(node_a, "domains")
        got_b, arrived_b = await received_on(node_b, "domains")

        async def failing(tx):
            await publish(tx, "domains", "rolled.back")
            raise RuntimeError("abort")
        with pytest.raises(RuntimeError):
            await database.transact(failing)
        await database.transact(publish, "domains", "acme.example.net")
        await within(arrived_a)
        await within(arrived_b)
        assert got_a == got_b == ["acme.example.net"]
    finally:
        node_a.stop()
        node_b.stop()


@pytest_twisted.ensureDeferred
async def test_a_cache_forgets_what_another_node_published(database, dsn):
    notifier = Notifier(reactor, dsn)
    await notifier.start()
    try:
        cache = InvalidatedCache("tenants")
        await cache.attach(notifier)
        cache.put("acme.example.net", {"tenant": 1})
        cache.put("other.example.net", {"tenant": 2})
        got, arrived = await received_on(notifier, "tenants")
        await database.transact(publish, "tenants", "acme.example.net")
        await within(arrived)
        assert "acme.example.net" not in cache and cache.get("other.example.net") == {"tenant": 2}
        got.clear()
        second = defer.Deferred()
        await notifier.subscribe("tenants", lambda payload: second.called or second.callback(None))
        await database.transact(publish, "tenants", EVERYTHING)
        await within(second)
        assert len(cache) == 0
    finally:
        notifier.stop()


def test_channel_names_are_checked():
    with pytest.raises(ValueError):
        InvalidatedCache('bad"; drop table isps; --')


def test_a_limited_cache_forgets_its_oldest_entry():
    cache = InvalidatedCache("sip_domains", limit=2)
    for key in ("a", "b", "c"):
        cache.put(key, key.upper())
    assert "a" not in cache and cache.get("c") == "C" and len(cache) == 2
