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
