"""The node's cache of ISP rows and plan pricing: kept while nothing changes, forgotten on
every node when anything writes those tables (migration 0075's triggers), whoever writes."""

from decimal import Decimal as D

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from tests.billing.world import authorise, build_world
from wevoip.billing.calls import CallRefused
from wevoip.billing.decks import DeckIndexes
from wevoip.store import calls, ledger, pricing
from wevoip.store.notify import InvalidatedCache, Notifier


class _Heard:
    """Keys published on the channel; subscribed after the cache, so when a key is heard here
    the cache has forgotten it already."""

    def __init__(self):
        self.keys: list[str] = []
        self._waiting: dict[str, defer.Deferred] = {}

    def __call__(self, key: str) -> None:
        self.keys.append(key)
        waiter = self._waiting.pop(key, None)
        if waiter is not None:
            waiter.callback(key)

    def wait(self, key: str) -> defer.Deferred:
        if key in self.keys:
            return defer.succeed(key)
        return self._waiting.setdefault(key, defer.Deferred())


async def _attached(dsn) -> tuple[Notifier, DeckIndexes, _Heard]:
    notifier = Notifier(reactor, dsn)
    await notifier.start()
    indexes = DeckIndexes()
    await indexes.attach(notifier)
    heard = _Heard()
    await notifier.subscribe(pricing.RULES_CHANNEL, heard)
    return notifier, indexes, heard


@pytest_twisted.ensureDeferred
async def test_plan_rules_are_kept_until_area_rates_change(database, dsn):
    world = await build_world(database, "rulescache.example.net")
    plan_id = world.tree.plan["id"]
    notifier, indexes, heard = await _attached(dsn)
    try:
        first = await database.transact(indexes.plan, world.isp_id, plan_id)
        assert await database.transact(indexes.plan, world.isp_id, plan_id) is first
        assert first[1].area_rates.match("+442071838750") is None
        await database.transact(pricing.set_area_rates, world.isp_id, plan_id,
                                [{"prefix": "44", "per_minute": "0.3000"}])
        await heard.wait(f"plan:{plan_id}")
        plan, rules = await database.transact(indexes.plan, world.isp_id, plan_id)
        assert rules.area_rates.match("+442071838750").per_minute == D("0.3")
    finally:
        notifier.stop()


@pytest_twisted.ensureDeferred
async def test_an_isp_locked_by_any_writer_refuses_calls_on_every_node(database, dsn):
    world = await build_world(database, "ispcache.example.net")
    notifier, indexes, heard = await _attached(dsn)
    world.indexes = indexes
    try:
        authorised = await database.transact(authorise(world, call_id="before"))
        assert authorised.max_duration_ms > 0
        await database.transact(calls.lock_calls, world.isp_id, "isp", world.isp_id, "fraud")
        await heard.wait(f"isp:{world.isp_id}")
        with pytest.raises(CallRefused) as refused:
            await database.transact(authorise(world, call_id="after"))
    finally:
        notifier.stop()
    assert refused.value.reason == "locked"


@pytest_twisted.ensureDeferred
async def test_the_customer_is_never_cached_so_money_is_always_current(database, dsn):
    world = await build_world(database, "moneycache.example.net", balance="0.05")
    notifier, indexes, heard = await _attached(dsn)
    world.indexes = indexes
    try:
        small = await database.transact(authorise(world, call_id="one"))
        await database.transact(ledger.add_payment, world.isp_id, world.customer_id, amount="10.00",
                                description="top-up")
        bigger = await database.transact(authorise(world, call_id="two"))
    finally:
        notifier.stop()
    assert bigger.max_duration_ms > small.max_duration_ms


@pytest_twisted.ensureDeferred
async def test_without_a_notifier_nothing_is_kept(database):
    world = await build_world(database, "nocache.example.net")
    indexes = DeckIndexes()
    first = await database.transact(indexes.plan, world.isp_id, world.tree.plan["id"])
    assert await database.transact(indexes.plan, world.isp_id, world.tree.plan["id"]) is not first
    assert len(indexes.rules) == 0


def test_a_value_read_before_a_notification_is_not_kept():
    cache = InvalidatedCache("pricing_rules")
    read_at = cache.generation
    cache._forget("plan:1")          # a change committed while the value was being read
    cache.put("plan:1", "stale", read_at=read_at)
    assert "plan:1" not in cache
    cache.put("plan:1", "fresh", read_at=cache.generation)
    assert cache.get("plan:1") == "fresh"
