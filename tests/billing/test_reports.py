import datetime
from decimal import Decimal as D

import pytest
import pytest_twisted

from tests.billing.world import NOW, answered_for, authorise, build_world
from wevoip.billing.calls import settle_call
from wevoip.store import calls, reports
from wevoip.store.errors import Invalid

PERIOD = {"since": NOW - datetime.timedelta(days=1), "until": NOW + datetime.timedelta(days=1)}


@pytest_twisted.ensureDeferred
async def test_reports_add_up_the_calls_and_the_ledger(database):
    world = await build_world(database, markup_percent="50")
    subscriber_id = world.tree.subscriber["id"]
    for n, seconds in enumerate((60, 120)):
        auth = await database.transact(authorise(world, "+12125550100", call_id=f"r{n}", subscriber_id=subscriber_id))
        await database.transact(settle_call, world.isp_id, auth.reservation_id, answered_for(seconds, world.one["id"]))
    isp_id = world.isp_id
    await database.alone(calls.insert_refusal, isp_id, call_id="r0", node="node-a", direction="outbound",
                         sip_code=402, reason="Payment Required: the balance is used up", at=NOW,
                         customer_id=world.customer_id, subscriber_id=subscriber_id, callee_dialled="12125550100")
    total = (await database.transact(lambda tx: reports.calls_report(tx, isp_id, **PERIOD)))[0]
    assert total["calls"] == 2 and total["refused"] == 1 and total["talk_ms"] == 180_000
    assert total["cost"] == D("0.027") and total["price"] == D("0.0405") and total["profit"] == D("0.0135")
    per_subscriber = await database.transact(lambda tx: reports.calls_report(tx, isp_id, group="subscriber", **PERIOD))
    assert [(row["username"], row["price"]) for row in per_subscriber] == [("alice", D("0.0405"))]
    per_customer = await database.transact(lambda tx: reports.calls_report(tx, isp_id, group="customer", **PERIOD))
    assert per_customer[0]["customer_name"] == "Acme" and per_customer[0]["calls"] == 2
    subscribers = await database.transact(lambda tx: reports.subscribers_report(tx, isp_id, **PERIOD))
    assert [(row["username"], row["calls"]) for row in subscribers] == [("alice", 2)]
    daily = await database.transact(lambda tx: reports.daily_report(tx, isp_id, **PERIOD))
    assert [(d["day"], d["minutes"], d["revenue"]) for d in daily] == [
        ("2026-11-22", D("0"), D("0")), ("2026-11-23", D("3.00"), D("0.0405")), ("2026-11-24", D("0"), D("0"))]
    money = await database.transact(lambda tx: reports.financial_report(
        tx, isp_id, since=datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc), until=datetime.datetime(2100, 1, 1, tzinfo=datetime.timezone.utc)))
    assert sum(row["deposits"] for row in money) == D("10") and sum(row["costs"] for row in money) == D("0.027")
    assert sum(row["revenue"] for row in money) == D("0.0405")
    with pytest.raises(Invalid):
        await database.transact(lambda tx: reports.calls_report(tx, isp_id, group="tenant", **PERIOD))
