from pathlib import Path

import pytest_twisted
from twisted.internet import defer, reactor

from wevoip.config import parse_config
from wevoip.store.migrate import discover
from wevoip.store.service import StoreService


def store_for(dsn: str) -> StoreService:
    config = parse_config("", Path("/nonexistent")).with_overrides(dsn=dsn)
    return StoreService(reactor, config)


@pytest_twisted.ensureDeferred
async def test_two_nodes_starting_at_once_on_one_database_both_come_up(empty_dsn):
    first, second = store_for(empty_dsn), store_for(empty_dsn)
    first.startService()
    second.startService()
    try:
        databases = await defer.gatherResults([first.when_ready(), second.when_ready()])
        assert all(database.running for database in databases)
        applied = await databases[0].fetch("select version from schema_migrations order by version")
        assert [row["version"] for row in applied] == [m.version for m in discover()]
        assert (await first.health())["status"] == "ok"
        assert (await second.health())["schema_version"] == applied[-1]["version"]
    finally:
        await defer.gatherResults([defer.maybeDeferred(first.stopService),
                                   defer.maybeDeferred(second.stopService)])
    assert first.database is None and second.database is None


@pytest_twisted.ensureDeferred
async def test_a_store_that_cannot_start_says_why_in_its_health():
    store = store_for("host=/nonexistent dbname=x user=y")
    store.startService()
    try:
        await store.when_ready()
    except Exception as error:
        assert "cannot connect to PostgreSQL" in str(error)
    else:
        raise AssertionError("a store without a server became ready")
    health = await store.health()
    assert health["status"] == "failed" and "cannot connect" in health["error"]
    await store.stopService()
