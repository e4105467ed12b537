"""
The store as a Twisted service: the database (embedded or at a DSN), migrations, the pool.

Starting takes seconds (initdb on the first run, then the server and migrations), so
`startService` returns at once and the others wait on `when_ready()`. Stopping waits for
the start to finish, then for the queries in flight, then shuts the server down.
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger

from wevoip.config import Config
from wevoip.store.database import Database
from wevoip.store.embedded import EmbeddedPostgres
from wevoip.store.migrate import migrate, schema_version
from wevoip.store.notify import Notifier

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
        return database

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
        if self.notifier is not None:
            self.notifier.stop()
        if self.database is not None:
            await self.database.close()
        if self.embedded is not None:
            await self.embedded.stop()
        self.database = self.notifier = None

    async def health(self) -> dict:
        if self.database is None or not self.database.running:
            return {"status": "failed" if self.failure else "starting", "embedded": self.embedded is not None,
                    **({"error": self.failure.getErrorMessage()} if self.failure else {})}
        try:
            latency = await self.database.ping()
            version = await self.database.transact(schema_version)
        except Exception as error:
            return {"status": "failed", "embedded": self.embedded is not None, "error": str(error)}
        return {"status": "ok", "embedded": self.embedded is not None,
                "latency_ms": round(latency, 2), "schema_version": version}
