import psycopg2
import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from wevoip.store.errors import StoreError
from wevoip.store.migrate import discover, migrate


def versions(dsn):
    connection = psycopg2.connect(dsn)
    try:
        with connection.cursor() as cursor:
            cursor.execute("select version from schema_migrations order by version")
            return [row[0] for row in cursor.fetchall()]
    finally:
        connection.close()


def tables(dsn):
    connection = psycopg2.connect(dsn)
    try:
        with connection.cursor() as cursor:
            cursor.execute("select tablename from pg_tables where schemaname = 'public'")
            return {row[0] for row in cursor.fetchall()}
    finally:
        connection.close()


@pytest_twisted.ensureDeferred
async def test_from_empty_then_again(empty_dsn):
    expected = [m.version for m in discover()]
    assert await migrate(reactor, empty_dsn) == expected
    assert versions(empty_dsn) == expected
    assert {"isps", "customers", "tenants", "subscribers", "domains", "carriers",
            "gateways", "dids", "platform_admins", "api_tokens"} <= tables(empty_dsn)
    assert await migrate(reactor, empty_dsn) == []
    assert versions(empty_dsn) == expected


@pytest_twisted.ensureDeferred
async def test_two_nodes_migrating_at_once_apply_each_file_once(empty_dsn):
    first, second = await defer.gatherResults([
        defer.Deferred.fromCoroutine(migrate(reactor, empty_dsn)),
        defer.Deferred.fromCoroutine(migrate(reactor, empty_dsn))])
    expected = [m.version for m in discover()]
    assert sorted([first, second]) == [[], expected]
    assert versions(empty_dsn) == expected


@pytest_twisted.ensureDeferred
async def test_a_failing_migration_leaves_nothing_half_done(empty_dsn, tmp_path):
    (tmp_path / "0001_good.sql").write_text("create table a (x int);")
    (tmp_path / "0002_bad.sql").write_text("create table b (x int); select nonsense from nowhere;")
    with pytest.raises(psycopg2.Error):
        await migrate(reactor, empty_dsn, tmp_path)
    assert versions(empty_dsn) == [1]
    assert "b" not in tables(empty_dsn) and "a" in tables(empty_dsn)


@pytest_twisted.ensureDeferred
async def test_a_database_newer_than_the_code_is_refused(empty_dsn, tmp_path):
    (tmp_path / "0001_one.sql").write_text("select 1;")
    (tmp_path / "0002_two.sql").write_text("select 2;")
    await migrate(reactor, empty_dsn, tmp_path)
    (tmp_path / "0002_two.sql").unlink()
    with pytest.raises(StoreError, match="newer than this WeVoIP"):
        await migrate(reactor, empty_dsn, tmp_path)


def test_badly_named_files_are_refused(tmp_path):
    (tmp_path / "1_x.sql").write_text("")
    with pytest.raises(StoreError, match="NNNN_name.sql"):
        discover(tmp_path)
