"""
The connection pool and the transaction handle every data-access function receives.

Data-access functions are `async def f(tx, ...)`: they never open transactions themselves,
so a caller can compose several into one atomic unit with `Database.transact`. The pool
counts the work in flight so that a stopping node finishes what it started before the
connections close.
"""

from __future__ import annotations

import ipaddress
import random
from typing import Any, Awaitable, Callable, TypeVar

import psycopg2
import psycopg2.errors
import psycopg2.extras
import psycopg2.sql
from twisted.internet import defer, task
from twisted.logger import Logger
from txpostgres import txpostgres

from wevoip.store.constraints import error_for_constraint
from wevoip.store.errors import StoreError, StoreUnavailable

log = Logger(namespace="wevoip.store")

# inet and cidr values (gateway source addresses) travel as the ipaddress module's objects;
# networks are sent typed, so that an array of them is a cidr[] and not a text[].
psycopg2.extras.register_ipaddress()


def _adapt_network(network: ipaddress.IPv4Network | ipaddress.IPv6Network):
    return psycopg2.extensions.AsIs(f"'{network}'::cidr")


for _network in (ipaddress.IPv4Network, ipaddress.IPv6Network):
    psycopg2.extensions.register_adapter(_network, _adapt_network)

T = TypeVar("T")
Row = dict[str, Any]

# A transaction PostgreSQL chose as a deadlock's victim (40P01) or could not serialise
# (40001) did nothing: run again, it succeeds once the other has gone. The pauses between
# attempts grow, with jitter so that two victims do not meet again; after the last, the
# error is the caller's.
RETRIED_STATES = ("40P01", "40001")
RETRY_PAUSES = (0.005, 0.02, 0.08, 0.2, 0.5)


class Tx:
    """One open transaction: rows come back as dicts keyed by column name.

    BEGIN is not a round trip of its own: it travels in front of the transaction's first
    statement (one simple query, so PostgreSQL runs both before it answers)."""

    def __init__(self, cursor: txpostgres.Cursor, *, alone: bool = False):
        self._cursor = cursor
        self.begun = False
        self._alone = alone     # one statement, its own transaction: no BEGIN, no COMMIT

    async def _run(self, sql: str | psycopg2.sql.Composable, params: Any) -> None:
        if self._alone:
            if self.begun:
                raise StoreError("a statement sent alone (Database.alone, Tx.fetch_last) must be its work's one statement")
            self.begun = True
        elif not self.begun:
            self.begun = True
            sql = (psycopg2.sql.SQL("begin; ") + sql) if isinstance(sql, psycopg2.sql.Composable) \
                else "begin; " + sql
        await self._cursor.execute(sql, params)

    async def execute(self, sql: str, params: Any = None) -> int:
        await self._run(sql, params)
        return self._cursor.rowcount

    async def fetch(self, sql: str, params: Any = None) -> list[Row]:
        await self._run(sql, params)
        return [dict(row) for row in self._cursor.fetchall()]

    async def fetch_one(self, sql: str, params: Any = None) -> Row | None:
        rows = await self.fetch(sql, params)
        return rows[0] if rows else None

    async def fetch_last(self, sql: str, params: Any = None) -> list[Row]:
        """The transaction's last statement. When it is its first as well, it is sent alone,
        as its own transaction: one round trip, where BEGIN with it and a COMMIT are two."""
        if not self.begun:
            self._alone = True
        return await self.fetch(sql, params)

    async def fetch_value(self, sql: str, params: Any = None) -> Any:
        row = await self.fetch_one(sql, params)
        return None if row is None else next(iter(row.values()))


def _broken(connection: txpostgres.Connection) -> bool:
    """psycopg2 marks a connection whose server went away as closed (2) when it finds out."""
    raw = connection.pollable()
    return raw is None or bool(raw.closed)


class _Watched(txpostgres.Connection):
    """`on_lost` hears that the server went away while the connection sat idle (its socket
    became readable with an error), instead of the reactor logging a traceback."""

    on_lost: Callable[[str], None] | None = None

    def doRead(self):  # noqa: N802 (Twisted's name)
        try:
            super().doRead()
        except psycopg2.Error as error:
            self.reactor.removeReader(self)
            if self.on_lost is not None:
                self.on_lost(str(error).strip() or type(error).__name__)


