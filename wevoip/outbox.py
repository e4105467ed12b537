"""
Draining the outbox: one drainer per kind (mail, webhook) on every node.

A drainer wakes when any node publishes on the outbox channel, and on a slow timer for
retries. No transaction (and so no pooled connection) is held while mail and webhooks go
over the network: a batch is leased in one short transaction (`for update skip locked`,
then `next_attempt_at` moved past the lease), sent with each send bounded by
`send_timeout`, and each outcome recorded in another short transaction. The lease covers
the whole batch, so no other node takes a row while it is being sent; a node that dies
mid-send leaves its rows due again when the lease runs out. A send that fails is retried
with a growing delay, and after `max_attempts` the row stays unsent with its last error
for an operator.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.logger import Logger

from wevoip.store import outbox
from wevoip.store.database import Database, Row
from wevoip.store.errors import quiet_when_unavailable
from wevoip.store.notify import EVERYTHING

log = Logger(namespace="wevoip.outbox")

Sender = Callable[[Row], Awaitable[Any]]


def retry_delay(attempts: int) -> float:
    """30 s, 1 min, 2 min ... capped at an hour."""
    return float(min(30 * 2 ** attempts, 3600))


class OutboxDrainer(Service):
    def __init__(self, clock, database: Database, kind: str, send: Sender, *,
                 poll_seconds: float = 30.0, max_attempts: int = 8, send_timeout: float = 60.0,
                 batch_size: int = 20):
        self.clock = clock
        self.database = database
        self.kind = kind
        self.send = send
        self.poll_seconds = poll_seconds
        self.max_attempts = max_attempts
        self.send_timeout = send_timeout
        self.batch_size = batch_size
        self.name = f"outbox-{kind}"
        self._loop: task.LoopingCall | None = None
        self._running: defer.Deferred | None = None
        self._again = False

    def startService(self) -> None:  # noqa: N802 (Twisted's name)
        super().startService()
        self._loop = task.LoopingCall(self.wake)
        self._loop.clock = self.clock
        self._loop.start(self.poll_seconds, now=True)

    def stopService(self):  # noqa: N802 (Twisted's name)
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        running, self._running = self._running, None
        return running if running is not None else defer.succeed(None)

    def on_notify(self, payload: str) -> None:
        if payload in (self.kind, EVERYTHING):     # everything: notifications were missed
            self.wake()

    def wake(self) -> defer.Deferred:
        """Drain now; during a drain, once more after it, since it may have looked already."""
        if self._running is not None:
            self._again = True
            return self._running
        self._again = False
        self._running = defer.Deferred.fromCoroutine(self.drain())
        self._running.addErrback(quiet_when_unavailable(log, "draining the {kind} outbox failed", kind=self.kind))
        self._running.addBoth(self._done)
        return self._running

    def _done(self, result):
        self._running = None
        if self._again and self.running:
            self.wake()
        return result

    @property
    def lease_seconds(self) -> float:
        """Every send of a batch may take its whole timeout, one after the other; a minute
        more for recording the outcomes and for clocks that differ."""
        return self.send_timeout * self.batch_size + 60.0

    async def drain(self) -> int:
        """Send every due row; the number sent."""
        sent = 0
        while True:
            rows = await self.database.transact(outbox.claim_due, self.kind, self.max_attempts,
                                                self.lease_seconds, self.batch_size)
            for row in sorted(rows, key=lambda row: row["id"]):
                sent += await self._send_one(row)
            if not rows:
                return sent

    async def _send_one(self, row: Row) -> int:
        sending = defer.Deferred.fromCoroutine(self._send(row))
        sending.addTimeout(self.send_timeout, self.clock)
        try:
            await sending
        except Exception as error:
            if isinstance(error, defer.TimeoutError):
                error = defer.TimeoutError(f"no answer within {self.send_timeout:g} s")
            log.warn("sending outbox {id} ({kind}) failed: {error}", id=row["id"], kind=self.kind, error=error)
            await self.database.transact(outbox.mark_failed, row["id"], row["attempts"],
                                         str(error) or type(error).__name__, retry_delay(row["attempts"] - 1))
            return 0
        await self.database.transact(outbox.mark_sent, row["id"])
        return 1

    async def _send(self, row: Row) -> None:
        await self.send(row)
