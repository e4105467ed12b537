import os
import shutil

import pytest
import pytest_twisted
from twisted.internet import reactor

from tests.pg import reachable_tmpdir, run_sql
from wevoip.store.embedded import EmbeddedPostgres
from wevoip.store.errors import StoreError




@pytest.fixture
def root():
    path = reachable_tmpdir("wevoip-test-embedded-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest_twisted.ensureDeferred
async def test_data_survives_a_stop_and_a_new_start(root):
    server = EmbeddedPostgres(reactor, root / "pg")
    await server.start()
    run_sql(server.dsn, "create table kept (value text)")
    run_sql(server.dsn, "insert into kept values ('before the restart')")
    await server.stop()
    assert not (root / "pg" / "postmaster.pid").exists()

    again = EmbeddedPostgres(reactor, root / "pg")
    await again.start()
    try:
        assert run_sql(again.dsn, "select value from kept") == [("before the restart",)]
    finally:
        await again.stop()


@pytest_twisted.ensureDeferred
async def test_a_server_left_by_a_killed_node_is_shut_down_and_replaced(root):
    orphan = EmbeddedPostgres(reactor, root / "pg")
    await orphan.start()
    run_sql(orphan.dsn, "create table kept (value int)")
    run_sql(orphan.dsn, "insert into kept values (42)")
    orphan._server = None  # the node died without stopping it; its server keeps running
    old_pid = int((root / "pg" / "postmaster.pid").read_text().split()[0])

    successor = EmbeddedPostgres(reactor, root / "pg")
    await successor.start()
    try:
        new_pid = int((root / "pg" / "postmaster.pid").read_text().split()[0])
        assert new_pid != old_pid
        with pytest.raises(ProcessLookupError):
            os.kill(old_pid, 0)
        assert run_sql(successor.dsn, "select value from kept") == [(42,)]
    finally:
        await successor.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to another user")
@pytest_twisted.ensureDeferred
async def test_a_data_dir_the_server_user_cannot_reach_is_named(root):
    closed = root / "closed"
    closed.mkdir(mode=0o700)
    with pytest.raises(StoreError, match="cannot enter .*closed"):
        await EmbeddedPostgres(reactor, closed / "pg").start()


def test_a_long_data_dir_gets_a_short_socket_dir(root):
    deep = root / ("d" * 90) / "pg"
    server = EmbeddedPostgres(reactor, deep)
    assert server.socket_dir != deep
    assert len(str(server.socket_dir / ".s.PGSQL.5432")) < 100
