"""Plain synchronous SQL and folders for tests that look at the database from outside."""

from __future__ import annotations

import tempfile
from pathlib import Path

import psycopg2


def run_sql(dsn: str, statement: str, params=None):
    """One autocommitted statement; its rows as tuples, or None when it returns none."""
    connection = psycopg2.connect(dsn)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description else None
    finally:
        connection.close()


def reachable_tmpdir(prefix: str) -> Path:
    """A temporary folder the embedded server's unprivileged user can enter (pytest's are 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def children_of(pid: int) -> list[int]:
    """The processes whose parent is `pid` (a postmaster's backends and helpers), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)
