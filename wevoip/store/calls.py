"""
Calls in the store: admission against concurrent-call limits, the money reserved for calls
in progress, call records (CDRs), the spend they add up to, and the fraud guard's locks.

Locks are taken in one order by every transaction, so none can wait on another that waits on
it (a deadlock, which cost a call its record): a call's row in `active_calls`, then its
reservation in `call_reservations`, then the customer, the tenant, the carrier, the
subscriber and the ISP (a CDR's and a ledger row's foreign keys share-lock their parents,
after the customer); each table's rows in id order where a statement locks several.
Settlement and recovery end the call's row, then take its reservation, then lock the
customer; the heartbeat (`touch_calls`) and the answer's mark (`mark_answered`) touch the
call's row before the reservation. A deadlock that still happens (an operator's delete
cascading the other way) is run again by `Database.transact`.

Admission (`admit_call`, migration 0052's `set_up_call`) locks the customer, then the tenant, then the carrier (always that
order, so two admissions cannot deadlock), counts what is active under each, and inserts
the call into `active_calls`, with what its record needs; a second node admitting for the
same customer waits on the lock and counts the first. Rows a dead node left are taken by
`take_calls_of_node` when it starts again (or `take_stale_calls` on another node once its
heartbeats, `touch_calls`, have stopped), and recovery writes their records.

A reservation is written in the transaction that authorises the call, under the customer's
row lock, so concurrent calls on any number of nodes see each other's holds. It names the
node and the call, which is how a node that restarts after a crash finds its own.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from wevoip.store.database import Row, Tx
from wevoip.store.errors import Invalid, LimitReached, NotAllowed, NotFound
from wevoip.store.rows import fetch_row, insert_row

LEVELS = {"isp": "isps", "customer": "customers", "subscriber": "subscribers"}
_SPEND_COLUMN = {"isp": "isp_id", "customer": "customer_id", "subscriber": "subscriber_id"}
CDR_FIELDS = ("customer_id", "tenant_id", "subscriber_id", "carrier_id", "gateway_id", "did_id", "node",
              "direction", "caller_dialled", "caller_e164", "callee_dialled", "callee_e164", "forwarded_e164",
              "started_at", "answered_at", "ended_at", "duration_ms", "talk_ms", "billable_seconds",
              "free_minutes", "disposition", "sip_code", "hangup_by", "a_call_id", "b_call_id", "prefix",
              "dest_class", "price_version_id", "cost_version_id", "cost", "price", "media_flow")


async def reserve(tx: Tx, isp_id: int, customer_id: int, *, subscriber_id: int | None, node: str,
                  call_id: str, direction: str, destination: str, amount: Decimal,
                  max_duration_ms: int | None, free_minutes: int, rating: dict[str, Any],
                  started_at: datetime.datetime) -> Row:
    return await insert_row(tx, "call_reservations", {"started_at": started_at,
        "isp_id": isp_id, "customer_id": customer_id, "subscriber_id": subscriber_id, "node": node,
        "call_id": call_id, "direction": direction, "destination": destination, "amount": amount,
        "max_duration_ms": max_duration_ms, "free_minutes": free_minutes, "rating": json.dumps(rating)})


async def held(tx: Tx, isp_id: int, customer_id: int) -> tuple[Decimal, int]:
    """Money and free minutes held by the customer's calls in progress."""
    row = await tx.fetch_one(
        "select coalesce(sum(amount), 0) as amount, coalesce(sum(free_minutes), 0) as free_minutes"
        " from call_reservations where isp_id = %s and customer_id = %s", (isp_id, customer_id))
    return row["amount"], int(row["free_minutes"])


@dataclass(frozen=True)
class LockedAccount:
    """What authorising a call reads under the customer's lock."""

    customer: Row
    subscriber: Row | None      # the columns billing checks (SUBSCRIBER_COLUMNS)
    held_amount: Decimal        # money held by the customer's calls in progress
    held_free_minutes: int
    free_minutes_used: int      # this period's, when the plan has free minutes (else 0)
    did: Row | None             # the DID's charges (DID_COLUMNS, as `pricing.did_charges`)


SUBSCRIBER_COLUMNS = ("id", "tenant_id", "customer_id", "calls_locked_at", "calls_lock_reason", "daily_spend_cap",
                      "hourly_spend_cap")
DID_COLUMNS = ("did_id", "e164", "customer_id", "tenant_id", "subscriber_id", "setup_fee", "monthly_fee",
               "per_minute", "e911", "fax")


