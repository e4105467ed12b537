"""
Closing the calls a node left when it died: one record per call, as if the call had ended
at the node's last heartbeat.

A call in progress is a row in `active_calls` (what its record needs, the answer, the
last heartbeat) and, when it costs money, a reservation. Both are taken here in one
transaction: an answered call becomes an "answered" CDR ended at its last heartbeat (talk
time to there, hung up by "system"), an unanswered one a "failed" CDR (the node, not the
caller, ended it); a billed call is settled by billing's own `settle_call`, with its hold
released and its charge written, a free one gets its record at no price. Every recovered
call gets its `call.ended` webhook. A reservation with no call row left (a release that
wrote neither) is settled from what the reservation knows.

A node recovers its own calls when it starts again. A node that never comes back is
noticed by the others: once a call's heartbeat is older than `billing.dead_node_seconds`
any node takes it. Rows being taken are locked and skipped by every other taker, and a
call's row and its reservation go in the transaction that writes its record, so a call is
recorded once however many nodes recover at the same moment.
"""

from __future__ import annotations

import datetime

from wevoip.billing.calls import CallEnd, announce_end, free_record, settle_call
from wevoip.store import calls as store_calls
from wevoip.store.database import Row, Tx
from wevoip.store.errors import NotFound


async def recover_calls(tx: Tx, node: str, started_before: datetime.datetime | None) -> list[Row]:
    """The records of the calls this node's last run left (admitted before `started_before`;
    None: all, before the node admits any)."""
    taken = await store_calls.take_calls_of_node(tx, node, started_before)
    records = await _record_calls(tx, taken)
    left = [] if started_before is None else await store_calls.left_by_node(tx, node, started_before)
    return records + await _settle_reservations(tx, left)


async def recover_dead_nodes(tx: Tx, node: str, seen_before: datetime.datetime) -> list[Row]:
    """The records of other nodes' calls not seen alive since `seen_before`."""
    records = await _record_calls(tx, await store_calls.take_stale_calls(tx, seen_before, not_node=node))
    left = await store_calls.stale_reservations(tx, seen_before, not_node=node)
    return records + await _settle_reservations(tx, left)


async def _record_calls(tx: Tx, taken: list[Row]) -> list[Row]:
    records = []
    for call in taken:
        answered = call["answered_at"]
        end = CallEnd(ended_at=max(call["last_seen_at"], answered or call["started_at"]),
                      disposition="answered" if answered else "failed", answered_at=answered, hangup_by="system",
                      carrier_id=call["carrier_id"], gateway_id=call["gateway_id"], tenant_id=call["tenant_id"],
                      caller_dialled=call["caller_dialled"], caller_e164=call["caller_e164"],
                      callee_dialled=call["callee_dialled"])
        isp_id = call["isp_id"]
        if call["reservation_id"] is not None:
            try:
                cdr = await settle_call(tx, isp_id, call["reservation_id"], end)
            except NotFound:        # settled by a recovery that took the reservation alone
                continue
        else:
            cdr = await store_calls.insert_free_cdr(tx, isp_id, free_record(
                end, customer_id=call["customer_id"], tenant_id=call["tenant_id"],
                subscriber_id=call["subscriber_id"], node=call["node"], direction=call["direction"],
                callee_e164=call["callee_e164"], a_call_id=call["call_id"], started_at=call["started_at"]))
            if cdr is None:         # recorded already: its record was spooled, and written since
                continue
        await announce_end(tx, isp_id, cdr)
        records.append(cdr)
    return records


async def _settle_reservations(tx: Tx, reservations: list[Row]) -> list[Row]:
    """An answered call is billed to its last heartbeat, an unanswered one closed as failed."""
    records = []
    for reservation in reservations:
        answered = reservation["answered_at"]
        ended = reservation["last_seen_at"] or answered or reservation["started_at"]
        end = CallEnd(ended_at=ended, disposition="answered" if answered else "failed", answered_at=answered,
                      hangup_by="system")
        try:
            cdr = await settle_call(tx, reservation["isp_id"], reservation["id"], end)
        except NotFound:
            continue
        await announce_end(tx, reservation["isp_id"], cdr)
        records.append(cdr)
    return records
