"""
Clearing what the consoles leave behind in PostgreSQL: expired sessions, login failures
older than the rate-limit window, and signups whose link expired unused.

Every node runs it; the deletes are idempotent, so two nodes doing it at once is harmless.
"""

from __future__ import annotations

import datetime

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.logger import Logger

from wevoip.store import logins, sessions, signups
from wevoip.store.database import Database, Tx
from wevoip.store.errors import quiet_when_unavailable

log = Logger(namespace="wevoip.web.console")


class ConsoleHousekeeping(Service):
    name = "console-housekeeping"

    def __init__(self, clock, database: Database, login_window: datetime.timedelta, *, every_seconds: float = 600):
        self.clock = clock
        self.database = database
        self.login_window = login_window
        self.every_seconds = every_seconds
        self._loop: task.LoopingCall | None = None
        self.last_sweep: defer.Deferred | None = None
        self.swept = 0

    def startService(self) -> None:  # noqa: N802 (Twisted's name)
        super().startService()
        self._loop = task.LoopingCall(self._sweep)
        self._loop.clock = self.clock
        self._loop.start(self.every_seconds, now=True).addErrback(
            lambda failure: log.failure("console housekeeping stopped", failure))

    def stopService(self):  # noqa: N802 (Twisted's name)
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def _sweep(self) -> defer.Deferred:
        sweep = defer.Deferred.fromCoroutine(self.database.transact(self.sweep))
        sweep.addCallback(lambda count: setattr(self, "swept", self.swept + count))
        self.last_sweep = sweep.addErrback(quiet_when_unavailable(log, "console housekeeping failed"))
        return self.last_sweep

    async def sweep(self, tx: Tx) -> int:
        """How many rows went."""
        return (await sessions.delete_expired_sessions(tx) + await logins.forget_old_failures(tx, self.login_window)
                + await signups.delete_stale_signups(tx))