async def lock_account(tx: Tx, isp_id: int, customer_id: int, *, subscriber_id: int | None = None,
                       did_id: int | None = None) -> LockedAccount:
    """Lock the customer's row, then read it with what its calls in progress hold, the free
    minutes it used, the calling subscriber and the DID called: one statement, the
    `call_account` function (migration 0053), whose lock is a statement of its own so that
    what it reads next counts every call whose transaction held the lock before."""
    subscriber = ", ".join(f"(a.subscriber).{name} as subscriber__{name}" for name in SUBSCRIBER_COLUMNS)
    did = ", ".join(f"a.{'' if name == 'did_id' else 'did_'}{name} as did__{name}" for name in DID_COLUMNS)
    row = await tx.fetch_one(
        f"select (a.customer).*, a.held_amount as call__held_amount, a.held_free as call__held_free,"
        f" a.free_used as call__free_used, {subscriber}, {did} from call_account(%s, %s, %s, %s) a",
        (isp_id, customer_id, subscriber_id, did_id))
    if row is None:
        raise NotFound("customer")
    parts: dict[str, dict[str, Any]] = {"customer": {}, "subscriber": {}, "did": {}, "call": {}}
    for name, value in row.items():
        part, _, column = name.partition("__")
        if column:
            parts[part][column] = value
        else:
            parts["customer"][name] = value
    if subscriber_id is not None and parts["subscriber"]["id"] is None:
        raise NotFound("subscriber")
    if did_id is not None and parts["did"]["did_id"] is None:
        raise NotFound("DID")
    call = parts["call"]
    return LockedAccount(parts["customer"], parts["subscriber"] if subscriber_id is not None else None,
                         call["held_amount"], int(call["held_free"]), int(call["free_used"]),
                         parts["did"] if did_id is not None else None)


async def mark_answered(tx: Tx, isp_id: int, *, active_call_id: int | None, reservation_id: int | None,
                        at: datetime.datetime) -> int:
    """The answer, on the call's row and on its reservation (a billed call's), in one statement
    (migration 0080's `mark_call_answered`, the call's row first as everywhere): recovery
    closes an answered call at its last heartbeat, and bills it to there. How many rows it
    marked."""
    return int(await tx.fetch_value("select mark_call_answered(%s, %s, %s, %s)",
                                    (isp_id, active_call_id, reservation_id, at)))


async def touch_calls(tx: Tx, node: str, at: datetime.datetime) -> int:
    """A node's heartbeat for its calls: recovery closes a crashed call at the last one (and
    bills an answered one to there), and another node takes the calls of a node whose beats
    have stopped. The answered calls' reservations are touched with them, after them, each
    table's rows in id order (migration 0080's `touch_node_calls`), as a settlement locks a
    call's rows. How many calls it touched."""
    return int(await tx.fetch_value("select touch_node_calls(%s, %s)", (node, at)))


async def take_reservation(tx: Tx, isp_id: int, reservation_id: int) -> Row:
    """Read and release a reservation in one statement (the row stays locked until commit,
    so two settlements of one call cannot both find it)."""
    row = await tx.fetch_one("delete from call_reservations where isp_id = %s and id = %s returning *",
                             (isp_id, reservation_id))
    if row is None:
        raise NotFound("reservation")
    return row


async def left_by_node(tx: Tx, node: str, started_before: datetime.datetime) -> list[Row]:
    """Reservations a node made before it last started with no call row of their own: a call
    that still has one is recovered from it (`take_calls_of_node`), which knows more."""
    return await tx.fetch(
        "select * from call_reservations r where node = %s and started_at < %s and not exists"
        " (select 1 from active_calls a where a.isp_id = r.isp_id and a.node = r.node and a.call_id = r.call_id)"
        " order by id for update skip locked", (node, started_before))


async def stale_reservations(tx: Tx, seen_before: datetime.datetime, *, not_node: str) -> list[Row]:
    """Reservations of other nodes, with no call row, not seen alive since `seen_before`."""
    return await tx.fetch(
        "select * from call_reservations r where node <> %s and coalesce(last_seen_at, started_at) < %s"
        " and not exists (select 1 from active_calls a where a.isp_id = r.isp_id and a.node = r.node"
        " and a.call_id = r.call_id) order by id for update skip locked", (not_node, seen_before))


async def free_minutes_used(tx: Tx, isp_id: int, customer_id: int, since: datetime.date | None) -> int:
    return int(await tx.fetch_value(
        "select coalesce(sum(free_minutes), 0) from cdrs where isp_id = %s and customer_id = %s"
        " and (%s::date is null or started_at >= %s::date)", (isp_id, customer_id, since, since)))


async def insert_cdr(tx: Tx, isp_id: int, values: dict[str, Any]) -> Row:
    unknown = set(values) - set(CDR_FIELDS)
    if unknown:
        raise Invalid(sorted(unknown)[0], "is not a field of a call record")
    return await insert_row(tx, "cdrs", {"isp_id": isp_id, **values})


