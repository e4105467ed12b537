"""
The store as a Twisted service: the database (embedded or at a DSN), migrations, the pool.

Starting takes seconds (initdb on the first run, then the server and migrations), so
`startService` returns at once and the others wait on `when_ready()`. Stopping waits for
the start to finish, then for the queries in flight, then shuts the server down.

Once started, losing the database (a connection of the pool or the notifier breaks, or the
embedded server exits) is logged once; the Database then refuses work with
StoreUnavailable (503 on the web and on SIP) while a Reconnector restarts the embedded
server if it died, reconnects the pool and the notifier, and empties every cache through
the notifier, since the notifications published meanwhile were never heard.
"""

from __future__ import annotations

import datetime

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger

from wevoip.config import Config
from wevoip.store.database import Database
from wevoip.store.embedded import EmbeddedPostgres
from wevoip.store.errors import StoreUnavailable
from wevoip.store.migrate import migrate, schema_version
from wevoip.store.notify import Notifier
from wevoip.store.recovery import Reconnector

log = Logger(namespace="wevoip.store")


class StoreService(Service):
    name = "store"

    def __init__(self, reactor, config: Config):
        self.reactor = reactor
        self.config = config
        self.embedded: EmbeddedPostgres | None = None
        self.database: Database | None = None
        self.notifier: Notifier | None = None
        self.failure = None
        self._started: defer.Deferred | None = None
        self._waiters: list[defer.Deferred] = []
        self.recovery = Reconnector(reactor, self._recover)

    def startService(self) -> None:  # noqa: N802 (Twisted's name)
        super().startService()
        self._started = defer.Deferred.fromCoroutine(self._start())
        self._started.addBoth(self._settled)

    async def _start(self) -> Database:
        dsn = self.config.store.dsn
        if not dsn:
            self.embedded = EmbeddedPostgres(self.reactor, self.config.node.data_dir / "postgres",
                                             self.config.store.embedded_user)
            await self.embedded.start()
            dsn = self.embedded.dsn
        applied = await migrate(self.reactor, dsn)
        if applied:
            log.info("schema migrated to version {v}", v=applied[-1])
        database = Database(self.reactor, dsn, self.config.store.pool_size)
        await database.connect()
        notifier = Notifier(self.reactor, dsn)
        await notifier.start()
        self.database, self.notifier = database, notifier
        database.on_lost = notifier.on_lost = self._lost
        database.retry_after = self.recovery.retry_after
        if self.embedded is not None:
            self.embedded.on_exit = lambda code: self._lost(f"the embedded PostgreSQL exited ({code})")
        return database

    def _lost(self, reason: str) -> None:
        """The one log line of a loss, however many requests meet it."""
        if self.recovery.active or not self.running:
            return
        self.recovery.start()
        log.error("lost the database: {reason}; answering 503 until it is back", reason=reason)
        self.database.mark_lost(reason)
        self.notifier.stop()

    async def _recover(self) -> None:
        if self.embedded is not None and not self.embedded.running:
            await self.embedded.start()
        await self.database.reconnect()
        await self.notifier.restart()

    def _settled(self, result):
        if isinstance(result, Database):
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                waiter.callback(result)
        else:
            self.failure = result
            log.failure("the store could not start", result)
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                waiter.errback(result)
        return None

    def when_ready(self) -> defer.Deferred[Database]:
        if self.database is not None:
            return defer.succeed(self.database)
        if self.failure is not None:
            return defer.fail(self.failure)
        waiter: defer.Deferred[Database] = defer.Deferred()
        self._waiters.append(waiter)
        return waiter

    def stopService(self):  # noqa: N802 (Twisted's name)
        super().stopService()
        return defer.Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        if self._started is not None:
            await self._started
        await self.recovery.stop()
        if self.notifier is not None:
            self.notifier.stop()
        if self.database is not None:
            await self.database.close()
        if self.embedded is not None:
            await self.embedded.stop()
        self.database = self.notifier = None

    def _unavailable(self) -> dict:
        return {"status": "unavailable", "embedded": self.embedded is not None,
                "error": self.database.lost, "retry_after": self.recovery.retry_after(),
                "since": _utc(self.recovery.since), "attempts": self.recovery.attempts}

    async def health(self) -> dict:
        if self.database is not None and self.database.lost is not None:
            return self._unavailable()
        if self.database is None or not self.database.running:
            return {"status": "failed" if self.failure else "starting", "embedded": self.embedded is not None,
                    **({"error": self.failure.getErrorMessage()} if self.failure else {})}
        try:
            latency = await self.database.ping()
            version = await self.database.transact(schema_version)
        except StoreUnavailable:
            return self._unavailable()
        except Exception as error:
            return {"status": "failed", "embedded": self.embedded is not None, "error": str(error)}
        return {"status": "ok", "embedded": self.embedded is not None,
                "latency_ms": round(latency, 2), "schema_version": version}


def _utc(seconds: float | None) -> str | None:
    return None if seconds is None else \
        datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat(timespec="seconds")
