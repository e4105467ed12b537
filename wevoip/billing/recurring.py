"""
The billing timer: on every node, now and then, charge the fees of every account whose
billing date has come, and settle the calls this node left when it last stopped; more
often, mark this node's calls alive, so that a crash closes (and bills) them at its last
beat, and close the calls of other nodes whose beats stopped `dead_node_seconds` ago.

Nodes may run it at once: each account is billed in its own transaction under its row lock,
and each fee is claimed by a unique row before it is charged, so a fee is never charged
twice. The clock is injected; "today" is the clock's UTC date.
"""

from __future__ import annotations

import datetime
from typing import Callable

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.logger import Logger

from wevoip.billing.recovery import recover_calls, recover_dead_nodes
from wevoip.store import recurring
from wevoip.store.calls import touch_calls
from wevoip.store.database import Database
from wevoip.store.errors import StoreUnavailable, quiet_when_unavailable

log = Logger(namespace="wevoip.billing")


def utc(clock) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(clock.seconds(), datetime.timezone.utc)


class BillingTimer(Service):
    name = "billing"

    def __init__(self, clock, database_ready: Callable[[], defer.Deferred[Database]], node: str, *,
                 interval_seconds: float = 3600.0, heartbeat_seconds: float = 30.0,
                 dead_node_seconds: float = 600.0):
        """`database_ready` gives the store's database once it is up (the store starts first)."""
        self.clock = clock
        self.database_ready = database_ready
        self.database: Database | None = None
        self.node = node
        self.interval_seconds = interval_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.dead_node_seconds = dead_node_seconds
        self._loop: task.LoopingCall | None = None
        self._heartbeat: task.LoopingCall | None = None
        self._running: defer.Deferred | None = None

    def startService(self) -> None:  # noqa: N802 (Twisted's name)
        super().startService()
        self._started_at = utc(self.clock)
        self._loop = task.LoopingCall(self.tick)
        self._loop.clock = self.clock
        self._heartbeat = task.LoopingCall(self.beat)
        self._heartbeat.clock = self.clock
        ready = self.database_ready()
        ready.addCallback(self._begin)
        ready.addErrback(self._not_started)

    def _not_started(self, failure) -> None:
        """A store that never came up is the node's failure to report, or a stop during start."""
        if self.running:
            log.failure("billing cannot start", failure)

    def _begin(self, database: Database) -> None:
        self.database = database
        if self.running:
            self._loop.start(self.interval_seconds, now=True)
            self._heartbeat.start(self.heartbeat_seconds, now=False).addErrback(
                lambda failure: log.failure("call heartbeat failed", failure))

    def stopService(self):  # noqa: N802 (Twisted's name)
        super().stopService()
        for loop in (self._loop, self._heartbeat):
            if loop is not None and loop.running:
                loop.stop()
        running, self._running = self._running, None
        return running if running is not None else defer.succeed(None)

    def tick(self) -> defer.Deferred:
        if self._running is None:
            self._running = defer.Deferred.fromCoroutine(self.run_once())
            self._running.addErrback(quiet_when_unavailable(log, "billing run failed"))
            self._running.addBoth(self._done)
        return self._running

    def beat(self) -> defer.Deferred:
        """Mark this node's calls alive (after a crash they are closed and billed to here),
        then close the calls of nodes that stopped beating."""
        return defer.Deferred.fromCoroutine(self._beat())

    async def _beat(self) -> None:
        """A failure is logged and the next beat tries again: a loop that stopped would let
        the other nodes take this node's live calls for a dead node's. A lost database is
        not logged here, every beat: the store logs it once, and the beats go on."""
        now = utc(self.clock)
        try:
            await self.database.transact(touch_calls, self.node, now, _retry=True)
        except StoreUnavailable:
            return
        except Exception:
            log.failure("marking this node's calls alive failed")
        seen_before = now - datetime.timedelta(seconds=self.dead_node_seconds)
        try:
            recovered = await self.database.transact(recover_dead_nodes, self.node, seen_before, _retry=True)
        except StoreUnavailable:
            return
        except Exception:
            log.failure("closing the calls of nodes not seen since {seen_before} failed",
                        seen_before=seen_before.isoformat())
            return
        if recovered:
            log.info("closed {count} calls of nodes not seen since {seen_before}", count=len(recovered),
                     seen_before=seen_before.isoformat())

    def _done(self, result):
        self._running = None
        return result

    async def run_once(self) -> int:
        """Recover this node's dead calls, then bill every due account; the fees charged."""
        recovered = await self.database.transact(recover_calls, self.node, self._started_at, _retry=True)
        if recovered:
            log.info("settled {count} calls left by this node's last run", count=len(recovered))
        today = utc(self.clock).date()
        charged = 0
        billed: set[int] = set()
        while True:
            due = [row for row in await self.database.transact(recurring.due_customers, today) if row["id"] not in billed]
            if not due:
                return charged
            for row in due:
                billed.add(row["id"])
                charged += len(await self.database.transact(recurring.bill_customer, row["isp_id"], row["id"], today))
