import psycopg2.errors
import psycopg2.sql
import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from wevoip.store import database as database_module
from wevoip.store.database import Database
from wevoip.store.errors import Invalid, StoreError


@pytest_twisted.ensureDeferred
async def test_closing_lets_work_in_flight_finish_and_refuses_new_work(dsn):
    database = Database(reactor, dsn, size=2)
    await database.connect()
    await database.transact(lambda tx: tx.execute("create table t (x int)"))

    async def slow(tx):
        await tx.execute("select pg_sleep(0.5)")
        await tx.execute("insert into t values (1)")
        return "finished"
    in_flight = defer.Deferred.fromCoroutine(database.transact(slow))
    closing = defer.Deferred.fromCoroutine(database.close())
    assert not closing.called
    with pytest.raises(StoreError, match="not running"):
        await database.transact(lambda tx: tx.fetch("select 1"))
    assert await in_flight == "finished"
    await closing

    again = Database(reactor, dsn, size=1)
    await again.connect()
    try:
        assert await again.fetch("select x from t") == [{"x": 1}]
    finally:
        await again.close()


@pytest_twisted.ensureDeferred
async def test_an_exception_rolls_the_whole_transaction_back(database):
    await database.transact(lambda tx: tx.execute("create table t (x int)"))

    async def half(tx):
        await tx.execute("insert into t values (1)")
        raise Invalid("x", "changed my mind")
    with pytest.raises(Invalid):
        await database.transact(half)
    assert await database.fetch("select * from t") == []


@pytest_twisted.ensureDeferred
async def test_a_wrong_dsn_is_a_clear_error():
    database = Database(reactor, "host=/nonexistent dbname=nothing user=nobody", size=1)
    with pytest.raises(StoreError, match="cannot connect to PostgreSQL"):
        await database.connect()


@pytest_twisted.ensureDeferred
async def test_the_first_statement_opens_the_transaction_whatever_its_form(database):
    """BEGIN rides on the first statement, plain or composed; a first statement that fails
    rolls back and leaves the connection to the next transaction."""
    async def both(tx):
        first = await tx.fetch_value(psycopg2.sql.SQL("select {}").format(psycopg2.sql.SQL("now()")))
        await tx.execute("select pg_sleep(0.01)")
        return first, await tx.fetch_value("select now()")
    first, second = await database.transact(both)
    assert first == second        # now() is the transaction's start: one transaction
    for _ in range(database.size + 1):     # every pooled connection takes a failing first statement
        with pytest.raises(psycopg2.errors.UndefinedTable):
            await database.transact(lambda tx: tx.fetch("select * from no_such_table"))
    assert await database.fetch("select 1 as one") == [{"one": 1}]

    async def nothing(tx):
        return "no statement at all"
    assert await database.transact(nothing) == "no statement at all"


@pytest_twisted.ensureDeferred
async def test_work_alone_is_one_statement_and_its_own_transaction(database):
    await database.transact(lambda tx: tx.execute("create table t (x int)"))
    assert await database.alone(lambda tx: tx.execute("insert into t values (1), (2)")) == 2
    assert await database.fetch("select count(*) as n from t") == [{"n": 2}]

    async def two(tx):
        await tx.execute("insert into t values (3)")
        await tx.execute("insert into t values (4)")
    with pytest.raises(StoreError, match="one statement"):
        await database.alone(two)
    assert await database.fetch("select max(x) as top from t") == [{"top": 3}]   # the first was its own


@pytest_twisted.ensureDeferred
async def test_a_decision_comes_back_before_its_commit_which_follows(database):
    """`decide` hands the work's result over before COMMIT goes out; once `committed` has
    fired, the row is there for every connection."""
    await database.transact(lambda tx: tx.execute("create table t (x int)"))

    async def insert(tx):
        return await tx.fetch_value("insert into t values (7) returning x")
    result, committed = await database.decide(insert)
    assert result == 7
    assert not committed.called
    await committed
    assert await database.fetch("select x from t") == [{"x": 7}]


@pytest_twisted.ensureDeferred
async def test_a_failed_decision_raises_and_a_failed_commit_fails_committed(database):
    await database.transact(lambda tx: tx.execute(
        "create table t (x int primary key, up int references t (x) deferrable initially deferred)"))

    async def refuse(tx):
        await tx.execute("insert into t values (1, null)")
        raise Invalid("x", "changed my mind")
    with pytest.raises(Invalid):
        await database.decide(refuse)

    async def dangling(tx):     # the deferred foreign key is checked by COMMIT, after the decision
        return await tx.execute("insert into t values (2, 99)")
    result, committed = await database.decide(dangling)
    assert result == 1
    with pytest.raises(Invalid, match="up: refers to something that does not exist"):
        await committed
    assert await database.fetch("select count(*) as n from t") == [{"n": 0}]


async def _crossing(database, retry):
    """Two transactions that lock rows 1 and 2 in opposite orders, each taking its second
    only once the other holds its first: PostgreSQL must pick a victim (40P01)."""
    await database.transact(lambda tx: tx.execute("create table t (id int primary key, n int);"
                                                   " insert into t values (1, 0), (2, 0)"))
    first_locked = {1: defer.Deferred(), 2: defer.Deferred()}
    runs = []

    async def lock(tx, first, second):
        runs.append(first)
        await tx.execute("update t set n = n + 1 where id = %s", (first,))
        if not first_locked[first].called:
            first_locked[first].callback(None)
        await first_locked[second]
        await tx.execute("update t set n = n + 1 where id = %s", (second,))
        return first

    both = defer.DeferredList([defer.Deferred.fromCoroutine(database.transact(lock, 1, 2, _retry=retry)),
                               defer.Deferred.fromCoroutine(database.transact(lock, 2, 1, _retry=retry))],
                              consumeErrors=True)
    return await both, runs


@pytest_twisted.ensureDeferred
async def test_a_deadlock_victim_is_run_again_when_its_work_may_be(database):
    results, runs = await _crossing(database, True)
    assert [ok for ok, _ in results] == [True, True]
    assert sorted(runs) == [1, 1, 2] or sorted(runs) == [1, 2, 2]     # the victim ran twice
    assert await database.fetch("select id, n from t order by id") == [{"id": 1, "n": 2}, {"id": 2, "n": 2}]


@pytest_twisted.ensureDeferred
async def test_a_deadlock_victim_fails_when_its_work_may_not_run_again(database):
    results, runs = await _crossing(database, False)
    failures = [result for ok, result in results if not ok]
    assert len(failures) == 1 and failures[0].check(psycopg2.errors.DeadlockDetected)
    assert sorted(runs) == [1, 2]
    assert await database.fetch("select sum(n) as n from t") == [{"n": 2}]


@pytest_twisted.ensureDeferred
async def test_retries_are_bounded(database, monkeypatch):
    """Work that fails on serialisation every time is given up after the last pause."""
    monkeypatch.setattr(database_module, "RETRY_PAUSES", (0.001, 0.001))
    runs = []

    async def never(tx):
        runs.append(1)
        await tx.execute("do $$ begin raise exception using errcode = 'serialization_failure'; end $$")
    with pytest.raises(psycopg2.errors.SerializationFailure):
        await database.transact(never, _retry=True)
    assert len(runs) == 3
