"""
Calls under real load, bounded: a real node with billing on (a postpaid customer whose plan
sells from a rate deck) and a heartbeat of one second racing the settlements, phones on
many loopback addresses authenticating every call with digest (407, ACK, INVITE with
credentials), calls out to a carrier gateway. Every answered call has exactly one CDR,
the ledger adds up to the records, and nothing is left held, active or spooled. The
minute-long version at 100 calls/s is bench/calls_under_load.py.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
import pytest_twisted

from tests import callload

pytestmark = pytest.mark.slow

PHONES = 30


@pytest.mark.parametrize("management", ["SOFT", "HARD"])
@pytest_twisted.ensureDeferred
async def test_every_answered_call_under_load_has_one_record_and_nothing_is_left_held(management):
    load = await callload.start(phones=PHONES, heartbeat_seconds=1, management=management, customers_count=3)
    try:
        report = await callload.drive(load, phones=PHONES, rate=15, seconds=8, hold=1.5)
        answered = report.pop("answered_call_ids")
        books = await callload.books(load, answered)
    finally:
        await load.close()
    assert report["started"] == 120 and report["failed"] == {} and report["lost"] == 0, report
    assert report["answered"] == report["completed"] == report["gateway_invites"] == 120, report
    assert books["answered_without_record_count"] == 0, books
    assert books["records"] == 120 and books["records_not_answered"] == 0, books
    assert books["calls_with_more_than_one_record"] == 0 and books["refused_records"] == 0, books
    assert books["active_calls_left"] == books["reservations_left"] == 0, books
    assert books["spooled"] == [] and books["records_lost_lines"] == books["records_spooled_lines"] == 0, books
    assert books["priced_records"] == books["charges"] == 120 and books["priced"] == books["charged"], books
    assert Decimal(books["balances_spent"]) == Decimal(books["priced"]), books