class _Connection(_Watched):
    """txpostgres's transaction, less two round trips: BEGIN rides on the first statement
    (`Tx`), and work that sent no statement sends no COMMIT either."""

    def _runInteraction(self, interaction, *args, alone=False, **kwargs):  # noqa: N802 (txpostgres's name)
        tx = Tx(self.cursor(), alone=alone)
        done = defer.maybeDeferred(interaction, tx, *args, **kwargs)
        if alone:
            return done

        def commit(result):
            if not tx.begun or tx._alone:
                return result
            return tx._cursor.execute("commit").addCallback(lambda _: result)

        def roll_back(failure):
            if not tx.begun or tx._alone or _broken(self):
                return failure
            rolled = defer.maybeDeferred(tx._cursor.execute, "rollback")

            def panic(rollback_failure):
                log.failure("rolling back a transaction failed", rollback_failure)
                return defer.fail(txpostgres.RollbackFailed(self, failure))

            return rolled.addCallbacks(lambda _: failure, panic)

        return done.addCallback(commit).addErrback(roll_back)


_SESSION_OPTIONS = "-c timezone=UTC -c statement_timeout=30000"


class _Pool(txpostgres.ConnectionPool):
    """txpostgres's pool with the reactor passed in rather than imported, which turns the
    failure of work whose connection broke into StoreUnavailable and tells `on_lost`."""

    connectionFactory = _Connection  # noqa: N815 (txpostgres's name)

    def __init__(self, reactor, dsn: str, size: int, on_lost: Callable[["_Pool", str], None]):
        self.reactor = reactor
        super().__init__(None, dsn, min=size, cursor_factory=psycopg2.extras.RealDictCursor,
                         options=_SESSION_OPTIONS)
        self.on_lost = on_lost
        self.every = frozenset(self.connections)    # in use or not: the pool pops them
        for connection in self.every:
            connection.on_lost = self._lost

    def _lost(self, reason: str) -> None:
        self.on_lost(self, reason)

    def _runInteraction(self, interaction, *args, **kwargs):  # noqa: N802 (txpostgres's name)
        connection = self.connections.pop()

        def lost(failure):
            if not _broken(connection):
                return failure
            reason = failure.getErrorMessage().strip() or failure.type.__name__
            self._lost(reason)
            raise StoreUnavailable(reason)

        done = connection.runInteraction(interaction, *args, **kwargs).addErrback(lost)
        return done.addBoth(self._putBackAndPassthrough, connection)

    def close_all(self) -> None:
        """Every connection, including those that work still holds (which then fails)."""
        for connection in self.every:
            if connection.pollable() is not None:
                connection.close()


async def open_connection(reactor, dsn: str, on_lost: Callable[[str], None] | None = None) -> txpostgres.Connection:
    """A lone connection outside the pool, for work that holds a session (locks, LISTEN)."""
    connection = _Watched(reactor=reactor)
    connection.on_lost = on_lost
    try:
        await connection.connect(dsn, cursor_factory=psycopg2.extras.RealDictCursor,
                                 options=_SESSION_OPTIONS)
    except psycopg2.Error as error:
        raise StoreError(f"cannot connect to PostgreSQL: {str(error).strip()}") from None
    return connection


