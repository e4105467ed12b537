"""
The embedded server killed with SIGKILL (issue 12 point 14), without a node: its exit is
reported at once even while a surviving process of it keeps its output open, and a new
start over the postmaster.pid it left ("ready") waits for the new server rather than
believe the old file, and is refused while a process of the old one still holds the
shared memory (PostgreSQL's own interlock, which the stale file must keep).
"""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.task import deferLater

from tests.pg import children_of, reachable_tmpdir, run_sql
from wevoip.store.embedded import EmbeddedPostgres
from wevoip.store.errors import StoreError


@pytest.fixture
def root():
    path = reachable_tmpdir("wevoip-test-embedded-crash-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _pid(root) -> int:
    return int((root / "pg" / "postmaster.pid").read_text().split()[0])


@pytest_twisted.ensureDeferred
async def test_a_killed_server_is_reported_and_a_new_start_waits_for_its_own_server(root):
    server = EmbeddedPostgres(reactor, root / "pg")
    await server.start()
    run_sql(server.dsn, "create table kept (value int)")
    run_sql(server.dsn, "insert into kept values (7)")
    exits = []
    exited = defer.Deferred()
    server.on_exit = lambda code: (exits.append(code), exited.callback(None))
    pid = _pid(root)
    held = children_of(pid)[0]
    os.kill(held, signal.SIGSTOP)       # it keeps the server's output pipes (and its shared memory)
    again = EmbeddedPostgres(reactor, root / "pg")
    try:
        os.kill(pid, signal.SIGKILL)
        await exited.addTimeout(10, reactor)
        assert not server.running and len(exits) == 1
        lines = (root / "pg" / "postmaster.pid").read_text().splitlines()
        assert int(lines[0]) == pid and lines[7].strip() == "ready"
        with pytest.raises(StoreError, match="pre-existing shared memory block"):
            await again.start()
        os.kill(held, signal.SIGKILL)
        held = None
        for _ in range(50):
            try:
                await again.start()
                break
            except StoreError:      # the killed process's memory is released a moment later
                await deferLater(reactor, 0.2, lambda: None)
        assert again.running and _pid(root) != pid
        assert run_sql(again.dsn, "select value from kept") == [(7,)]
    finally:
        if held is not None:
            os.kill(held, signal.SIGKILL)
        await again.stop()


def test_a_pid_file_naming_a_zombie_is_removed_unless_a_survivor_works_in_the_directory(tmp_path):
    """PostgreSQL refuses to replace a postmaster.pid whose pid still exists, and a killed
    postmaster nobody reaps stays a zombie: such a file is removed, but never while a
    process of the old server (its working directory the data directory) survives."""
    data = tmp_path / "pg"
    data.mkdir()
    zombie = subprocess.Popen(["true"])            # never waited for: a zombie once it exits
    for _ in range(100):
        if (Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) == "Z":
            break
        time.sleep(0.02)
    pid_file = data / "postmaster.pid"
    server = EmbeddedPostgres(reactor, data)
    survivor = subprocess.Popen(["sleep", "30"], cwd=data)
    try:
        pid_file.write_text(f"{zombie.pid}\n{data}\n0\n5432\n\n\n0 0\nready\n")
        server._note_stale_pid_file()
        assert pid_file.exists(), "a survivor holds the old server's memory: PostgreSQL's interlock decides"
    finally:
        survivor.kill()
        survivor.wait()
    socket_lock = server.socket_dir / ".s.PGSQL.5432.lock"
    socket_lock.parent.mkdir(parents=True, exist_ok=True)
    socket_lock.write_text(f"{zombie.pid}\n{data}\n")
    server._note_stale_pid_file()
    assert not pid_file.exists() and not socket_lock.exists()
    zombie.wait()
