import datetime
from decimal import Decimal as D

import pytest_twisted
from twisted.internet import defer, reactor, task
from twisted.internet.task import deferLater
from twisted.logger import globalLogPublisher

from tests.billing.world import NOW, authorise, build_world
from tests.store.test_connection_loss import end_sessions, until
from wevoip.billing.calls import CallEnd, authorise_call, settle_call
from wevoip.billing.recurring import BillingTimer
from wevoip.store import calls, customers, pricing, recurring
from wevoip.store.calls import mark_answered
from wevoip.store.database import Database

DAY = 86400


def clock_at(moment: datetime.datetime) -> task.Clock:
    clock = task.Clock()
    clock.advance(moment.timestamp())
    return clock


async def answered_call(database, world, call_id):
    auth = await database.transact(authorise(world, call_id=call_id))
    await database.transact(mark_answered, world.isp_id, active_call_id=None, reservation_id=auth.reservation_id,
                            at=NOW)


async def fees(database, world):
    return await database.fetch("select kind, period, amount from recurring_charges where customer_id = %s"
                                " order by period, kind", (world.customer_id,))


@pytest_twisted.ensureDeferred
async def test_fees_are_charged_once_per_period_across_restarts_and_nodes(database):
    world = await build_world(database, monthly_fee="15", setup_fee="25", did_monthly_fee="1.5")
    await database.fetch("update customers set billing_day = 20 where id = %s returning id", (world.customer_id,))
    await database.transact(lambda tx: pricing.set_did_billing(tx, world.isp_id, world.tree.did["id"], e911=True))
    await database.transact(lambda tx: pricing.set_plan_pricing(tx, world.isp_id, world.tree.plan["id"],
                                                                e911_monthly_fee="2"))
    clock = clock_at(NOW)                                  # 23 November: the period began on the 20th
    nodes = [BillingTimer(clock, lambda: defer.succeed(database), f"node-{n}", interval_seconds=DAY) for n in range(2)]
    for node in nodes:
        node.startService()
    await defer.gatherResults([node.tick() for node in nodes])
    # Two DIDs: the tree's and the pilot's own number (a subscriber's number is a held DID).
    assert [(f["kind"], f["period"], f["amount"]) for f in await fees(database, world)] == [
        ("did", "2026-11", D("1.5")), ("did", "2026-11", D("1.5")), ("e911", "2026-11", D("2")),
        ("monthly", "2026-11", D("15")), ("did_setup", "once", D("0")), ("did_setup", "once", D("0")),
        ("e911_setup", "once", D("0")), ("setup", "once", D("25"))]
    restarted = BillingTimer(clock, lambda: defer.succeed(database), "node-0", interval_seconds=DAY)
    for node in nodes:
        await node.stopService()
    restarted.startService()
    await restarted.tick()
    assert len(await fees(database, world)) == 8
    clock.advance(27 * DAY)                                # 20 December
    await restarted.tick()
    december = [f for f in await fees(database, world) if f["period"] == "2026-12"]
    assert sorted(f["kind"] for f in december) == ["did", "did", "e911", "monthly"]
    customer = await database.transact(customers.get_customer, world.isp_id, world.customer_id)
    assert customer["period_start"] == datetime.date(2026, 12, 20)
    assert customer["next_billing_date"] == datetime.date(2027, 1, 20)
    assert customer["balance"] == D("10") - D("25") - 2 * (D("15") + 2 * D("1.5") + D("2"))
    await restarted.stopService()


@pytest_twisted.ensureDeferred
async def test_a_restarted_node_settles_the_calls_it_left(database):
    world = await build_world(database)
    await answered_call(database, world, "lost")
    timer = BillingTimer(clock_at(NOW + datetime.timedelta(minutes=5)), lambda: defer.succeed(database), "node-a")
    timer.startService()
    await timer.tick()
    await timer.stopService()
    assert await database.fetch("select * from call_reservations") == []
    cdr = (await database.fetch("select * from cdrs"))[0]
    assert cdr["a_call_id"] == "lost" and cdr["disposition"] == "answered" and cdr["hangup_by"] == "system"


def test_billing_dates_follow_the_billing_day():
    assert recurring.first_billing_date(datetime.date(2026, 11, 23), 20) == datetime.date(2026, 11, 20)
    assert recurring.first_billing_date(datetime.date(2026, 1, 3), 20) == datetime.date(2025, 12, 20)
    assert recurring.next_billing_date(datetime.date(2026, 12, 20), 20) == datetime.date(2027, 1, 20)


