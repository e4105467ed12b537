"""
Issue 12 point 14, end to end on a real node (`twistd wevoip`) with its embedded
PostgreSQL: the postmaster is killed with SIGKILL while the node runs. Until the database
is back, /healthz, the API and the consoles answer 503 with Retry-After and a JSON body,
and a REGISTER (sipsak, digest) gets 503 with Retry-After; the node logs the loss once,
not a traceback per request; it restarts its server (the first try fails while one of
the old server's processes still holds the shared memory, as a crashed server's backends
may) and afterwards an API write and a REGISTER succeed. And a node and its PostgreSQL
both killed leave a postmaster.pid that says "ready": the next start is clean (it waits
for the new server, which replaces the stale file itself).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import textwrap
from pathlib import Path

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue

from tests.node import Node, free_port
from tests.pg import children_of, reachable_tmpdir, run_sql
from tests.store.builders import build_tree
from wevoip.store.admins import create_api_token
from wevoip.store.database import Database

pytestmark = pytest.mark.slow

PASSWORD = "correct-horse-9"
NAMESPACE = "crash.example.net"
TOKEN = "t" * 40
MD5 = textwrap.dedent("""
    [sip_security]
    digest_algorithms = ["MD5"]
""")


def postmaster_pid(node: Node) -> int:
    return int((node.folder / "data" / "postgres" / "postmaster.pid").read_text().split()[0])


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


async def sleep(seconds: float) -> None:
    await deferLater(reactor, seconds, lambda: None)


async def until(check, seconds: float, what: str, node: Node):
    for _ in range(int(seconds * 5)):
        result = await check()
        if result:
            return result
        await sleep(0.2)
    raise AssertionError(f"{what} not within {seconds} s; log:\n{node.output.text[-4000:]}")


async def get(node: Node, path: str, token: str | None = TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await treq.get(f"http://127.0.0.1:{node.web_port}{path}", headers=headers, timeout=10)
    return response, await response.content()


async def sipsak_register(node: Node, port: int) -> tuple[int, str]:
    out, err, code = await getProcessOutputAndValue(
        "/usr/bin/sipsak", ["-U", "-C", f"sip:alice@127.0.0.1:{free_port()}", "-s",
                            f"sip:alice@127.0.0.1:{port}", "--auth-username", "alice", "-a", PASSWORD,
                            "-x", "600", "-vv"], env={"PATH": "/usr/bin:/bin"}).addTimeout(60, reactor)
    return code, out.decode(errors="replace") + err.decode(errors="replace")


def unavailable(response, body: bytes) -> dict:
    assert response.code == 503, body
    assert int(response.headers.getRawHeaders(b"retry-after")[0]) >= 1
    assert response.headers.getRawHeaders(b"content-type")[0].startswith(b"application/json")
    return json.loads(body)


@pytest_twisted.ensureDeferred
async def test_a_killed_postgres_is_answered_503_then_restarted_and_serves_again():
    folder = reachable_tmpdir("wevoip-test-pgcrash-")
    node = Node(folder, sip=True)
    node.config_path.write_text(node.config_path.read_text() + MD5)
    held = None
    try:
        health = await node.start_ready()
        port = Node.sip_port(health, "udp")
        database = Database(reactor, node.dsn, size=1)
        await database.connect()
        tree = await build_tree(database, NAMESPACE)
        await database.transact(lambda tx: create_api_token(tx, TOKEN, isp_id=tree.isp["id"]))
        await database.close()
        tenant = f"/api/v1/isps/{tree.isp['id']}/tenants/{tree.tenant['id']}"
        code, text = await sipsak_register(node, port)
        assert code == 0, text

        # One of the server's processes outlives the postmaster (stopped, it cannot notice
        # its death) and holds the shared memory: the first restarts must fail.
        pid = postmaster_pid(node)
        held = children_of(pid)[0]
        os.kill(held, signal.SIGSTOP)
        logged_before = len(node.output.text)
        os.kill(pid, signal.SIGKILL)

        async def health_unavailable():
            response, body = await get(node, "/healthz", None)
            return (response, body) if response.code != 200 else None
        response, body = await until(health_unavailable, 20, "/healthz leaving 200", node)
        report = unavailable(response, body)
        assert report["store"]["status"] == "unavailable" and report["retry_after"] >= 1
        for _ in range(20):                     # many requests, each a 503 and none a traceback
            response, body = await get(node, tenant)
            assert unavailable(response, body)["error"] == "unavailable"
        response, body = await get(node, "/login/platform", None)
        unavailable(response, body)
        code, text = await sipsak_register(node, port)
        assert code != 0 and "SIP/2.0 503" in text and "Retry-After:" in text, text


        async def restart_refused():
            response, body = await get(node, "/healthz", None)
            return json.loads(body)["store"].get("attempts", 0) >= 3
        await until(restart_refused, 20, "restarts refused while the old process lives", node)
        assert "pre-existing shared memory block" in node.output.text, node.output.text[-6000:]
        os.kill(held, signal.SIGKILL)
        held = None

        async def healthy():
            response, body = await get(node, "/healthz", None)
            return response.code == 200
        await until(healthy, 60, "the database back", node)
        response = await treq.patch(f"http://127.0.0.1:{node.web_port}{tenant}", json={"name": "After the crash"},
                                    headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert response.code == 200, await response.content()
        assert run_sql(node.dsn, "select name from tenants where id = %s", (tree.tenant["id"],)) == \
            [("After the crash",)]
        code, text = await sipsak_register(node, port)
        assert code == 0, text

        log = node.output.text[logged_before:]
        assert log.count("lost the database") == 1, log
        assert log.count("Traceback") == 0, log
        assert "the database is back after" in log
    finally:
        if held is not None:
            os.kill(held, signal.SIGKILL)
        await node.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest_twisted.ensureDeferred
async def test_a_node_starts_cleanly_over_the_pid_file_of_a_killed_postgres():
    folder = reachable_tmpdir("wevoip-test-stalepid-")
    node = Node(folder)
    try:
        await node.start_ready()
        pid = postmaster_pid(node)
        backends = children_of(pid)
        await node.kill()
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            if not any(alive(p) for p in [pid, *backends]):
                break
            await sleep(0.1)
        lines = (folder / "data" / "postgres" / "postmaster.pid").read_text().splitlines()
        assert int(lines[0]) == pid and lines[7].strip() == "ready"     # stale, and says ready

        again = Node(folder)
        await again.start_ready()
        assert f"postmaster.pid names pid {pid}, no PostgreSQL" in again.output.text
        assert postmaster_pid(again) != pid
        node = again
    finally:
        await node.stop()
        shutil.rmtree(folder, ignore_errors=True)
