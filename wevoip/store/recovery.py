"""
Getting the database back after it was lost: attempts spaced by a growing delay.

A crashed PostgreSQL takes a few seconds to come back (its backends must exit before a new
postmaster may start, and crash recovery replays the WAL), and one that is down for long
must not be hammered by every node at once: the first attempt goes at once, then the wait
doubles from `first` up to `ceiling`. While it waits the node answers 503 with a
Retry-After of the time left to the next attempt.
"""

from __future__ import annotations

import math
from typing import Awaitable, Callable

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

log = Logger(namespace="wevoip.store")

FIRST_DELAY = 0.5
CEILING = 30.0


class Backoff:
    """The delays between failed attempts: first, 2 x first, ... capped at `ceiling`."""

    def __init__(self, first: float = FIRST_DELAY, ceiling: float = CEILING):
        if not 0 < first <= ceiling:
            raise ValueError("a backoff needs 0 < first <= ceiling")
        self.first = first
        self.ceiling = ceiling
        self.failures = 0

    def next_delay(self) -> float:
        delay = min(self.ceiling, self.first * 2 ** min(self.failures, 64))
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0


class Reconnector:
    """Runs `attempt` until one succeeds; `start` again after a success begins afresh."""

    def __init__(self, reactor: IReactorTime, attempt: Callable[[], Awaitable[None]],
                 backoff: Backoff | None = None):
        self.reactor = reactor
        self.attempt = attempt
        self.backoff = backoff or Backoff()
        self.attempts = 0
        self.since: float | None = None         # when the loss began; None while connected
        self._next = None                       # the pending attempt's DelayedCall
        self._running: defer.Deferred | None = None
        self._done: list[defer.Deferred[None]] = []

    @property
    def active(self) -> bool:
        return self.since is not None

    def start(self) -> None:
        if self.active:
            return
        self.since = self.reactor.seconds()
        self.attempts = 0
        self.backoff.reset()
        self._next = self.reactor.callLater(0, self._try)

    def retry_after(self) -> int:
        """Whole seconds until the next attempt, at least 1: what Retry-After says."""
        if self._next is not None and self._next.active():
            return max(1, math.ceil(self._next.getTime() - self.reactor.seconds()))
        return max(1, math.ceil(self.backoff.first))

    def _try(self) -> None:
        self._next = None
        self.attempts += 1
        self._running = defer.ensureDeferred(self.attempt())
        self._running.addCallbacks(self._succeeded, self._failed)

    def _succeeded(self, _) -> None:
        self._running = None
        log.info("the database is back after {s:.1f} s and {n} attempt(s)",
                 s=self.reactor.seconds() - self.since, n=self.attempts)
        self.since = None
        waiters, self._done = self._done, []
        for waiter in waiters:
            waiter.callback(None)

    def _failed(self, failure) -> None:
        self._running = None
        if self.since is None:      # stopped meanwhile
            return
        delay = self.backoff.next_delay()
        log.warn("the database is still unavailable (attempt {n}: {why}); next try in {delay:.1f} s",
                 n=self.attempts, why=failure.getErrorMessage(), delay=delay)
        self._next = self.reactor.callLater(delay, self._try)

    def when_back(self) -> defer.Deferred[None]:
        """Fires at the next success (at once when nothing is lost)."""
        if not self.active:
            return defer.succeed(None)
        waiter: defer.Deferred[None] = defer.Deferred()
        self._done.append(waiter)
        return waiter

    async def stop(self) -> None:
        """No more attempts; one under way is waited for (it may be starting a server)."""
        if self._next is not None and self._next.active():
            self._next.cancel()
        self._next = None
        self.since = None
        if self._running is not None:
            await self._running     # its callbacks end its failure