class Database:
    """The pool, kept by everything that needs the store for the node's whole life: when
    the connections are lost it stays the same object, refusing work with StoreUnavailable
    until `reconnect` has a new pool (the store service drives that)."""

    def __init__(self, reactor, dsn: str, size: int = 4):
        self.reactor = reactor
        self.dsn = dsn
        self.size = size
        self._pool: _Pool | None = None
        self._in_flight = 0
        self._idle: list[defer.Deferred[None]] = []
        self._closing = False
        self.lost: str | None = None            # why the connections went, until they are back
        self.retry_after: Callable[[], int] = lambda: 5    # seconds a refused caller is told to wait
        self.on_lost: Callable[[str], None] | None = None

    async def connect(self) -> None:
        pool = _Pool(self.reactor, self.dsn, self.size, self._pool_lost)
        try:
            await pool.start()
        except defer.FirstError as error:
            pool.close_all()
            reason = error.subFailure.getErrorMessage().strip()
            raise StoreError(f"cannot connect to PostgreSQL: {reason}") from None
        self._pool = pool

    def _pool_lost(self, pool: _Pool, reason: str) -> None:
        """A pool lost before the last reconnect tells of its own end, not the new pool's."""
        if pool is self._pool:
            self.mark_lost(reason)

    def mark_lost(self, reason: str) -> None:
        """The first sign of a broken connection takes the whole pool down: a server that
        dropped one connection has usually dropped them all (a crash, a restart)."""
        if self.lost is not None or self._pool is None or self._closing:
            return
        self.lost = reason
        self._pool.close_all()
        if self.on_lost is not None:
            self.on_lost(reason)

    async def reconnect(self) -> None:
        """A new pool in place of the lost one; raises StoreError while the server is away."""
        if self._closing:
            raise StoreError("the store is stopping")
        await self.connect()
        self.lost = None

    async def close(self) -> None:
        """Refuse new work, let the work in flight finish, then close the connections."""
        self._closing = True
        if self._in_flight:
            waiter: defer.Deferred[None] = defer.Deferred()
            self._idle.append(waiter)
            await waiter
        if self._pool is not None:
            self._pool.close_all()
            self._pool = None

    async def transact(self, work: Callable[..., Awaitable[T]], *args: Any, _alone: bool = False,
                       _retry: bool | Callable[[], bool] = False, **kwargs: Any) -> T:
        """Run `work(tx, *args, **kwargs)` in one transaction; an exception rolls it back.

        `_retry`: the work is safe to run again (all it does is in the transaction, which a
        failure rolls back), so a deadlock or serialisation failure runs it again after a
        short pause (`RETRY_PAUSES`); a callable says so at the moment of the failure."""
        if self._pool is None or self._closing:
            raise StoreError("the store is not running")
        if self.lost is not None:
            raise StoreUnavailable(self.lost, self.retry_after())
        self._in_flight += 1
        try:
            attempts = 0
            while True:
                try:
                    return await self._pool.runInteraction(
                        lambda tx: defer.Deferred.fromCoroutine(work(tx, *args, **kwargs)), alone=_alone)
                except psycopg2.errors.TransactionRollbackError as error:
                    again = _retry() if callable(_retry) else _retry
                    if attempts == len(RETRY_PAUSES) or not again or error.pgcode not in RETRIED_STATES:
                        raise
                    pause, attempts = RETRY_PAUSES[attempts], attempts + 1
                    log.info("transaction {work} failed ({state}: {error}); again in {pause} s",
                             work=getattr(work, "__qualname__", "work"), state=error.pgcode,
                             error=str(error).strip().splitlines()[0], pause=pause)
                    await task.deferLater(self.reactor, pause * (0.5 + random.random()), lambda: None)
        except psycopg2.IntegrityError as error:
            raise error_for_constraint(error) from None
        except StoreUnavailable as error:
            raise StoreUnavailable(error.reason, self.retry_after()) from None
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                waiters, self._idle = self._idle, []
                for waiter in waiters:
                    waiter.callback(None)

    async def decide(self, work: Callable[..., Awaitable[T]], *args: Any,
                     **kwargs: Any) -> tuple[T, defer.Deferred[None]]:
        """Run `work` in a transaction and return its result as soon as it has one, before
        the COMMIT has gone out, with a Deferred that fires once the commit is done (or
        fails if it never was). The transaction's row locks keep every other transaction
        that needs them waiting until then, so a decision taken under them stands; the
        caller may act on it at once, as long as what it does before `committed` fires
        does not need the rows to be there for others (a call's set-up sends the callee's
        INVITE; the answer's mark, a failover's count and the call's record wait)."""
        decided: defer.Deferred[T] = defer.Deferred()

        async def work_then_decide(tx):
            result = await work(tx, *args, **kwargs)
            decided.callback(result)
            return result

        def failed(failure):
            if not decided.called:
                decided.errback(failure)
                return None
            return failure

        # Run again after a deadlock only while nothing was decided: after, the caller acts on it.
        committed = defer.Deferred.fromCoroutine(
            self.transact(work_then_decide, _retry=lambda: not decided.called))
        committed.addCallbacks(lambda _: None, failed)
        return await decided, committed

    async def alone(self, work: Callable[..., Awaitable[T]], *args: Any, _retry: bool = False,
                    **kwargs: Any) -> T:
        """Run work of exactly one statement, which PostgreSQL makes its own transaction: one
        round trip instead of a transaction's two (a second statement raises StoreError)."""
        return await self.transact(work, *args, _alone=True, _retry=_retry, **kwargs)

    async def fetch(self, sql: str, params: Any = None) -> list[Row]:
        return await self.transact(lambda tx: tx.fetch(sql, params))

    async def ping(self) -> float:
        """Round-trip time in milliseconds, for the health endpoint."""
        started = self.reactor.seconds()
        await self.transact(lambda tx: tx.fetch_value("select 1"))
        return (self.reactor.seconds() - started) * 1000

    @property
    def running(self) -> bool:
        return self._pool is not None and not self._closing
