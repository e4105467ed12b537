"""
Real phones register to a real node (`twistd wevoip`) with digest authentication: Debian's
sipsak and baresip, PyPI's pyVoIP; and the attackers' tools, PyPI's sipvicious, find no
extension (svwar) and get banned before the password (svcrack).
"""

import shutil
import socket
import sys
import textwrap

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue

from tests.node import Node, free_port, ssh_eval
from tests.pg import reachable_tmpdir
from tests.store.builders import build_tree
from wevoip.store import registrations, subscribers
from wevoip.store.database import Database

PASSWORD = "correct-horse-9"
NAMESPACE = "phones.example.net"
DOMAIN = f"acme.{NAMESPACE}"
SECURITY = textwrap.dedent("""
    [sip_security]
    ban_after_failures = 5
    ban_seconds = 600
    drop_scanners = false
    requests_per_second = 500
    request_burst = 2000
""")


def _key(folder):
    import subprocess
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / "admin_key")], check=True)
    (folder / "authorized_keys").write_text((folder / "admin_key.pub").read_text())
    return folder / "admin_key"


class Running:
    def __init__(self, node, health, database, tree):
        self.node, self.health, self.database, self.tree = node, health, database, tree
        self.port = {t: Node.sip_port(health, t) for t in ("udp", "tcp", "tls")}

    async def contacts(self, username):
        row = await self.database.transact(subscribers.sip_credentials, DOMAIN, username)
        rows = await self.database.transact(registrations.bindings_of, row["isp_id"], row["id"])
        return rows

    async def wait_contact(self, username, transport, present=True, timeout=20.0):
        for _ in range(int(timeout * 10)):
            rows = await self.contacts(username)
            if any(r["transport"] == transport for r in rows) == present:
                return rows
            await deferLater(reactor, 0.1, lambda: None)
        raise AssertionError(f"{username} over {transport}: present={present} not reached; "
                             f"log:\n{self.node.output.text[-3000:]}")


async def _start():
    folder = reachable_tmpdir("wevoip-test-phones-")
    key = _key(folder)
    node = Node(folder, sip=True)
    node.config_path.write_text(node.config_path.read_text() + SECURITY)
    health = await node.start_ready()
    database = Database(reactor, node.dsn, size=2)
    await database.connect()
    tree = await build_tree(database, NAMESPACE)

    async def users(tx):
        for name in ("bob", "carol", "dave", "erin", "frank", "101"):
            await subscribers.create_subscriber(tx, tree.isp["id"], tree.tenant["id"], username=name,
                                                password=PASSWORD)
    await database.transact(users)
    running = Running(node, health, database, tree)
    running.folder, running.key = folder, key
    return running


PYVOIP = """
import sys, time
from pyVoIP.VoIP import VoIPPhone, PhoneStatus
server_port, sip_port, user, password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
phone = VoIPPhone("127.0.0.1", server_port, user, password, myIP="127.0.0.1", sipPort=sip_port,
                  rtpPortLow=30000, rtpPortHigh=30100)
phone.start()
for _ in range(100):
    if phone.get_status() == PhoneStatus.REGISTERED:
        print("REGISTERED", flush=True)
        break
    time.sleep(0.1)
time.sleep(3)
phone.stop()
print("STOPPED", phone.get_status(), flush=True)
"""


@pytest.fixture(scope="module")
def running():
    running = pytest_twisted.blockon(defer.ensureDeferred(_start()))
    yield running
    pytest_twisted.blockon(defer.ensureDeferred(running.database.close()))
    pytest_twisted.blockon(defer.ensureDeferred(running.node.stop()))
    shutil.rmtree(running.folder, ignore_errors=True)


async def run(argv, timeout=60, **kw):
    out, err, code = await getProcessOutputAndValue(argv[0], argv[1:], env={"PATH": "/usr/bin:/bin"},
                                                    **kw).addTimeout(timeout, reactor)
    return out.decode(errors="replace") + err.decode(errors="replace"), code


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest_twisted.ensureDeferred
async def test_sipsak_registers_with_digest(running, transport):
    """With the default digest offer (issue 12 point 9: it used to fail with "unsupported
    authentication algorithm"). sipsak resolves the domain of -s itself (no DNS here), so it registers to the bare
    address: the tenant comes from the one tenant with that username (rule 3). Its TLS
    (0.9.8.1 as Debian builds it) gets no answer through even a plain handshake, so TLS
    is left to baresip."""
    port = running.port[transport]
    contact = f"sip:alice@127.0.0.1:{free_port()}"
    text, code = await run(["/usr/bin/sipsak", "-U", "-C", contact, "-s", f"sip:alice@127.0.0.1:{port}",
                            "--transport", transport, "--auth-username", "alice", "-a", PASSWORD, "-x", "600",
                            "-vv"])
    assert code == 0, text
    rows = await running.wait_contact("alice", transport)
    [row] = [r for r in rows if r["contact"] == contact]
    assert row["source"].startswith("127.0.0.1:") and row["node"] == "test-node"