@pytest_twisted.ensureDeferred
async def test_the_heartbeat_marks_this_nodes_calls_alive_and_closes_a_dead_nodes(database):
    world = await build_world(database)
    await answered_call(database, world, "live")
    for call_id, node in (("live", "node-a"), ("dead", "node-gone")):
        await database.transact(lambda tx: calls.admit_call(
            tx, world.isp_id, customer_id=world.customer_id, tenant_id=world.tree.tenant["id"], call_id=call_id,
            node=node, direction="internal"))
    await database.fetch("update active_calls set started_at = %s, last_seen_at = %s returning id", (NOW, NOW))
    clock = clock_at(NOW)
    # The beats are the test's own, awaited: the timer's loop (a day apart) must not race them.
    timer = BillingTimer(clock, lambda: defer.succeed(database), "node-a", interval_seconds=DAY,
                         heartbeat_seconds=DAY, dead_node_seconds=90)
    timer.startService()
    await timer.tick()
    clock.advance(60)
    await timer.beat()
    assert await database.fetch("select a_call_id from cdrs") == []      # 60 s without a beat: not yet dead
    clock.advance(31)
    await timer.beat()
    for table in ("call_reservations", "active_calls"):
        rows = await database.fetch(f"select call_id, last_seen_at from {table}")
        assert rows == [{"call_id": "live", "last_seen_at": NOW + datetime.timedelta(seconds=91)}], table
    [record] = await database.fetch("select a_call_id, node, disposition, ended_at from cdrs")
    assert record == {"a_call_id": "dead", "node": "node-gone", "disposition": "failed", "ended_at": NOW}
    await timer.stopService()


@pytest_twisted.ensureDeferred
async def test_free_minutes_start_again_on_the_billing_date(database):
    world = await build_world(database, free_minutes=5)
    await database.transact(recurring.bill_customer, world.isp_id, world.customer_id, NOW.date())

    async def call(call_id, at, seconds):
        auth = await database.transact(lambda tx: authorise_call(
            tx, world.isp_id, customer_id=world.customer_id, destination="+12125550100", call_id=call_id,
            node="n", indexes=world.indexes, at=at))
        end = CallEnd(ended_at=at + datetime.timedelta(seconds=seconds), disposition="answered", answered_at=at)
        return await database.transact(settle_call, world.isp_id, auth.reservation_id, end)
    assert (await call("first", NOW, 240))["free_minutes"] == 4
    assert (await call("second", NOW, 120))["free_minutes"] == 1          # one left, then money
    december = NOW + datetime.timedelta(days=8)                          # past 1 December
    await database.transact(recurring.bill_customer, world.isp_id, world.customer_id, december.date())
    assert (await call("third", december, 120))["free_minutes"] == 2


class _Outage:
    """The store, cut off for the first `failures` transactions (as during a failover)."""

    def __init__(self, database, failures: int):
        self.database = database
        self.failures = failures

    async def transact(self, *args, **kwargs):
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the database is unreachable")
        return await self.database.transact(*args, **kwargs)


@pytest_twisted.ensureDeferred
async def test_a_failed_heartbeat_is_logged_and_the_next_one_beats(database):
    world = await build_world(database)
    await database.transact(lambda tx: calls.admit_call(
        tx, world.isp_id, customer_id=world.customer_id, tenant_id=world.tree.tenant["id"], call_id="live",
        node="node-a", direction="internal"))
    clock = clock_at(NOW)
    timer = BillingTimer(clock, lambda: defer.succeed(_Outage(database, failures=2)), "node-a",
                         interval_seconds=DAY, heartbeat_seconds=30)
    timer.startService()          # the first run fails at once (the outage), the heartbeat starts anyway
    clock.advance(30)             # touch fails; the dead-node sweep runs
    for _ in range(400):          # the sweep's round trip ends on the real reactor; then the loop waits again
        await deferLater(reactor, 0.005, lambda: None)
        clock.advance(30)         # the loop beats again only if the failure did not stop it
        rows = await database.fetch("select last_seen_at from active_calls")
        if rows[0]["last_seen_at"] > NOW:
            break
    assert rows[0]["last_seen_at"] >= NOW + datetime.timedelta(seconds=60)
    await timer.stopService()


@pytest_twisted.ensureDeferred
async def test_while_the_database_is_away_the_timers_log_no_traceback_and_beat_again_after(dsn):
    """The store reports a loss once; the billing run and every heartbeat meanwhile say nothing."""
    store = Database(reactor, dsn, size=2)
    await store.connect()
    logged = []
    globalLogPublisher.addObserver(logged.append)
    timer = None
    try:
        world = await build_world(store)
        await store.transact(lambda tx: calls.admit_call(
            tx, world.isp_id, customer_id=world.customer_id, tenant_id=world.tree.tenant["id"], call_id="live",
            node="node-a", direction="internal"))
        end_sessions(dsn)
        await until(lambda: store.lost)
        clock = clock_at(NOW)
        timer = BillingTimer(clock, lambda: defer.succeed(store), "node-a", interval_seconds=DAY,
                             heartbeat_seconds=30)
        timer.startService()                    # the billing run finds the store away
        for _ in range(5):                      # five beats while it is away
            clock.advance(30)
            await deferLater(reactor, 0.01, lambda: None)
        assert not [event for event in logged if "log_failure" in event]
        assert timer._heartbeat.running
        await store.reconnect()
        for _ in range(400):                    # the next beat marks the call alive
            clock.advance(30)
            await deferLater(reactor, 0.005, lambda: None)
            rows = await store.fetch("select last_seen_at from active_calls")
            if rows[0]["last_seen_at"] > NOW:
                break
        assert rows[0]["last_seen_at"] > NOW + datetime.timedelta(seconds=150)
        assert not [event for event in logged if "log_failure" in event]
    finally:
        globalLogPublisher.removeObserver(logged.append)
        if timer is not None:
            await timer.stopService()
        await store.close()
