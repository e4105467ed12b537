"""The whole node as an operator runs it: `twistd wevoip`, its health, its first run, SIGTERM."""

import shutil

import pytest
import pytest_twisted
from argon2 import PasswordHasher
from twisted.internet import reactor
from twisted.internet.task import deferLater

from tests.pg import reachable_tmpdir, run_sql
from tests.node import STOPPED_CLEANLY, Node, free_port, ssh_eval
from wevoip.credentials import token_digest


@pytest.fixture
def folder():
    path = reachable_tmpdir("wevoip-test-node-")
    yield path
    shutil.rmtree(path, ignore_errors=True)




@pytest_twisted.ensureDeferred
async def test_first_start_health_sigterm_and_restart_with_data_intact(folder):
    node = Node(folder)
    health = await node.start_ready()
    assert health["status"] == "ok" and health["node"] == "test-node"
    assert health["store"]["status"] == "ok" and health["store"]["embedded"] is True
    assert health["store"]["schema_version"] >= 1
    assert {(entry["service"], entry["transport"], entry["port"]) for entry in health["listeners"]} \
        >= {("web", "http", node.web_port)}
    assert "platform administrator created: username 'admin'" in node.output.text
    assert "API token: wvp_" in node.output.text
    assert f"web listening on http://127.0.0.1:{node.web_port}" in node.output.text

    run_sql(node.dsn, "insert into isps (name, namespace, currency) values ('Kept', 'kept.example.net', 'EUR')")
    assert await node.stop() == STOPPED_CLEANLY
    first_log = node.output.text
    assert "embedded PostgreSQL stopped" in first_log and "Server Shut Down." in first_log
    assert not (folder / "data" / "postgres" / "postmaster.pid").exists()

    node.start()
    try:
        await node.wait_ready()
        assert "platform administrator created" not in node.output.text
        assert run_sql(node.dsn, "select namespace from isps") == [("kept.example.net",)]
        assert run_sql(node.dsn, "select count(*) from platform_admins") == [(1,)]
    finally:
        assert await node.stop() == STOPPED_CLEANLY


@pytest_twisted.ensureDeferred
async def test_sigterm_while_starting_is_a_clean_stop_not_a_failure(folder):
    node = Node(folder)
    node.start()
    while "web listening" not in node.output.text and not node.output.ended.called:
        await deferLater(reactor, 0.05, lambda: None)
    code, health = await node.health()
    assert (code, health["status"], health["ready"]) == (503, "starting", False)
    assert await node.stop() == STOPPED_CLEANLY
    assert "cannot start" not in node.output.text and "Traceback" not in node.output.text
    assert not (folder / "data" / "postgres" / "postmaster.pid").exists()


@pytest_twisted.ensureDeferred
async def test_the_first_run_takes_the_admin_secrets_from_the_environment(folder):
    password, token = "a-long-admin-password", "t" * 40
    node = Node(folder, env={"WEVOIP_ADMIN_PASSWORD": password, "WEVOIP_ADMIN_TOKEN": token})
    node.start()
    try:
        await node.wait_ready()
        stored_hash, = run_sql(node.dsn, "select password_hash from platform_admins where username = 'admin'")[0]
        assert PasswordHasher().verify(stored_hash, password)
        digest, scopes = run_sql(node.dsn, "select token_sha256, scopes from api_tokens")[0]
        assert bytes(digest) == token_digest(token) and "admin" in scopes
    finally:
        await node.stop()
    assert password not in node.output.text and token not in node.output.text
    assert "(from WEVOIP_ADMIN_PASSWORD)" in node.output.text


@pytest_twisted.ensureDeferred
async def test_a_too_short_admin_password_stops_the_first_start(folder):
    node = Node(folder, env={"WEVOIP_ADMIN_PASSWORD": "short"})
    node.start()
    assert await node.exit_code() == 1
    assert "WEVOIP_ADMIN_PASSWORD must be at least 12 characters" in node.output.text


@pytest_twisted.ensureDeferred
async def test_a_config_error_stops_start_up_naming_the_key(folder):
    node = Node(folder, config="[web]\nhttp = ['127.0.0.1:99999']\n")
    node.start()
    assert await node.exit_code() != 0
    assert "web.http[0]: port 99999 is out of range" in node.output.text


@pytest_twisted.ensureDeferred
async def test_an_unreachable_database_stops_start_up_with_exit_1(folder):
    node = Node(folder, args=("--dsn", "host=/nonexistent dbname=wevoip user=wevoip"))
    node.start()
    assert await node.exit_code() == 1
    assert "cannot connect to PostgreSQL" in node.output.text


@pytest_twisted.ensureDeferred
async def test_a_port_in_use_stops_start_up_naming_the_key(folder):
    import socket
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        node = Node(folder, config=f"[web]\nhttp = ['127.0.0.1:{free_port()}', '127.0.0.1:{port}']\n"
                                   "[node]\ndata_dir = 'data'\n")
        node.start()
        assert await node.exit_code() != 0
        assert f"web.http[1]: cannot listen on 127.0.0.1:{port}" in node.output.text
    finally:
        taken.close()


def make_key(folder, name):
    import subprocess
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / name)], check=True)
    return folder / name


@pytest_twisted.ensureDeferred
async def test_the_manhole_takes_a_listed_key_and_refuses_another(folder):
    listed, stranger = make_key(folder, "admin_key"), make_key(folder, "stranger_key")
    (folder / "authorized_keys").write_text((folder / "admin_key.pub").read_text())
    node = Node(folder)
    node.start()
    try:
        health = await node.wait_ready()
        assert ("manhole", "ssh", node.manhole_port) in {
            (entry["service"], entry["transport"], entry["port"]) for entry in health["listeners"]}
        code, text = await ssh_eval(node.manhole_port, listed,
                                    "print('store running:', store.database.running, 6 * 7)")
        assert "store running: True 42" in text, text
        code, text = await ssh_eval(node.manhole_port, stranger, "print('should not run', 6 * 7)")
        assert code == 255 and "42" not in text
        assert "Permission denied (publickey)" in text
    finally:
        await node.stop()
    assert oct((folder / "data" / "manhole_host_key").stat().st_mode & 0o777) == "0o600"


@pytest_twisted.ensureDeferred
async def test_no_authorized_keys_file_means_no_manhole(folder):
    node = Node(folder)
    node.start()
    try:
        health = await node.wait_ready()
    finally:
        await node.stop()
    assert "manhole" not in {entry["service"] for entry in health["listeners"]}
    assert "manhole disabled" in node.output.text


@pytest_twisted.ensureDeferred
async def test_a_broken_plugin_in_a_configured_folder_stops_start_up_by_name(folder):
    extra = folder / "my_plugins"
    extra.mkdir()
    (extra / "half_done.py").write_text(
        "from twisted.plugin import IPlugin\n"
        "from zope.interface import implementer\n"
        "from wevoip.interfaces import IDialplanPreset\n"
        "@implementer(IPlugin, IDialplanPreset)\n"
        "class HalfDone:\n"
        "    name = 'half'\n"
        "half = HalfDone()\n")
    node = Node(folder)
    node.config_path.write_text(node.default_config() + "[plugins]\ndirectories = ['my_plugins']\n")
    node.start()
    assert await node.exit_code() != 0
    assert "plugin error: plugin 'half' does not provide IDialplanPreset" in node.output.text
