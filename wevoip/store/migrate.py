"""
Schema migrations: ordered SQL files, each applied in its own transaction and recorded.

Several nodes may start against one database at the same moment; a session-level advisory
lock makes them take turns, and the one that comes second finds the work done.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from twisted.internet import defer
from twisted.logger import Logger

from wevoip.store.database import open_connection
from wevoip.store.errors import StoreError

log = Logger(namespace="wevoip.store.migrate")

MIGRATIONS = Path(__file__).parent / "migrations"
ADVISORY_LOCK = 0x57655649_50000001  # "WeVIP" + 1: ours alone among advisory locks


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path


def discover(directory: Path = MIGRATIONS) -> list[Migration]:
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = re.fullmatch(r"(\d{4})_([a-z0-9_]+)\.sql", path.name)
        if not match:
            raise StoreError(f"migration file {path.name} is not named NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise StoreError(f"two migrations have version {version}")
        found[version] = Migration(version, match.group(2), path)
    return [found[v] for v in sorted(found)]


async def migrate(reactor, dsn: str, directory: Path = MIGRATIONS) -> list[int]:
    """Apply what is missing; return the versions this call applied."""
    migrations = discover(directory)
    connection = await open_connection(reactor, dsn)
    try:
        await connection.runOperation("select pg_advisory_lock(%s)", (ADVISORY_LOCK,))
        try:
            return await _apply_missing(connection, migrations)
        finally:
            await connection.runOperation("select pg_advisory_unlock(%s)", (ADVISORY_LOCK,))
    finally:
        connection.close()


async def _apply_missing(connection, migrations: list[Migration]) -> list[int]:
    await connection.runOperation(
        "create table if not exists schema_migrations ("
        " version integer primary key, name text not null,"
        " applied_at timestamptz not null default now())")
    rows = await connection.runQuery("select version from schema_migrations")
    done = {row["version"] for row in rows}
    known = {m.version for m in migrations}
    if done - known:
        raise StoreError(f"the database has schema version {max(done)}, newer than this "
                         f"WeVoIP knows ({max(known, default=0)}): upgrade this node")
    applied = []
    for migration in migrations:
        if migration.version in done:
            continue
        log.info("applying migration {version:04d} {name}", version=migration.version,
                 name=migration.name)
        await connection.runInteraction(
            lambda cursor, m=migration: defer.Deferred.fromCoroutine(_apply(cursor, m)))
        applied.append(migration.version)
    return applied


async def _apply(cursor, migration: Migration) -> None:
    await cursor.execute(migration.path.read_text(encoding="utf-8"))
    await cursor.execute("insert into schema_migrations (version, name) values (%s, %s)",
                         (migration.version, migration.name))


async def schema_version(tx) -> int:
    return await tx.fetch_value("select coalesce(max(version), 0) from schema_migrations")
