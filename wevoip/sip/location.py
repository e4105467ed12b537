"""
The registrar's index kept in PostgreSQL and in step with the other nodes.

Writes are group-committed: the changes the registrar decides in one turn of the reactor
go into one transaction (one statement), and the 200 OK of each REGISTER waits for that
commit, so a phone is never told it is registered before the binding is stored. Up to
three batches commit at once, each taking only addresses of record that no batch in
flight holds, so one AOR's changes still commit in the order they were decided. The same transaction publishes the changed
addresses of record on the `registrations` channel, tagged with this node's name; the
other nodes re-read those AORs and this node ignores its own echo.
"""

from __future__ import annotations

import datetime
from decimal import Decimal

from twisted.internet import defer
from twisted.logger import Logger

from wevoip.sip.registrar import Binding, Outcome, Registrar, contact_key
from wevoip.store import registrations
from wevoip.store.errors import StoreUnavailable
from wevoip.store.notify import EVERYTHING

log = Logger(namespace="wevoip.sip.location")

CHANNEL = registrations.CHANNEL
# Batches committing at once: the reactor keeps answering while one waits on PostgreSQL.
# Below the store's pool size, so look-ups still find a connection.
MAX_BATCHES_IN_FLIGHT = 3
UTC = datetime.timezone.utc


def _record(binding: Binding, user_agent: str) -> registrations.BindingRecord:
    return registrations.BindingRecord(
        contact=binding.contact, q=Decimal(binding.q) / 1000, call_id=binding.call_id,
        cseq=binding.cseq, expires_at=datetime.datetime.fromtimestamp(binding.expires_at, UTC),
        source=binding.source, transport=binding.transport, instance_id=binding.instance,
        user_agent=user_agent, reg_id=binding.reg_id, local_address=binding.local)


def binding_from_row(row: dict) -> Binding:
    contact = row["contact"]
    key = contact_key(contact)
    return Binding(contact=contact, key=key if key != contact else contact,
                   q=int(row["q"] * 1000), call_id=row["call_id"], cseq=row["cseq"],
                   expires_at=row["expires_at"].timestamp(), source=row["source"],
                   transport=row["transport"], instance=row["instance_id"], reg_id=row["reg_id"],
                   local=row["local_address"], node=row["node"])


class Location:
    def __init__(self, reactor, database, registrar: Registrar, node: str):
        self.reactor = reactor
        self.database = database
        self.registrar = registrar
        self.node = node
        self._pending: dict[tuple[int, int], dict[str, registrations.BindingWrite | None]] = {}
        self._waiting: dict[tuple[int, int], list[defer.Deferred]] = {}
        self._in_flight: set[tuple[int, int]] = set()
        self._flushes = 0
        self._scheduled = None
        self.batches = 0

    async def load(self) -> int:
        """Fill the index from the store at start: the registrations survive a restart."""
        rows = await self.database.transact(registrations.live_bindings)
        self._replace_rows(rows, [(row["isp_id"], row["subscriber_id"]) for row in rows])
        return len(rows)

    def _replace_rows(self, rows: list[dict], keys: list[tuple[int, int]]) -> None:
        by_aor: dict[tuple[int, int], tuple[int, list[Binding]]] = {}
        for row in rows:
            entry = by_aor.setdefault((row["isp_id"], row["subscriber_id"]), (row["tenant_id"], []))
            entry[1].append(binding_from_row(row))
        for key in keys:
            tenant_id, bindings = by_aor.get(key, (0, []))
            self.registrar.replace(key[1], key[0], tenant_id, bindings)

    async def attach(self, notifier) -> None:
        await notifier.subscribe(CHANNEL, self._notified)

    def _notified(self, payload: str) -> None:
        if payload == EVERYTHING:   # notifications were missed (the store reconnected)
            defer.Deferred.fromCoroutine(self.load()).addErrback(
                lambda failure: log.failure("reloading registrations failed", failure))
            return
        node, _, keys = payload.partition("|")
        if node == self.node or not keys:
            return
        try:
            pairs = [tuple(int(part) for part in key.split(":", 1)) for key in keys.split(",")]
        except ValueError:
            log.warn("ignoring a malformed registrations notification {payload!r}", payload=payload[:100])
            return
        defer.Deferred.fromCoroutine(self._catch_up(pairs)).addErrback(
            lambda failure: log.failure("catching up on registrations failed", failure))

    async def _catch_up(self, pairs: list[tuple[int, int]]) -> None:
        rows = await self.database.transact(registrations.live_bindings_of, pairs)
        self._replace_rows(rows, pairs)

    def persist(self, isp_id: int, tenant_id: int, subscriber_id: int, outcome: Outcome,
                user_agent: str = "") -> defer.Deferred:
        """Queue the outcome's changes; the Deferred fires once they are committed."""
        if not (outcome.removed or outcome.saved):
            return defer.succeed(None)
        aor = (isp_id, subscriber_id)
        changes = self._pending.setdefault(aor, {})
        for contact in outcome.removed:
            changes[contact] = None
        for binding in outcome.saved:
            changes[binding.contact] = registrations.BindingWrite(
                isp_id, tenant_id, subscriber_id, _record(binding, user_agent), self.node)
        waiter: defer.Deferred = defer.Deferred()
        self._waiting.setdefault(aor, []).append(waiter)
        self._schedule()
        return waiter

    def _schedule(self) -> None:
        if self._scheduled is None and self._flushes < MAX_BATCHES_IN_FLIGHT and \
                any(aor not in self._in_flight for aor in self._pending):
            self._scheduled = self.reactor.callLater(0, self._flush)

    def _flush(self) -> None:
        """Take every AOR not already being written: an AOR's changes commit in order."""
        self._scheduled = None
        taken = [aor for aor in self._pending if aor not in self._in_flight]
        if not taken:
            return
        batch = {aor: self._pending.pop(aor) for aor in taken}
        waiting = [waiter for aor in taken for waiter in self._waiting.pop(aor, ())]
        self._in_flight.update(taken)
        self._flushes += 1
        done = defer.Deferred.fromCoroutine(self._write(batch))
        done.addCallbacks(lambda _: [w.callback(None) for w in waiting],
                          lambda failure: self._failed(failure, taken, waiting))
        done.addBoth(self._flushed, taken)
        self._schedule()

    def _failed(self, failure, taken, waiting) -> None:
        if not failure.check(StoreUnavailable):     # a lost database is logged once, by the store
            log.failure("saving registrations failed", failure)
        for waiter in waiting:
            waiter.errback(failure)
        defer.Deferred.fromCoroutine(self._catch_up(sorted(taken))).addErrback(lambda _: None)

    def _flushed(self, _, taken) -> None:
        self._flushes -= 1
        self._in_flight.difference_update(taken)
        self._schedule()

    async def _write(self, batch: dict) -> None:
        writes, deletes = [], []
        for (isp_id, subscriber_id), changes in batch.items():
            for contact, write in changes.items():
                if write is None:
                    deletes.append((isp_id, subscriber_id, contact))
                else:
                    writes.append(write)
        await self.database.transact(registrations.write_bindings, writes, deletes, self.node)
        self.batches += 1

    async def sweep(self) -> int:
        """Delete expired rows (any node may; the index has dropped them on its own timer)."""
        now = datetime.datetime.fromtimestamp(self.reactor.seconds(), UTC)
        return len(await self.database.transact(registrations.delete_expired, now))

    def stop(self) -> None:
        if self._scheduled is not None and self._scheduled.active():
            self._scheduled.cancel()
            self._flush()
