"""
Shared fixtures: one real embedded PostgreSQL for the session, a migrated template
database, and a fresh copy of it for every test that writes.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from pathlib import Path

import psycopg2
import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from wevoip.store.database import Database
from wevoip.store.embedded import EmbeddedPostgres
from wevoip.store.migrate import migrate

TEMPLATE = "wevoip_template"
_numbers = itertools.count()


def reachable_tmpdir(prefix: str) -> Path:
    """A temporary folder the embedded server's unprivileged user can enter (pytest's are 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


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
    _admin(server, f"create database {TEMPLATE}")
    wait_for(migrate(reactor, dsn_for(server, TEMPLATE)))
    yield server
    wait_for(server.stop())


def dsn_for(server: EmbeddedPostgres, name: str) -> str:
    return f"host={server.socket_dir} dbname={name} user=postgres"


def _admin(server: EmbeddedPostgres, statement: str) -> None:
    connection = psycopg2.connect(server.dsn)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


@pytest.fixture
def empty_dsn(postgres):
    """A database with nothing in it, for migration tests."""
    name = f"empty_{os.getpid()}_{next(_numbers)}"
    _admin(postgres, f"create database {name}")
    yield dsn_for(postgres, name)
    _admin(postgres, f"drop database {name} with (force)")


@pytest.fixture
def dsn(postgres):
    """A database with the whole schema, copied from the migrated template."""
    name = f"test_{os.getpid()}_{next(_numbers)}"
    _admin(postgres, f"create database {name} template {TEMPLATE}")
    yield dsn_for(postgres, name)
    _admin(postgres, f"drop database {name} with (force)")


@pytest_twisted.async_yield_fixture
async def database(dsn):
    db = Database(reactor, dsn, size=4)
    await db.connect()
    yield db
    await db.close()
