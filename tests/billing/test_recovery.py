"""Calls a dead node left: one record each from its active_calls rows, billed or free."""

import datetime

import pytest_twisted
from twisted.internet import defer

from tests.billing.world import NOW, authorise, build_world
from wevoip.billing.calls import simulate_call
from wevoip.billing.recovery import recover_calls, recover_dead_nodes
from wevoip.store import calls, outbox

UK = "+442071838750"
BEAT = NOW + datetime.timedelta(seconds=90)
RESTART = NOW + datetime.timedelta(hours=1)


def admit(world, call_id: str, node: str, *, billed: bool = False, **facts):
    """A call admitted as the B2BUA does: authorised first when it costs money, then counted."""
    tree = world.tree

    async def work(tx):
        reservation = None
        if billed:
            reservation = (await authorise(world, UK, call_id=call_id, node=node,
                                           subscriber_id=tree.subscriber["id"])(tx)).reservation_id
        row = await calls.admit_call(
            tx, world.isp_id, customer_id=world.customer_id, tenant_id=tree.tenant["id"], call_id=call_id, node=node,
            direction="outbound" if billed else "internal", carrier_id=world.one["id"] if billed else None,
            gateway_id=tree.gateway["id"] if billed else None, subscriber_id=tree.subscriber["id"],
            caller_dialled="100", caller_e164="+15550100100", callee_dialled="0442071838750" if billed else "101",
            callee_e164=UK if billed else "+15550100101", **facts)
        return row["id"], reservation
    return work


async def answer(database, world, admitted, at=NOW):
    active_id, reservation_id = admitted
    assert await database.transact(calls.mark_answered, world.isp_id, active_call_id=active_id,
                                   reservation_id=reservation_id, at=at) == (2 if reservation_id else 1)


async def four_calls(database, world, node="crashed"):
    """Answered and ringing, free and billed, on `node`, beating last at BEAT; one on a live node."""
    await database.fetch("update customers set max_concurrent_calls = 10 where id = %s returning id",
                         (world.customer_id,))
    free = await database.transact(admit(world, "free@a", node))
    billed = await database.transact(admit(world, "billed@a", node, billed=True))
    await database.transact(admit(world, "ringing-free@a", node))
    await database.transact(admit(world, "ringing-billed@a", node, billed=True))
    await database.transact(admit(world, "alive@b", "live"))
    await database.fetch("update active_calls set started_at = %s returning id", (NOW,))   # the tests' clock, not the server's
    await answer(database, world, free)
    await answer(database, world, billed)
    await database.transact(calls.touch_calls, node, BEAT)
    await database.transact(calls.touch_calls, "live", RESTART)


async def by_call(database, world):
    rows = await database.fetch("select * from cdrs where isp_id = %s order by a_call_id", (world.isp_id,))
    return {row["a_call_id"]: row for row in rows}


async def ended_events(database, world):
    rows = await database.transact(outbox.list_outbox, world.isp_id)
    return sorted(row["payload"]["data"]["call_id"] for row in rows
                  if row["kind"] == "webhook" and row["payload"]["event"] == "call.ended")


