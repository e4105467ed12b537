"""A call's record that PostgreSQL will not take is spooled on disk and written once it does:
one CDR, one charge, the hold released; a record written twice is written once."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest_twisted
from twisted.internet import task

from tests.billing.world import NOW, authorise, build_world
from wevoip.billing.calls import CallEnd
from wevoip.calls.records import CallRecords, PendingRecord, write_record
from wevoip.store import calls

UK = "+442071838750"

REFUSE = """create function refuse_cdrs() returns trigger language plpgsql as $$
begin raise exception 'the database refuses records now' using errcode = 'insufficient_resources'; end $$;
create trigger refuse_cdrs before insert on cdrs for each row execute function refuse_cdrs();"""
COME_BACK = "drop trigger refuse_cdrs on cdrs; drop function refuse_cdrs()"


async def _billed_call(database, world, call_id: str) -> PendingRecord:
    tree = world.tree

    async def work(tx):
        held = await authorise(world, UK, call_id=call_id, node="node-a", subscriber_id=tree.subscriber["id"],
                               max_call_ms=600_000)(tx)
        row = await calls.admit_call(tx, world.isp_id, customer_id=world.customer_id, tenant_id=tree.tenant["id"],
                                     call_id=call_id, node="node-a", direction="outbound",
                                     carrier_id=world.one["id"], subscriber_id=tree.subscriber["id"])
        return row["id"], held.reservation_id
    active_id, reservation_id = await database.transact(work)
    end = CallEnd(ended_at=NOW + datetime.timedelta(seconds=95), disposition="answered", answered_at=NOW,
                  sip_code=200, hangup_by="callee", carrier_id=world.one["id"], tenant_id=tree.tenant["id"],
                  caller_dialled="100", callee_dialled="0442071838750", media_flow="both")
    return PendingRecord(world.isp_id, active_id, reservation_id, world.customer_id, tree.tenant["id"],
                         tree.subscriber["id"], "node-a", "outbound", UK, call_id, NOW, end)


async def _money(database, world):
    cdrs = await database.fetch("select a_call_id, price, ledger_id, talk_ms, media_flow from cdrs"
                                " where isp_id = %s", (world.isp_id,))
    charges = await database.fetch("select amount from ledger where customer_id = %s and category = 'call'",
                                   (world.customer_id,))
    held = await database.fetch("select id from call_reservations where customer_id = %s", (world.customer_id,))
    balance = (await database.fetch("select balance from customers where id = %s", (world.customer_id,)))[0]
    return cdrs, charges, held, balance["balance"]


@pytest_twisted.ensureDeferred
async def test_a_record_the_database_refuses_is_spooled_and_written_once_it_comes_back(database, tmp_path):
    world = await build_world(database, balance="100.00")
    pending = await _billed_call(database, world, "spooled@phone")
    clock = task.Clock()
    folder = tmp_path / "spool" / "records"
    records = CallRecords(clock, database, folder=folder, indexes=world.indexes)

    await database.transact(lambda tx: tx.execute(REFUSE))
    assert await records.write(pending) is None
    assert [path.name for path in folder.iterdir()] == [f"{world.isp_id}-{pending.active_id}.json"]
    cdrs, charges, held, balance = await _money(database, world)
    assert (cdrs, charges, len(held), balance) == ([], [], 1, Decimal("100.00"))
    assert await database.fetch("select id from active_calls") == []       # the call no longer counts
    assert [call.getTime() for call in clock.getDelayedCalls()] == [1.0]   # a try is planned

    assert await records.replay() == 0                                     # still refused
    assert len(records.pending()) == 1

    await database.transact(lambda tx: tx.execute(COME_BACK))
    restarted = CallRecords(clock, database, folder=folder, indexes=world.indexes)   # the node started again
    assert restarted.pending() == [pending]
    assert await restarted.replay() == 1
    assert list(folder.glob("*.json")) == []
    cdrs, charges, held, balance = await _money(database, world)
    assert len(cdrs) == 1 and cdrs[0]["a_call_id"] == "spooled@phone" and cdrs[0]["talk_ms"] == 95_000
    price = cdrs[0]["price"]
    assert cdrs[0]["media_flow"] == "both" and price > 0
    assert [abs(row["amount"]) for row in charges] == [price] and cdrs[0]["ledger_id"] is not None
    assert held == [] and balance == Decimal("100.00") - price

    clock.advance(60)                      # the first spool's planned try finds nothing left
    assert await records.replay() == 0
    assert len((await _money(database, world))[0]) == 1


@pytest_twisted.ensureDeferred
async def test_a_spooled_record_that_reached_the_database_is_not_written_twice(database, tmp_path):
    """The COMMIT went through but its answer was lost: the file stays, the record is there."""
    world = await build_world(database, balance="100.00")
    billed = await _billed_call(database, world, "twice@phone")
    free = PendingRecord(world.isp_id, billed.active_id + 1000, None, world.customer_id, world.tree.tenant["id"],
                         world.tree.subscriber["id"], "node-a", "internal", "+15550100101", "free@phone", NOW,
                         billed.end)
    records = CallRecords(task.Clock(), database, folder=tmp_path, indexes=world.indexes)
    await database.transact(lambda tx: tx.execute(REFUSE))
    for pending in (billed, free):
        assert await records.write(pending) is None
    await database.transact(lambda tx: tx.execute(COME_BACK))
    for pending in (billed, free):      # as if an earlier try's COMMIT had gone through
        assert await database.transact(write_record, pending, world.indexes) is not None
    assert len(records.pending()) == 2
    assert await records.replay() == 2
    assert records.pending() == []
    cdrs, charges, held, balance = await _money(database, world)
    assert sorted(row["a_call_id"] for row in cdrs) == ["free@phone", "twice@phone"]
    price = next(row["price"] for row in cdrs if row["a_call_id"] == "twice@phone")
    assert len(charges) == 1 and held == [] and balance == Decimal("100.00") - price


@pytest_twisted.ensureDeferred
async def test_a_record_whose_own_facts_are_refused_is_written_without_them_and_the_hold_goes(database, tmp_path):
    """The database would refuse it forever: waiting would keep a HARD customer's hold held."""
    world = await build_world(database, balance="100.00")
    pending = await _billed_call(database, world, "odd@phone")
    pending = PendingRecord(**{**pending.__dict__, "end": CallEnd(**{**pending.end.__dict__,
                                                                     "b_call_id": "b" * 300})})
    records = CallRecords(task.Clock(), database, folder=tmp_path, indexes=world.indexes)
    cdr = await records.write(pending)
    assert cdr is not None and cdr["b_call_id"] is None and cdr["talk_ms"] == 95_000 and cdr["price"] > 0
    assert records.pending() == []
    cdrs, charges, held, balance = await _money(database, world)
    assert len(cdrs) == 1 and held == [] and balance == Decimal("100.00") - cdr["price"]
