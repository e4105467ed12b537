"""
A database that goes away under a running pool, on the real embedded PostgreSQL: the
server ends our sessions (as a crash or a restart does), work in flight and new work get
StoreUnavailable rather than psycopg2's errors, the loss is reported once, a reconnect
brings the pool back, and a restarted notifier listens again and empties the caches.
"""

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.task import deferLater

from tests.pg import run_sql
from wevoip.store.database import Database
from wevoip.store.errors import StoreUnavailable
from wevoip.store.notify import InvalidatedCache, Notifier, publish


def end_sessions(dsn: str) -> int:
    """What a crash does to our connections: the server closes them."""
    [(count,)] = run_sql(dsn, "select count(pg_terminate_backend(pid)) from pg_stat_activity "
                              "where datname = current_database() and pid <> pg_backend_pid()")
    return count


async def until(predicate, seconds=5.0):
    for _ in range(int(seconds * 50)):
        if predicate():
            return
        await deferLater(reactor, 0.02, lambda: None)
    raise AssertionError("condition not reached")


@pytest_twisted.ensureDeferred
async def test_lost_connections_refuse_work_as_unavailable_until_a_reconnect(dsn):
    database = Database(reactor, dsn, size=3)
    database.retry_after = lambda: 7
    losses = []
    database.on_lost = losses.append
    await database.connect()
    try:
        await database.transact(lambda tx: tx.execute("create table t (x int)"))

        async def slow(tx):
            await tx.execute("insert into t values (1)")
            await tx.execute("select pg_sleep(5)")
        in_flight = defer.Deferred.fromCoroutine(database.transact(slow))
        await deferLater(reactor, 0.2, lambda: None)
        assert end_sessions(dsn) == 3
        with pytest.raises(StoreUnavailable) as caught:
            await in_flight
        assert caught.value.retry_after == 7
        await until(lambda: losses)
        with pytest.raises(StoreUnavailable, match="try again in 7 s"):
            await database.transact(lambda tx: tx.fetch("select 1"))
        await deferLater(reactor, 0.2, lambda: None)
        assert len(losses) == 1                 # three broken connections, one report

        old = database._pool
        await database.reconnect()
        assert database.lost is None
        old._lost("a late word from a connection of the old pool")
        assert database.lost is None and len(losses) == 1     # the new pool stays up
        assert await database.transact(lambda tx: tx.fetch_value("select count(*) from t")) == 0
    finally:
        await database.close()


@pytest_twisted.ensureDeferred
async def test_idle_connections_that_break_are_noticed_without_any_work(dsn):
    database = Database(reactor, dsn, size=2)
    losses = []
    database.on_lost = losses.append
    await database.connect()
    try:
        end_sessions(dsn)
        await until(lambda: losses)
        assert database.lost
        with pytest.raises(StoreUnavailable):
            await database.transact(lambda tx: tx.fetch("select 1"))
    finally:
        await database.close()


@pytest_twisted.ensureDeferred
async def test_a_restarted_notifier_listens_again_and_its_caches_forget_what_they_held(database, dsn):
    notifier = Notifier(reactor, dsn)
    losses = []
    notifier.on_lost = losses.append
    await notifier.start()
    cache = InvalidatedCache("domains")
    await cache.attach(notifier)
    got = []
    await notifier.subscribe("outbox", got.append)
    try:
        cache.put("acme.example.net", "tenant 1")
        notifier_sessions = run_sql(dsn, "select count(*) from pg_stat_activity where query like 'listen%%'")
        assert notifier_sessions == [(1,)]
        run_sql(dsn, "select pg_terminate_backend(pid) from pg_stat_activity where query like 'listen%%'")
        await until(lambda: losses)
        # published while the node was deaf: never delivered
        await database.transact(publish, "domains", "acme.example.net")

        await notifier.restart()
        assert "acme.example.net" not in cache and got == ["*"]
        cache.put("other.example.net", "tenant 2")
        await database.transact(publish, "domains", "other.example.net")
        await until(lambda: "other.example.net" not in cache)
    finally:
        notifier.stop()