@pytest_twisted.ensureDeferred
async def test_sipsak_with_a_wrong_password_is_refused(running):
    text, code = await run(["/usr/bin/sipsak", "-U", "-C", f"sip:carol@127.0.0.1:{free_port()}",
                            "-s", f"sip:carol@127.0.0.1:{running.port['udp']}",
                            "--auth-username", "carol", "-a", "not-the-password", "-x", "600", "-vv"])
    assert code != 0 and "401" in text
    assert await running.contacts("carol") == []


def _baresip_dir(running, user, transport):
    folder = running.folder / f"baresip-{user}-{transport}"
    folder.mkdir(exist_ok=True)
    (folder / "config").write_text(
        "poll_method epoll\nsip_listen 127.0.0.1:0\nmodule_path /usr/lib/baresip/modules\n"
        "module g711.so\nmodule account.so\n")
    (folder / "accounts").write_text(
        f"<sip:{user}@{DOMAIN};transport={transport}>;auth_pass={PASSWORD};"
        f'outbound="sip:127.0.0.1:{running.port[transport]};transport={transport}";regint=600\n')
    return folder


@pytest.mark.parametrize("user, transport", [("bob", "udp"), ("dave", "tcp"), ("erin", "tls")])
@pytest_twisted.ensureDeferred
async def test_baresip_registers_to_the_domain_with_digest(running, user, transport):
    """baresip names the tenant's domain and reaches the node as its outbound proxy."""
    folder = _baresip_dir(running, user, transport)
    phone = defer.ensureDeferred(run(["/usr/bin/baresip", "-f", str(folder), "-t", "8", "-s"], timeout=30))
    try:
        rows = await running.wait_contact(user, transport)
    except AssertionError as error:
        text, _ = await phone
        raise AssertionError(f"{str(error)[:200]}\nbaresip said:\n{text}") from None
    text, _ = await phone
    assert any(r["user_agent"].startswith("baresip") for r in rows), text
    assert rows[0]["source"].startswith("127.0.0.1:")


@pytest_twisted.ensureDeferred
async def test_pyvoip_registers_over_udp_and_unregisters_on_stop(running):
    """pyVoIP 1.6 speaks UDP only and names the server by address (rule 3 again); it
    answers with RFC 2069 digest (no qop), so each of its nonces is good once."""
    phone = defer.ensureDeferred(run([sys.executable, "-c", PYVOIP, str(running.port["udp"]),
                                      str(free_port(socket.SOCK_DGRAM)), "frank", PASSWORD], timeout=60))
    try:
        rows = await running.wait_contact("frank", "udp")
    except AssertionError as error:
        text, _ = await phone
        raise AssertionError(f"{str(error)[:200]}\npyVoIP said:\n{text}") from None
    assert rows[0]["user_agent"].startswith("pyVoIP")
    text, code = await phone
    assert code == 0 and "REGISTERED" in text, text
    await running.wait_contact("frank", "udp", present=False)


def _sipvicious(tool):
    return str(__import__("pathlib").Path(sys.executable).parent / f"sipvicious_{tool}")


@pytest_twisted.ensureDeferred
async def test_svwar_finds_no_extension(running):
    """Users 101 and alice exist; the scan gets the same challenge for every name."""
    wordlist = running.folder / "names.txt"
    wordlist.write_text("\n".join(["admin", "alice", "bob", "100", "101", "102", "test"]) + "\n")
    text, code = await run([_sipvicious("svwar"), "--force", "-e100-120", "-p", str(running.port["udp"]),
                            "-m", "REGISTER", "127.0.0.1"], timeout=120)
    assert "found nothing" in text.lower(), text
    text, code = await run([_sipvicious("svwar"), "--force", "-d", str(wordlist), "-p",
                            str(running.port["udp"]), "-m", "REGISTER", "127.0.0.1"], timeout=120)
    assert "found nothing" in text.lower(), text
    assert not running.node.output.text.count("Traceback"), running.node.output.text[-2000:]


@pytest_twisted.ensureDeferred
async def test_svcrack_is_banned_before_it_finds_the_password(running):
    wordlist = running.folder / "passwords.txt"
    guesses = [f"guess-{n:02d}-wrong" for n in range(30)] + [PASSWORD]
    wordlist.write_text("\n".join(guesses) + "\n")
    text, code = await run([_sipvicious("svcrack"), "-u", "101", "-d", str(wordlist), "-p",
                            str(running.port["udp"]), "--maximumtime", "20", "127.0.0.1"], timeout=120)
    assert PASSWORD not in text, text
    code, shown = await ssh_eval(running.node.manhole_port, running.key,
                                 "print('BANS', [b['address'] for b in sip_defence.bans()])")
    assert "BANS ['127.0.0.1']" in shown, shown
    assert await running.contacts("101") == []
    code, shown = await ssh_eval(running.node.manhole_port, running.key, "print('CLEARED', sip_defence.clear())")
    assert "CLEARED 1" in shown, shown
    wordlist.write_text(PASSWORD + "\n")
    text, code = await run([_sipvicious("svcrack"), "-u", "101", "-d", str(wordlist), "-p",
                            str(running.port["udp"]), "--maximumtime", "10", "127.0.0.1"], timeout=60)
    assert PASSWORD in text, "the control run (password first, no ban) should crack it:\n" + text
