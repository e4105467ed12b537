"""
The registrar's index kept in PostgreSQL and in step with the other nodes.

Writes are group-committed: every change the registrar decides in one turn of the reactor
goes into one transaction (two statements), and the 200 OK of each REGISTER waits for
that commit, so a phone is never told it is registered before the binding is durable.
While one batch commits, the next gathers. The same transaction publishes the changed
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

log = Logger(namespace="wevoip.sip.location")

CHANNEL = registrations.CHANNEL
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
        self._saves: dict[tuple[int, int, str], registrations.BindingWrite | None] = {}
        self._waiting: list[defer.Deferred] = []
        self._scheduled = None
        self._flushing = False
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
        for contact in outcome.removed:
            self._saves[(isp_id, subscriber_id, contact)] = None
        for binding in outcome.saved:
            self._saves[(isp_id, subscriber_id, binding.contact)] = registrations.BindingWrite(
                isp_id, tenant_id, subscriber_id, _record(binding, user_agent), self.node)
        waiter: defer.Deferred = defer.Deferred()
        self._waiting.append(waiter)
        if self._scheduled is None and not self._flushing:
            self._scheduled = self.reactor.callLater(0, self._flush)
        return waiter

    def _flush(self) -> None:
        self._scheduled = None
        saves, waiting = self._saves, self._waiting
        self._saves, self._waiting = {}, []
        self._flushing = True
        done = defer.Deferred.fromCoroutine(self._write(saves))
        done.addCallbacks(lambda _: [w.callback(None) for w in waiting],
                          lambda failure: self._failed(failure, saves, waiting))
        done.addBoth(self._flushed)

    def _failed(self, failure, saves, waiting) -> None:
        log.failure("saving registrations failed", failure)
        for waiter in waiting:
            waiter.errback(failure)
        pairs = sorted({(key[0], key[1]) for key in saves})
        defer.Deferred.fromCoroutine(self._catch_up(pairs)).addErrback(lambda _: None)

    def _flushed(self, _) -> None:
        self._flushing = False
        if self._waiting and self._scheduled is None:
            self._scheduled = self.reactor.callLater(0, self._flush)

    async def _write(self, saves: dict) -> None:
        writes = [write for write in saves.values() if write is not None]
        deletes = [key for key, write in saves.items() if write is None]
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
