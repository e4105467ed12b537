import dataclasses
import datetime
import itertools
from decimal import Decimal as D

import pytest
import pytest_twisted
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import defer, reactor

from tests.billing.world import NOW, answered_for, authorise, build_world
from wevoip.billing.calls import CallRefused, FraudLocked, assess_call, free_record, settle_call, simulate_call, \
    write_fraud_lock
from wevoip.billing.recovery import recover_calls
from wevoip.store import calls as store_calls
from wevoip.store import customers, ledger, pricing, subscribers
from wevoip.store.calls import lock_calls, mark_answered, touch_calls
from wevoip.store.database import Database

EXAMPLES = itertools.count()   # hypothesis may draw one example twice; each needs its own ISP

UK = "+442071838750"
US = "+12125550100"


async def balance_and_ledger(database, world):
    row = (await database.fetch(
        "select c.balance, coalesce((select sum(amount) from ledger l where l.customer_id = c.id), 0) as total"
        " from customers c where c.id = %s", (world.customer_id,)))[0]
    return row["balance"], row["total"]


@pytest_twisted.ensureDeferred
async def test_a_call_is_priced_by_the_plans_markup_over_the_cheapest_carrier(database):
    world = await build_world(database, markup_fixed="0.0025", markup_percent="20")
    result = await database.transact(lambda tx: simulate_call(tx, world.isp_id, world.customer_id, US, 60_000,
                                                              at=NOW, indexes=world.indexes))
    assert result["per_minute"] == D("0.013800")       # (0.009 + 0.0025) x 1.2
    assert result["carriers"] == [world.one["id"], world.two["id"]]
    assert result["price"] == D("0.013800") and result["cost"] == D("0.009000")
    assert result["profit"] == D("0.004800")


@pytest_twisted.ensureDeferred
async def test_least_cost_or_priority_routing_never_at_a_loss(database):
    world = await build_world(database, markup_percent="50")     # sells UK at 0.0225
    quote = await database.transact(authorise(world))
    assert quote.carriers == (world.two["id"], world.one["id"])        # 0.015 before 0.02
    await database.transact(lambda tx: ledger.set_isp_billing(tx, world.isp_id, lcr_mode="priority"))
    await database.fetch("update carriers set lcr_priority = 5 where id = %s returning id", (world.one["id"],))
    quote = await database.transact(authorise(world, call_id="b@phone"))
    assert quote.carriers == (world.one["id"], world.two["id"])
    await database.transact(lambda tx: pricing.set_area_rates(tx, world.isp_id, world.tree.plan["id"],
                                                              [{"prefix": "44", "per_minute": "0.0160"}]))
    quote = await database.transact(authorise(world, call_id="c@phone"))
    assert quote.carriers == (world.two["id"],)                        # One would lose money
    await database.transact(lambda tx: ledger.set_isp_billing(tx, world.isp_id, allow_loss=True))
    quote = await database.transact(authorise(world, call_id="d@phone"))
    assert quote.carriers == (world.one["id"], world.two["id"])


@pytest.mark.parametrize("setup, reason", [
    ("no_rate", "no_rate"), ("suspended", "suspended"), ("locked", "locked"),
    ("premium", "class_not_allowed"), ("broke", "no_money"), ("isp_locked", "locked"),
])
@pytest_twisted.ensureDeferred
async def test_refusals_say_why(database, setup, reason):
    world = await build_world(database, balance=None if setup == "broke" else "10.00")
    destination = {"no_rate": "+33142685300", "premium": "+19005550100"}.get(setup, UK)

    async def prepare(tx):
        if setup == "suspended":
            await customers.set_customer_status(tx, world.isp_id, world.customer_id, "SUSPENDED")
        elif setup == "locked":
            await lock_calls(tx, world.isp_id, "customer", world.customer_id, "by hand")
        elif setup == "isp_locked":
            await lock_calls(tx, world.isp_id, "isp", world.isp_id, "by hand")
    await database.transact(prepare)
    with pytest.raises(CallRefused) as caught:
        await database.transact(authorise(world, destination))
    assert caught.value.reason == reason, caught.value
    assert await database.fetch("select * from call_reservations") == []


