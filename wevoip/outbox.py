"""
Draining the outbox: one drainer per kind (mail, webhook) on every node.

A drainer wakes when any node publishes on the outbox channel, and on a slow timer for
retries. Rows are claimed with `for update skip locked` inside the transaction that marks
them, so two nodes never send the same row; a send that fails is retried with a growing
delay, and after `max_attempts` the row stays unsent with its last error for an operator.
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
                 poll_seconds: float = 30.0, max_attempts: int = 8):
        self.clock = clock
        self.database = database
        self.kind = kind
        self.send = send
        self.poll_seconds = poll_seconds
        self.max_attempts = max_attempts
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

    async def drain(self) -> int:
        """Send every due row; the number sent."""
        sent = 0
        while True:
            batch = await self.database.transact(self._send_batch)
            sent += batch[0]
            if batch[1] == 0:
                return sent

    async def _send_batch(self, tx) -> tuple[int, int]:
        rows = await outbox.claim_due(tx, self.kind, self.max_attempts)
        sent = 0
        for row in rows:
            try:
                await self.send(row)
            except Exception as error:
                log.warn("sending outbox {id} ({kind}) failed: {error}", id=row["id"], kind=self.kind,
                         error=error)
                await outbox.mark_failed(tx, row["id"], str(error) or type(error).__name__,
                                         retry_delay(row["attempts"]))
            else:
                await outbox.mark_sent(tx, row["id"])
                sent += 1
        return sent, len(rows)
