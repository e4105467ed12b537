"""Heartbeats and settlements racing on one node's calls, on a real PostgreSQL: they take a
call's rows in one order, so none is a deadlock's victim and every call gets its record."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest_twisted
from twisted.internet import defer, reactor, task

from tests.billing.world import NOW, authorise, build_world
from wevoip.billing.calls import CallEnd
from wevoip.billing.recurring import BillingTimer
from wevoip.calls.records import CallRecords, PendingRecord
from wevoip.store import calls
from wevoip.store.database import Database

UK = "+442071838750"
NODE = "racing"
CALLS = 60


async def _answered_calls(database, world) -> list[tuple[int, int]]:
    tree = world.tree
    await database.fetch("update customers set max_concurrent_calls = 1000 where id = %s returning id",
                         (world.customer_id,))

    async def one(tx, n):
        held = await authorise(world, UK, call_id=f"call-{n}@race", node=NODE, subscriber_id=tree.subscriber["id"],
                               max_call_ms=600_000)(tx)
        row = await calls.admit_call(
            tx, world.isp_id, customer_id=world.customer_id, tenant_id=tree.tenant["id"], call_id=f"call-{n}@race",
            node=NODE, direction="outbound", carrier_id=world.one["id"], subscriber_id=tree.subscriber["id"])
        await calls.mark_answered(tx, world.isp_id, active_call_id=row["id"], reservation_id=held.reservation_id,
                                  at=NOW)
        return row["id"], held.reservation_id
    return [await database.transact(one, n) for n in range(CALLS)]


async def _deadlocks(database) -> int:
    """Deadlocks PostgreSQL detected in this database: a victim run again leaves no other trace."""
    async def read(tx):
        await tx.execute("select pg_stat_clear_snapshot()")
        return await tx.fetch_value("select deadlocks from pg_stat_database where datname = current_database()")
    return await database.transact(read)


@pytest_twisted.ensureDeferred
async def test_settlements_racing_heartbeats_lose_no_record(dsn, tmp_path):
    database = Database(reactor, dsn, size=12)
    await database.connect()
    try:
        world = await build_world(database, balance="1000.00")
        admitted = await _answered_calls(database, world)
        deadlocks_before = await _deadlocks(database)
        timer = BillingTimer(reactor, lambda: defer.succeed(database), NODE, heartbeat_seconds=0.002)
        timer.database = database
        beats = task.LoopingCall(timer.beat)
        beats.clock = reactor
        beating = beats.start(0.002)
        records = CallRecords(reactor, database, folder=tmp_path / "spool", indexes=world.indexes)
        tree = world.tree

        async def settle(n, active_id, reservation_id):
            await task.deferLater(reactor, 0.003 * n, lambda: None)
            end = CallEnd(ended_at=NOW + datetime.timedelta(seconds=30 + n), disposition="answered", answered_at=NOW,
                          sip_code=200, hangup_by="caller", carrier_id=world.one["id"], tenant_id=tree.tenant["id"])
            return await records.write(PendingRecord(world.isp_id, active_id, reservation_id, world.customer_id,
                                                     tree.tenant["id"], tree.subscriber["id"], NODE, "outbound",
                                                     UK, f"call-{n}@race", NOW, end))
        written = await defer.gatherResults([defer.Deferred.fromCoroutine(settle(n, *ids))
                                             for n, ids in enumerate(admitted)])
        beats.stop()
        await beating
        records.stop()

        await task.deferLater(reactor, 1.5, lambda: None)     # PostgreSQL's statistics are sent within a second
        assert await _deadlocks(database) == deadlocks_before
        assert all(cdr is not None for cdr in written)
        assert records.pending() == []
        cdrs = await database.fetch("select a_call_id, price, ledger_id from cdrs where isp_id = %s", (world.isp_id,))
        assert sorted(row["a_call_id"] for row in cdrs) == sorted(f"call-{n}@race" for n in range(CALLS))
        assert await database.fetch("select id from call_reservations") == []
        assert await database.fetch("select id from active_calls") == []
        charged = await database.fetch("select coalesce(sum(amount), 0) as total, count(*) as n from ledger"
                                       " where customer_id = %s and category = 'call'", (world.customer_id,))
        priced = sum((row["price"] for row in cdrs), Decimal(0))
        assert priced > 0 and charged[0]["total"] in (priced, -priced)
        assert charged[0]["n"] == sum(1 for row in cdrs if row["price"] > 0)
        balance = await database.fetch("select balance from customers where id = %s", (world.customer_id,))
        assert balance[0]["balance"] == Decimal("1000.00") - priced
    finally:
        await database.close()