@pytest_twisted.ensureDeferred
async def test_a_hard_prepaid_call_gets_the_time_its_money_buys_and_settles_to_the_cent(database):
    world = await build_world(database, balance="0.10")      # UK at 0.015/min 30/6 + 0.01 via Two
    auth = await database.transact(authorise(world))
    assert auth.max_duration_ms == 360_000                  # 0.01 + 6 min x 0.015 = 0.10
    simulated = await database.transact(lambda tx: simulate_call(tx, world.isp_id, world.customer_id, UK, 400_000,
                                                                 at=NOW, indexes=world.indexes))
    cdr = await database.transact(settle_call, world.isp_id, auth.reservation_id, answered_for(400, world.two["id"]))
    assert cdr["talk_ms"] == 360_000 and cdr["price"] == D("0.1") and cdr["cost"] == D("0.1")
    assert simulated["price"] == D("0.1105")                # uncapped: 0.01 + 402 s x 0.015
    balance, total = await balance_and_ledger(database, world)
    assert balance == total == D("0")
    customer = (await database.fetch("select * from customers where id = %s", (world.customer_id,)))[0]
    assert customer["status"] == "SUSPENDED" and customer["balance_suspended"]
    with pytest.raises(CallRefused) as caught:
        await database.transact(authorise(world, call_id="again"))
    assert caught.value.reason == "no_money"
    await database.transact(lambda tx: ledger.add_payment(tx, world.isp_id, world.customer_id, amount="5",
                                                          description="top-up"))
    assert (await database.transact(authorise(world, call_id="after top-up"))).max_duration_ms > 0


@pytest_twisted.ensureDeferred
async def test_an_answered_call_whose_media_never_came_up_is_recorded_failed_and_costs_nothing(database):
    """Issue 12 point 3: a browser leg's DTLS failed after the SIP answer; nothing could be
    heard, so neither the priced settlement nor a free record counts any talk."""
    world = await build_world(database, balance="10.00")
    auth = await database.transact(authorise(world))
    failed = dataclasses.replace(answered_for(75, world.two["id"]), disposition="failed", hangup_by="system")
    before, _ = await balance_and_ledger(database, world)
    cdr = await database.transact(settle_call, world.isp_id, auth.reservation_id, failed)
    assert (cdr["disposition"], cdr["talk_ms"], cdr["billable_seconds"], cdr["price"]) == ("failed", 0, 0, 0)
    assert cdr["answered_at"] == NOW and cdr["duration_ms"] >= 0 and cdr["ledger_id"] is None
    assert (await balance_and_ledger(database, world))[0] == before
    free = free_record(failed, customer_id=world.customer_id, tenant_id=None, subscriber_id=None, node="n",
                       direction="internal", callee_e164=None, a_call_id="free@phone", started_at=NOW)
    assert (free["disposition"], free["talk_ms"]) == ("failed", 0)
    assert free_record(answered_for(75), customer_id=world.customer_id, tenant_id=None, subscriber_id=None, node="n",
                       direction="internal", callee_e164=None, a_call_id="talk@phone",
                       started_at=NOW)["talk_ms"] == 75_000


@pytest_twisted.ensureDeferred
async def test_simulating_gives_what_the_real_call_is_charged(database):
    world = await build_world(database, markup_fixed="0.0025", markup_percent="20", pulse=60)
    simulated = await database.transact(lambda tx: simulate_call(tx, world.isp_id, world.customer_id, US, 61_000,
                                                                 at=NOW, indexes=world.indexes))
    auth = await database.transact(authorise(world, US))
    cdr = await database.transact(settle_call, world.isp_id, auth.reservation_id, answered_for(61, world.one["id"]))
    assert cdr["price"] == simulated["price"] == D("0.0276")        # two whole pulses of 60 s
    assert cdr["cost"] == simulated["cost"] and cdr["profit"] == simulated["profit"]
    assert cdr["billable_seconds"] == 120 and cdr["callee_e164"] == US and cdr["disposition"] == "answered"
    entry = (await database.fetch("select * from ledger where cdr_id = %s", (cdr["id"],)))[0]
    assert entry["amount"] == -cdr["price"] and cdr["ledger_id"] == entry["id"]


@pytest_twisted.ensureDeferred
async def test_free_minutes_round_each_call_up_and_are_shared_by_concurrent_calls(database):
    world = await build_world(database, balance=None, free_minutes=5, management="HARD")
    first = await database.transact(authorise(world, US))
    assert first.max_duration_ms == 300_000               # no money, five free minutes
    with pytest.raises(CallRefused):
        await database.transact(authorise(world, US, call_id="second"))
    cdr = await database.transact(settle_call, world.isp_id, first.reservation_id, answered_for(191))
    assert cdr["free_minutes"] == 4 and cdr["price"] == 0   # 3:11 uses four minutes
    second = await database.transact(authorise(world, US, call_id="third"))
    assert second.max_duration_ms == 60_000


