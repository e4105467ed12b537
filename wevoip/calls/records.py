"""
Writing a call's record when it ends, and keeping it until it is written.

A call that ended is one transaction: its row in `active_calls` goes, its reservation is
settled into a CDR and a charge (or it gets its CDR at no price) and the ISP's `call.ended`
webhook is queued. That transaction is safe to run again (everything it does is in it), so
a deadlock or a serialisation failure runs it again at once (`Database.transact`). Should it
still fail (PostgreSQL down, restarting, refusing), the call is not ended without its
record: the record is kept in a spool folder under the node's data directory, one file per
call, written and flushed to disk before the failure is let go of, and written to the
database from there as soon as it answers again, with growing pauses between tries.

A record whose own facts the database refuses (a check, a value out of range) would be
refused forever, and a HARD customer's hold with it: it is written at once without the
facts money does not need (numbers as dialled, the second Call-ID, the media flow), and
the refusal is logged.

Why a local file and not a table: the database is what failed; a file on the node's own disk
survives both the outage and a restart of the node, which replays the spool before it
recovers the calls its last run left (`replay` first, then billing's recovery), so that a
call that ended gets the record it ended with, not a recovered one.

Exactly once: a spooled record may have reached the database already (the COMMIT went
through and its answer was lost) or the call may have been closed by recovery meanwhile (a
node that took this one for dead). A billed call's reservation is taken by the one
transaction that records it, and a free call's record is one per call key (isp, node,
Call-ID), so writing again finds nothing to do and the file goes.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
from twisted.internet import defer
from twisted.logger import Logger

from wevoip.billing.calls import CallEnd, announce_end, free_record, settle_call
from wevoip.billing.decks import DeckIndexes
from wevoip.store import calls
from wevoip.store.database import Row, Tx
from wevoip.store.errors import Conflict, Invalid, NotFound

log = Logger(namespace="wevoip.calls")

PAUSES = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)    # seconds between tries of a spool that could not be written


@dataclass(frozen=True)
class PendingRecord:
    """Everything a call's record is written from, with no object of the running node."""

    isp_id: int
    active_id: int
    reservation_id: int | None
    customer_id: int
    tenant_id: int
    subscriber_id: int | None
    node: str
    direction: str
    callee_e164: str | None
    call_id: str
    started_at: datetime.datetime | None    # a free call's start; None: nothing to record but the row's end
    end: CallEnd

    def to_json(self) -> dict[str, Any]:
        return {**{name: _out(value) for name, value in dataclasses.asdict(self).items() if name != "end"},
                "end": {name: _out(value) for name, value in dataclasses.asdict(self.end).items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "PendingRecord":
        end = CallEnd(**{name: _in(name, value) for name, value in data["end"].items()})
        return cls(**{name: _in(name, value) for name, value in data.items() if name != "end"}, end=end)


def _out(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime.datetime) else value


def _in(name: str, value: Any) -> Any:
    if value is not None and name.endswith("_at"):
        return datetime.datetime.fromisoformat(value)
    return value


async def write_record(tx: Tx, pending: PendingRecord, indexes: DeckIndexes | None = None) -> Row | None:
    """The call's row ended and its record written, in the lock order of `store.calls`; None
    when there was nothing to write (no start, or recorded already)."""
    await calls.end_call(tx, pending.isp_id, pending.active_id)
    end = pending.end
    if pending.reservation_id is not None:
        try:
            cdr = await settle_call(tx, pending.isp_id, pending.reservation_id, end, indexes=indexes)
        except NotFound:        # settled already: an earlier try whose answer was lost, or a recovery
            return None
    elif pending.started_at is not None:
        cdr = await calls.insert_free_cdr(tx, pending.isp_id, free_record(
            end, customer_id=pending.customer_id, tenant_id=pending.tenant_id, subscriber_id=pending.subscriber_id,
            node=pending.node, direction=pending.direction, callee_e164=pending.callee_e164,
            a_call_id=pending.call_id, started_at=pending.started_at))
        if cdr is None:
            return None
    else:
        return None
    await announce_end(tx, pending.isp_id, cdr)
    return cdr


def plain(pending: PendingRecord) -> PendingRecord:
    """The record with only what its money and its place need."""
    end = dataclasses.replace(pending.end, caller_dialled="", caller_e164=None, callee_dialled="", b_call_id=None,
                              media_flow=None)
    return dataclasses.replace(pending, callee_e164=None, end=end)


class CallRecords:
    """Writes calls' records, and keeps in `folder` those the database would not take.

    `folder` None keeps them in memory only (benchmarks and tests that build a B2BUA by
    hand); a node always gives its data directory's `spool/records`."""

    def __init__(self, reactor, database, *, folder: Path | None, indexes: DeckIndexes | None = None,
                 pauses: tuple[float, ...] = PAUSES):
        self.reactor = reactor
        self.database = database
        self.folder = folder
        self.indexes = indexes
        self.pauses = pauses
        self._memory: dict[str, PendingRecord] = {}
        self._failures = 0
        self._next = None
        self._replaying: defer.Deferred | None = None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)

    async def _write(self, pending: PendingRecord) -> Row | None:
        """A record whose own facts the database refuses (a constraint, a value out of range:
        it would refuse it forever, and a HARD customer's hold would stay held) is written
        with the facts it needs for its money and nothing else: times, disposition, code,
        who hung up, carrier, gateway, tenant."""
        try:
            return await self.database.transact(write_record, pending, self.indexes, _retry=True)
        except (Invalid, Conflict, psycopg2.DataError) as error:
            log.error("call {call_id}'s record was refused ({error}); it is written without its numbers,"
                      " second Call-ID and media flow", call_id=pending.call_id, error=str(error).strip())
        return await self.database.transact(write_record, plain(pending), self.indexes, _retry=True)

    async def write(self, pending: PendingRecord) -> Row | None:
        """Write it now, or keep it (and try again later). Never raises."""
        try:
            return await self._write(pending)
        except Exception:
            log.failure("recording call {call_id} failed; its record is kept until the database takes it",
                        call_id=pending.call_id)
        self._keep(pending)
        self._schedule()
        try:        # the call ended: it stops counting against the limits now, if the database allows
            await self.database.transact(calls.end_call, pending.isp_id, pending.active_id, _retry=True)
        except Exception:
            pass
        return None

    def waiting(self) -> int:
        """How many records wait for the database (for /healthz: anything but 0 needs a look)."""
        return len(self._memory) if self.folder is None else sum(1 for _ in self.folder.glob("*.json"))

    def pending(self) -> list[PendingRecord]:
        """What is kept, oldest first."""
        if self.folder is None:
            return list(self._memory.values())
        found = []
        for path in sorted(self.folder.glob("*.json"), key=lambda path: path.stat().st_mtime_ns):
            try:
                found.append(PendingRecord.from_json(json.loads(path.read_text())))
            except (ValueError, KeyError, TypeError):
                log.error("spooled record {path} cannot be read; it is left there", path=str(path))
        return found

    async def replay(self) -> int:
        """Write what is kept, oldest first; stops at the first failure (the database is
        still away) and tries again later. How many were written (or found written)."""
        if self._replaying is not None:
            return await self._replaying
        self._replaying = defer.Deferred.fromCoroutine(self._replay())
        try:
            return await self._replaying
        finally:
            self._replaying = None

    async def _replay(self) -> int:
        done = 0
        for pending in self.pending():
            try:
                cdr = await self._write(pending)
            except Exception as error:
                self._failures += 1
                log.warn("spooled records are not written yet ({count} kept): {error}",
                         count=len(self.pending()), error=str(error).strip().splitlines()[0] if str(error) else
                         type(error).__name__)
                self._schedule()
                return done
            self._forget(pending)
            done += 1
            log.info("call {call_id}'s spooled record is written{how}", call_id=pending.call_id,
                     how="" if cdr is not None else " (it was already)")
        self._failures = 0
        return done

    def _name(self, pending: PendingRecord) -> str:
        return f"{pending.isp_id}-{pending.active_id}"

    def _keep(self, pending: PendingRecord) -> None:
        """Durable before it returns: written beside, flushed, renamed over, the folder flushed."""
        name = self._name(pending)
        if self.folder is None:
            self._memory[name] = pending
            return
        path = self.folder / f"{name}.json"
        partial = self.folder / f".{name}.partial"
        with open(partial, "w") as file:
            json.dump(pending.to_json(), file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
        folder = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    def _forget(self, pending: PendingRecord) -> None:
        name = self._name(pending)
        if self.folder is None:
            self._memory.pop(name, None)
            return
        (self.folder / f"{name}.json").unlink(missing_ok=True)

    def _schedule(self) -> None:
        if self._next is not None and self._next.active():
            return
        pause = self.pauses[min(self._failures, len(self.pauses) - 1)]
        self._next = self.reactor.callLater(pause, self._tick)

    def _tick(self) -> None:
        self._next = None
        defer.Deferred.fromCoroutine(self.replay()).addErrback(
            lambda failure: log.failure("writing spooled records failed", failure))

    def stop(self) -> None:
        if self._next is not None and self._next.active():
            self._next.cancel()
        self._next = None