async def insert_free_cdr(tx: Tx, isp_id: int, values: dict[str, Any]) -> Row | None:
    """A call's record at no price, unless the call has one already (None): written again
    from the spool, or by a recovery that took the call first."""
    unknown = set(values) - set(CDR_FIELDS)
    if unknown:
        raise Invalid(sorted(unknown)[0], "is not a field of a call record")
    columns = ["isp_id", *values]
    return await tx.fetch_one(
        f"insert into cdrs ({', '.join(columns)}) values ({', '.join(['%s'] * len(columns))})"
        " on conflict (isp_id, node, a_call_id) where disposition <> 'refused' do nothing returning *",
        (isp_id, *values.values()))


async def insert_refusal(tx: Tx, isp_id: int, *, call_id: str, node: str, direction: str, sip_code: int,
                         reason: str, at: datetime.datetime, customer_id: int | None = None,
                         tenant_id: int | None = None, subscriber_id: int | None = None,
                         carrier_id: int | None = None, caller_dialled: str = "", caller_e164: str | None = None,
                         callee_dialled: str = "") -> None:
    """The record of a call refused before it was admitted: no time, no price (one statement)."""
    await tx.fetch_last(
        "insert into cdrs (isp_id, customer_id, tenant_id, subscriber_id, carrier_id, node, direction,"
        " caller_dialled, caller_e164, callee_dialled, started_at, ended_at, duration_ms, talk_ms,"
        " disposition, sip_code, reason, a_call_id) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 0, 0,"
        " 'refused', %s, %s, %s) returning id",
        (isp_id, customer_id, tenant_id, subscriber_id, carrier_id, node, direction, caller_dialled[:64],
         caller_e164, callee_dialled[:64], at, at, sip_code, reason[:200], call_id[:255]))


async def link_cdr(tx: Tx, isp_id: int, cdr_id: int, ledger_id: int) -> Row | None:
    return await tx.fetch_one("update cdrs set ledger_id = %s where isp_id = %s and id = %s returning *",
                              (ledger_id, isp_id, cdr_id))


async def get_cdr(tx: Tx, isp_id: int, cdr_id: int) -> Row:
    return await fetch_row(tx, "cdrs", {"isp_id": isp_id, "id": cdr_id}, "call record")


async def list_cdrs(tx: Tx, isp_id: int, *, customer_id: int | None = None, subscriber_id: int | None = None,
                    limit: int = 100, offset: int = 0) -> list[Row]:
    return await tx.fetch(
        "select * from cdrs where isp_id = %s and (%s::bigint is null or customer_id = %s)"
        " and (%s::bigint is null or subscriber_id = %s) order by started_at desc, id desc limit %s offset %s",
        (isp_id, customer_id, customer_id, subscriber_id, subscriber_id, limit, offset))


async def spend(tx: Tx, isp_id: int, level: str, object_id: int, since: datetime.datetime) -> Decimal:
    """What calls of an ISP, customer or subscriber were priced at since a moment, plus what
    their calls in progress hold."""
    column = _SPEND_COLUMN[level]
    row = await tx.fetch_one(
        f"select coalesce((select sum(price) from cdrs where isp_id = %s and {column} = %s"
        f" and started_at >= %s), 0) + coalesce((select sum(amount) from call_reservations"
        f" where isp_id = %s and {column} = %s), 0) as total",
        (isp_id, object_id, since, isp_id, object_id))
    return row["total"]


async def lock_calls(tx: Tx, isp_id: int, level: str, object_id: int, reason: str) -> Row | None:
    """Lock an ISP, customer or subscriber against new calls; None if it was locked already."""
    table = LEVELS[level]
    key = "id" if level == "isp" else "isp_id"
    return await tx.fetch_one(
        f"update {table} set calls_locked_at = now(), calls_lock_reason = %s"
        f" where {key} = %s and id = %s and calls_locked_at is null returning *",
        (reason[:200], isp_id, object_id))


async def unlock_calls(tx: Tx, isp_id: int, level: str, object_id: int) -> Row:
    table = LEVELS.get(level)
    if table is None:
        raise Invalid("level", f"must be one of {', '.join(LEVELS)}")
    key = "id" if level == "isp" else "isp_id"
    row = await tx.fetch_one(
        f"update {table} set calls_locked_at = null, calls_lock_reason = '' where {key} = %s and id = %s"
        " returning id, calls_locked_at, calls_lock_reason", (isp_id, object_id))
    if row is None:
        raise NotFound(level)
    return row


DIRECTIONS = ("outbound", "inbound", "internal")


@dataclass(frozen=True)
class Reservation:
    """Billing's hold on a call's money, written with the call's admission."""

    subscriber_id: int | None
    direction: str
    destination: str
    amount: Decimal
    max_duration_ms: int | None
    free_minutes: int
    rating: dict[str, Any]
    started_at: datetime.datetime