@pytest_twisted.ensureDeferred
async def test_incoming_did_minutes_and_forwarded_legs_are_rated_and_enforced(database):
    world = await build_world(database, balance="0.05", did_per_minute="0.01")
    did_id = world.tree.did["id"]
    inbound = await database.transact(authorise(world, world.tree.did["e164"], direction="inbound", did_id=did_id))
    assert inbound.max_duration_ms == 300_000
    with pytest.raises(CallRefused) as caught:
        await database.transact(authorise(world, world.tree.did["e164"], call_id="fw", direction="forwarded",
                                          did_id=did_id, forward_to=US))
    assert caught.value.reason == "no_money"                 # the incoming call holds it all
    forwarded = await database.transact(lambda tx: simulate_call(
        tx, world.isp_id, world.customer_id, world.tree.did["e164"], 60_000, at=NOW, indexes=world.indexes,
        direction="forwarded", did_id=did_id, forward_to=US))
    assert forwarded["per_minute"] == D("0.019") and forwarded["cost"] == D("0.009")   # 0.01 in + 0.009 out
    cdr = await database.transact(settle_call, world.isp_id, inbound.reservation_id, answered_for(60))
    assert cdr["direction"] == "inbound" and cdr["price"] == D("0.01") and cdr["did_id"] == did_id


@pytest_twisted.ensureDeferred
async def test_a_crashed_nodes_calls_are_settled_on_its_next_start(database):
    world = await build_world(database)
    auth = await database.transact(authorise(world, node="node-crashed"))
    other = await database.transact(authorise(world, call_id="alive", node="node-b"))
    await database.transact(mark_answered, world.isp_id, active_call_id=None, reservation_id=auth.reservation_id,
                            at=NOW)
    await database.transact(touch_calls, "node-crashed", NOW + datetime.timedelta(seconds=90))
    unanswered = await database.transact(authorise(world, call_id="ringing", node="node-crashed"))
    restart = NOW + datetime.timedelta(hours=1)
    records = await database.transact(recover_calls, "node-crashed", restart)
    assert sorted((r["a_call_id"], r["disposition"], r["talk_ms"]) for r in records) == [
        ("a@phone", "answered", 90_000), ("ringing", "failed", 0)]
    assert records[0]["hangup_by"] == "system" and unanswered.reservation_id
    left = await database.fetch("select id from call_reservations")
    assert [row["id"] for row in left] == [other.reservation_id]
    balance, total = await balance_and_ledger(database, world)
    assert balance == total


@pytest_twisted.ensureDeferred
async def test_a_spend_cap_locks_the_account_and_mails_customer_and_isp(database):
    world = await build_world(database, balance="10")
    await database.transact(lambda tx: ledger.set_customer_billing(tx, world.isp_id, world.customer_id,
                                                                   daily_spend_cap="0.05"))
    auth = await database.transact(authorise(world))
    await database.transact(settle_call, world.isp_id, auth.reservation_id, answered_for(240, world.two["id"]))
    with pytest.raises(CallRefused) as caught:
        await database.transact(authorise(world, call_id="next"))
    assert caught.value.reason == "locked" and "daily spend cap" in caught.value.message
    customer = (await database.fetch("select * from customers where id = %s", (world.customer_id,)))[0]
    assert customer["calls_locked_at"] is not None
    mail = await database.fetch("select payload from outbox where kind = 'mail' and dedupe_key like 'calls-locked:%%'")
    assert sorted(row["payload"]["to"] for row in mail) == ["ops@billing.example.net", "payer@acme.example"]
    hooks = await database.fetch("select payload from outbox where kind = 'webhook' and dedupe_key like 'calls-locked:%%'")
    assert [(hook["payload"]["event"], hook["payload"]["data"]["customer_id"]) for hook in hooks] == \
        [("account.locked", world.customer_id)]


