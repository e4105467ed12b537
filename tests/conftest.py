"""
Shared fixtures: one real embedded PostgreSQL for the session, a migrated template
database, and a fresh copy of it for every test that writes.
"""

from __future__ import annotations

import itertools
import os
import shutil

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from tests.pg import reachable_tmpdir, run_sql
from wevoip.store.database import Database
from wevoip.store.embedded import EmbeddedPostgres
from wevoip.store.migrate import migrate

TEMPLATE = "wevoip_template"
_numbers = itertools.count()


@pytest.fixture(scope="session")
def postgres_root():
    root = reachable_tmpdir("wevoip-test-pg-")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def wait_for(coroutine):
    """Run a coroutine on the test reactor from synchronous code (session fixtures)."""
    return pytest_twisted.blockon(Deferred.fromCoroutine(coroutine))


@pytest.fixture(scope="session")
def postgres(postgres_root):
    server = EmbeddedPostgres(reactor, postgres_root / "data")
    wait_for(server.start())
    run_sql(server.dsn, f"create database {TEMPLATE}")
    wait_for(migrate(reactor, dsn_for(server, TEMPLATE)))
    yield server
    wait_for(server.stop())


def dsn_for(server: EmbeddedPostgres, name: str) -> str:
    return f"host={server.socket_dir} dbname={name} user=postgres"


def _fresh_database(server: EmbeddedPostgres, prefix: str, create: str):
    name = f"{prefix}_{os.getpid()}_{next(_numbers)}"
    run_sql(server.dsn, create.format(name=name))
    yield dsn_for(server, name)
    run_sql(server.dsn, f"drop database {name} with (force)")


@pytest.fixture
def empty_dsn(postgres):
    """A database with nothing in it, for migration tests."""
    yield from _fresh_database(postgres, "empty", "create database {name}")


@pytest.fixture
def dsn(postgres):
    """A database with the whole schema, copied from the migrated template."""
    yield from _fresh_database(postgres, "test", f"create database {{name}} template {TEMPLATE}")


@pytest_twisted.async_yield_fixture
async def database(dsn):
    db = Database(reactor, dsn, size=4)
    await db.connect()
    yield db
    await db.close()