async def admit_call(tx: Tx, isp_id: int, *, customer_id: int, tenant_id: int, call_id: str,
                     node: str, direction: str, carrier_id: int | None = None, subscriber_id: int | None = None,
                     did_id: int | None = None, gateway_id: int | None = None, caller_dialled: str = "",
                     caller_e164: str | None = None, callee_dialled: str = "", callee_e164: str | None = None,
                     reservation: Reservation | None = None, last: bool = False) -> Row:
    """One statement: the `set_up_call` function (migration 0052) locks and counts in the
    order the module says and inserts the call with what its record needs should the node
    die, and billing's reservation when given; or names what refused the call. `last`:
    nothing follows in the transaction, so a call that needs no other statement is
    admitted alone, in one round trip."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}")
    params: tuple = (isp_id, customer_id, tenant_id, carrier_id, call_id, node, direction, subscriber_id, did_id,
                     gateway_id, caller_dialled, caller_e164, callee_dialled, callee_e164)
    if reservation is not None:
        params += (reservation.subscriber_id, reservation.direction, reservation.destination, reservation.amount,
                   reservation.max_duration_ms, reservation.free_minutes, json.dumps(reservation.rating),
                   reservation.started_at)
    sql = f"select * from set_up_call({', '.join(['%s'] * len(params))})"
    row = (await (tx.fetch_last(sql, params) if last else tx.fetch(sql, params)))[0]
    _refused(row)
    return {"id": row["active_id"], "isp_id": isp_id, "customer_id": customer_id, "tenant_id": tenant_id,
            "carrier_id": carrier_id, "call_id": call_id, "node": node, "direction": direction,
            "started_at": row["started_at"], "reservation_id": row["reservation_id"]}


async def move_to_carrier(tx: Tx, isp_id: int, active_call_id: int, carrier_id: int, gateway_id: int) -> None:
    """Count a call against another carrier (the one whose gateway it fails over to), within
    its limit; the call's row names that gateway from then on."""
    _refused(await tx.fetch_one("select * from move_call_to_carrier(%s, %s, %s, %s)",
                                (isp_id, active_call_id, carrier_id, gateway_id)))


def _refused(row: Row) -> None:
    refusal = row["refusal"]
    if refusal is None:
        return
    what, _, why = refusal.partition(" ")
    if why == "missing":
        raise NotFound(what)
    if why == "limit":
        raise LimitReached(f"{what} max_concurrent_calls", row["limit_value"])
    raise NotAllowed(_REFUSALS.get(refusal, "customer not yet activated"))


_REFUSALS = {"customer SUSPENDED": "customer suspended", "carrier disabled": "carrier disabled"}


async def end_call(tx: Tx, isp_id: int, active_call_id: int) -> bool:
    """Whether the call was still counted (ending twice is harmless)."""
    count = await tx.execute("delete from active_calls where isp_id = %s and id = %s",
                             (isp_id, active_call_id))
    return count == 1


async def count_active_calls(tx: Tx, isp_id: int, *, customer_id: int | None = None,
                             tenant_id: int | None = None, carrier_id: int | None = None) -> int:
    return await tx.fetch_value(
        "select count(*) from active_calls where isp_id = %s"
        " and (%s::bigint is null or customer_id = %s) and (%s::bigint is null or tenant_id = %s)"
        " and (%s::bigint is null or carrier_id = %s)",
        (isp_id, customer_id, customer_id, tenant_id, tenant_id, carrier_id, carrier_id))


_TAKE = ("with taken as (delete from active_calls where id in (select id from active_calls where {where}"
         " order by id for update skip locked) returning *)"
         " select taken.*, r.id as reservation_id from taken left join call_reservations r"
         " on r.isp_id = taken.isp_id and r.node = taken.node and r.call_id = taken.call_id order by taken.id")


async def take_calls_of_node(tx: Tx, node: str, started_before: datetime.datetime | None) -> list[Row]:
    """Calls a node admitted before it last started (so, left when it died; None: all of
    them, for a node that admits none yet), taken out of the count, each with its
    reservation's id when billing holds money for it; the caller writes their records in the
    same transaction. Rows another transaction is taking are skipped, so two recoveries at
    once cannot both record a call."""
    return await tx.fetch(_TAKE.format(where="node = %s and (%s::timestamptz is null or started_at < %s)"),
                          (node, started_before, started_before))


async def take_stale_calls(tx: Tx, seen_before: datetime.datetime, *, not_node: str) -> list[Row]:
    """As `take_calls_of_node`, for the calls of other nodes not seen alive since `seen_before`:
    nodes that died and have not come back."""
    return await tx.fetch(_TAKE.format(where="node <> %s and last_seen_at < %s"), (not_node, seen_before))