@pytest_twisted.ensureDeferred
async def test_a_refusal_by_the_fraud_guard_carries_its_lock_which_is_written_once(database):
    """The refused authorisation rolls back; the lock it names is written apart, once
    however many calls or nodes refused on the same limit."""
    world = await build_world(database, balance="10")
    await database.transact(authorise(world))       # holds money: spend counts calls in progress
    await database.transact(lambda tx: ledger.set_customer_billing(tx, world.isp_id, world.customer_id,
                                                                   daily_spend_cap="0.01"))
    refusals = []
    for call_id in ("a", "b"):
        with pytest.raises(FraudLocked) as caught:
            await database.transact(authorise(world, call_id=call_id))
        refusals.append(caught.value)
    customer = (await database.fetch("select * from customers where id = %s", (world.customer_id,)))[0]
    assert customer["calls_locked_at"] is None, "the refusal's transaction wrote nothing"
    lock = refusals[0].lock
    assert (lock.level, lock.object_id, refusals[0].reason) == ("customer", world.customer_id, "locked")
    written = [await database.transact(write_fraud_lock, refused.lock) for refused in refusals]
    assert written == [True, False]
    customer = (await database.fetch("select * from customers where id = %s", (world.customer_id,)))[0]
    assert customer["calls_locked_at"] is not None and customer["calls_lock_reason"] == lock.reason
    hooks = await database.fetch("select id from outbox where kind = 'webhook' and dedupe_key like 'calls-locked:%%'")
    trail = await database.fetch("select action from audit_trail where isp_id = %s", (world.isp_id,))
    assert len(hooks) == 1 and [row["action"] for row in trail] == ["calls.locked"]


@pytest_twisted.ensureDeferred
async def test_a_plan_allows_destination_classes(database):
    world = await build_world(database, allowed_classes=["domestic", "international", "satellite"])
    auth = await database.transact(authorise(world, "+881631234567"))
    assert auth.quote.sell.dest_class == "satellite"


@pytest_twisted.ensureDeferred
async def test_a_subscribers_own_cap_locks_only_that_subscriber(database):
    world = await build_world(database)
    subscriber_id = world.tree.subscriber["id"]
    await database.fetch("update subscribers set hourly_spend_cap = 0.01 where id = %s returning id", (subscriber_id,))
    auth = await database.transact(authorise(world, subscriber_id=subscriber_id))
    cdr = await database.transact(settle_call, world.isp_id, auth.reservation_id, answered_for(60, world.two["id"]))
    assert cdr["subscriber_id"] == subscriber_id and cdr["tenant_id"] == world.tree.tenant["id"]
    with pytest.raises(CallRefused) as caught:
        await database.transact(authorise(world, call_id="x", subscriber_id=subscriber_id))
    assert "subscriber" in caught.value.message
    await database.transact(authorise(world, call_id="y"))
    locked = await database.transact(subscribers.get_subscriber, world.isp_id, subscriber_id)
    assert locked["calls_locked_at"] is not None




@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls=st.lists(st.integers(min_value=0, max_value=900), min_size=2, max_size=12),
       balance=st.decimals(min_value=D("0.01"), max_value=D("0.50"), places=2))
@pytest_twisted.ensureDeferred
async def test_a_hard_prepaid_account_never_ends_below_zero_however_many_calls_run(database, dsn, calls, balance):
    """All calls are authorised at once by two nodes (two pools on one PostgreSQL), then
    run past their maximum; the balance stays at or above zero and the ledger sums to it.
    Every other call is authorised as the B2BUA does: assessed, and its hold written with
    its admission in one statement."""
    world = await build_world(database, namespace=f"p{next(EXAMPLES)}.example.net", balance=str(balance))
    other_node = Database(reactor, dsn, size=4)
    await other_node.connect()

    async def one(index, seconds):
        node = (database, other_node)[index % 2]
        call_id, node_name = f"c{index}@{world.isp_id}", f"node-{index % 2}"   # call rows are unique per node

        async def admitted(tx):
            assessment = await assess_call(tx, world.isp_id, customer_id=world.customer_id,
                                           destination="+442071838750", indexes=world.indexes, at=NOW)
            row = await store_calls.admit_call(tx, world.isp_id, customer_id=world.customer_id,
                                               tenant_id=world.tree.tenant["id"], call_id=call_id, node=node_name,
                                               direction="outbound", reservation=assessment.reservation, last=True)
            return row["reservation_id"]
        try:
            if index % 4 < 2:
                reservation_id = (await node.transact(authorise(world, call_id=call_id, node=node_name))).reservation_id
            else:
                reservation_id = await node.transact(admitted)
        except CallRefused:
            return None
        return await node.transact(settle_call, world.isp_id, reservation_id, answered_for(seconds, world.two["id"]))
    await database.transact(customers.update_customer, world.isp_id, world.customer_id, max_concurrent_calls=100)
    try:
        records = await defer.gatherResults([defer.Deferred.fromCoroutine(one(i, s)) for i, s in enumerate(calls)])
    finally:
        await other_node.close()
    balance_now, total = await balance_and_ledger(database, world)
    assert balance_now == total and balance_now >= 0
    assert sum(r["price"] for r in records if r is not None) == balance - balance_now