@pytest_twisted.ensureDeferred
async def test_a_dead_nodes_calls_become_one_record_each_at_its_last_heartbeat(database):
    world = await build_world(database, "recover.example.net")
    await four_calls(database, world)
    records = await database.transact(recover_calls, "crashed", RESTART)
    assert sorted(r["a_call_id"] for r in records) == ["billed@a", "free@a", "ringing-billed@a", "ringing-free@a"]
    cdrs = await by_call(database, world)
    tree = world.tree
    for call_id in ("free@a", "billed@a"):
        cdr = cdrs[call_id]
        assert (cdr["disposition"], cdr["hangup_by"], cdr["answered_at"], cdr["ended_at"]) == \
            ("answered", "system", NOW, BEAT), call_id
        assert cdr["talk_ms"] == 90_000 and cdr["node"] == "crashed"
        assert (cdr["customer_id"], cdr["tenant_id"], cdr["subscriber_id"]) == \
            (world.customer_id, tree.tenant["id"], tree.subscriber["id"])
        assert (cdr["caller_dialled"], cdr["caller_e164"]) == ("100", "+15550100100")
    assert (cdrs["free@a"]["callee_e164"], cdrs["free@a"]["price"], cdrs["free@a"]["direction"]) == \
        ("+15550100101", 0, "internal")
    billed = cdrs["billed@a"]
    assert (billed["callee_dialled"], billed["callee_e164"], billed["carrier_id"], billed["gateway_id"]) == \
        ("0442071838750", UK, world.one["id"], tree.gateway["id"])
    quoted = await database.transact(lambda tx: simulate_call(tx, world.isp_id, world.customer_id, UK, 90_000,
                                                              at=NOW, indexes=world.indexes))
    assert billed["price"] == quoted["price"] > 0 and billed["billable_seconds"] == quoted["billable_seconds"]
    charge = await database.fetch("select amount, cdr_id from ledger where id = %s", (billed["ledger_id"],))
    assert (-charge[0]["amount"], charge[0]["cdr_id"]) == (billed["price"], billed["id"])
    for call_id in ("ringing-free@a", "ringing-billed@a"):
        cdr = cdrs[call_id]
        assert (cdr["disposition"], cdr["answered_at"], cdr["talk_ms"], cdr["price"], cdr["hangup_by"]) == \
            ("failed", None, 0, 0, "system"), call_id
        assert cdr["ended_at"] == BEAT
    assert await ended_events(database, world) == sorted(cdrs)
    left = await database.fetch("select call_id from active_calls where isp_id = %s", (world.isp_id,))
    assert [row["call_id"] for row in left] == ["alive@b"]
    reserved = await database.fetch("select call_id from call_reservations where isp_id = %s", (world.isp_id,))
    assert reserved == []


@pytest_twisted.ensureDeferred
async def test_recovering_again_or_twice_at_once_records_nothing_more(database):
    world = await build_world(database, "again.example.net")
    await four_calls(database, world)
    both = await defer.DeferredList([
        defer.Deferred.fromCoroutine(database.transact(recover_calls, "crashed", RESTART)),
        defer.Deferred.fromCoroutine(database.transact(recover_calls, "crashed", None))], fireOnOneErrback=True)
    assert sorted(len(records) for _, records in both) in ([0, 4], [1, 3], [2, 2])
    assert sum(len(records) for _, records in both) == 4
    assert await database.transact(recover_calls, "crashed", RESTART) == []
    assert len(await by_call(database, world)) == 4
    assert len(await ended_events(database, world)) == 4


@pytest_twisted.ensureDeferred
async def test_a_call_admitted_since_the_restart_is_not_recovered(database):
    world = await build_world(database, "fresh.example.net")
    restart = datetime.datetime.now(datetime.timezone.utc)      # admission stamps the database's clock
    await database.transact(admit(world, "new@a", "crashed"))
    assert await database.transact(recover_calls, "crashed", restart) == []
    assert await database.transact(calls.count_active_calls, world.isp_id) == 1


@pytest_twisted.ensureDeferred
async def test_another_node_closes_the_calls_of_a_node_whose_heartbeat_stopped(database):
    world = await build_world(database, "dead.example.net")
    await four_calls(database, world, node="gone")
    await database.transact(admit(world, "mine@c", "me"))     # a sixth call
    await database.fetch("update active_calls set last_seen_at = %s where node = 'me' returning id", (NOW,))
    seen_before = BEAT - datetime.timedelta(seconds=1)
    assert await database.transact(recover_dead_nodes, "me", seen_before) == []
    records = await database.transact(recover_dead_nodes, "me", BEAT + datetime.timedelta(seconds=1))
    assert sorted(r["a_call_id"] for r in records) == ["billed@a", "free@a", "ringing-billed@a", "ringing-free@a"]
    assert all(r["node"] == "gone" and r["ended_at"] == BEAT for r in records)
    left = await database.fetch("select call_id from active_calls where isp_id = %s order by call_id", (world.isp_id,))
    assert [row["call_id"] for row in left] == ["alive@b", "mine@c"]
