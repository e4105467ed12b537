"""
Attacks and awkward phones against a real node (`twistd wevoip`), from many loopback
source addresses (127.0.0.x) with the small client of tests/sip/sipclient.py:

- a distributed password guess locks the user: the right password from a new address is
  refused, the user's registered phone keeps working, the ISP gets the webhook event and
  the mail, the lock outlives a restart of the node, and a new SIP password lifts it
  (issue 12 point 13); a lock made on one node holds on a second one on the same database;
- a phone whose NAT gives it a new port on every REGISTER keeps one binding (point 16);
- digest fields that are not UTF-8 get 400 and count towards the ban (point 15);
- a SHA-256 client answers SHA-256, an MD5-only one MD5, with the default offer (point 9).
"""

import shutil
import textwrap

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, threads
from twisted.internet.task import deferLater

from tests.node import Node
from tests.pg import reachable_tmpdir
from tests.sip.sipclient import Client
from tests.smtpserver import SmtpServer
from tests.store.builders import build_tree
from tests.webhook_receiver import WebhookReceiver
from wevoip.store import registrations, siplocks, subscribers, webhooks
from wevoip.store.database import Database

PASSWORD = "correct-horse-9"
NAMESPACE = "guess.example.net"
DOMAIN = f"acme.{NAMESPACE}"


SECURITY = textwrap.dedent("""
    [sip_security]
    ban_after_failures = 5
    ban_after_user_failures = 20
    requests_per_second = 500
    request_burst = 2000
""")


class Running:
    pass


async def _start():
    running = Running()
    running.folder = reachable_tmpdir("wevoip-test-guessing-")
    running.smtp = SmtpServer()
    smtp_port = running.smtp.start()
    running.receiver = WebhookReceiver()
    node = Node(running.folder, sip=True)
    node.config_path.write_text(node.config_path.read_text() + SECURITY
                                + f'[mail]\nrelay_host = "127.0.0.1"\nrelay_port = {smtp_port}\n')
    running.node = node
    health = await node.start_ready()
    running.port = Node.sip_port(health, "udp")
    running.database = Database(reactor, node.dsn, size=2)
    await running.database.connect()
    running.tree = await build_tree(running.database, NAMESPACE)
    isp = running.tree.isp["id"]

    async def users(tx):
        for name in ("bob", "carol", "dave", "erin", "frank"):
            await subscribers.create_subscriber(tx, isp, running.tree.tenant["id"], username=name, password=PASSWORD)
        return await webhooks.set_webhook(tx, isp, running.receiver.url)
    hook = await running.database.transact(users)
    running.receiver.secret = hook["secret"]
    return running


@pytest.fixture(scope="module")
def running():
    running = pytest_twisted.blockon(defer.ensureDeferred(_start()))
    yield running
    pytest_twisted.blockon(defer.ensureDeferred(running.database.close()))
    pytest_twisted.blockon(defer.ensureDeferred(running.node.stop()))
    pytest_twisted.blockon(defer.ensureDeferred(running.smtp.stop()))
    pytest_twisted.blockon(running.receiver.close())
    shutil.rmtree(running.folder, ignore_errors=True)


def _client(running, user, address, **kw) -> Client:
    return Client(running.port, user, DOMAIN, PASSWORD, address=address, **kw)


async def _register(client, **kw):
    return await threads.deferToThread(client.register, **kw)


async def _bindings(running, user):
    row = await running.database.transact(subscribers.sip_credentials, DOMAIN, user)
    return row, await running.database.transact(registrations.bindings_of, row["isp_id"], row["id"])


@pytest_twisted.ensureDeferred
async def test_a_distributed_guess_cannot_use_the_right_password_while_the_users_phone_keeps_working(running):
    phone = _client(running, "alice", "127.0.0.2")
    answer = await _register(phone)
    assert answer.response.status == 200

    guessers = [_client(running, "alice", f"127.0.0.{10 + n}") for n in range(22)]
    statuses = []
    for n, guesser in enumerate(guessers):
        answer = await _register(guesser, password=f"guess-{n:03d}-wrong")
        statuses.append(answer.response.status if answer.response else None)
        guesser.close()
    assert statuses == [401] * 19 + [None] * 3, "the user's 20th failure bans each failing source"

    event = running.receiver.events[0] if running.receiver.events else None
    if event is None:
        await running.receiver.next_event(timeout=20)
        event = running.receiver.events[0]
    assert event["event"] == "sip.user_locked"
    data = event["body"]["data"]
    assert (data["username"], data["domain"], data["failures"]) == ("alice", DOMAIN, 20)
    assert "127.0.0.10" in data["sources"]
    mail = await running.smtp.mail_to(f"ops@{NAMESPACE}")
    assert f"alice@{DOMAIN}" in mail["Subject"] and "127.0.0.10" in mail.get_content()

    thief = _client(running, "alice", "127.0.0.60")
    stolen = await _register(thief)
    assert stolen.response is None or stolen.response.status == 401, "the right password from a new address"
    refresh = await _register(phone)
    assert refresh.response.status == 200, "the user's own phone at its known address"
    row, bindings = await _bindings(running, "alice")
    sources = {b["source"].rpartition(":")[0] for b in bindings}
    assert "127.0.0.2" in sources and "127.0.0.60" not in sources
    lock = await running.database.transact(siplocks.lock_of, row["id"])
    assert lock is not None and lock["failures"] == 20
    assert "locked to its known addresses" in running.node.output.text
    assert "Traceback" not in running.node.output.text

    phone.close()
    thief.close()

    await running.database.close()
    await running.node.stop()
    health = await running.node.start_ready()
    running.port = Node.sip_port(health, "udp")
    running.database = Database(reactor, running.node.dsn, size=2)
    await running.database.connect()
    assert "1 SIP users are locked after password guessing" in running.node.output.text
    thief = _client(running, "alice", "127.0.0.70")
    stolen = await _register(thief)
    assert stolen.response.status == 401, "still locked after a restart (and this node has banned no one yet)"
    phone = _client(running, "alice", "127.0.0.2")
    assert (await _register(phone)).response.status == 200, "the phone's address is remembered across the restart"
    phone.close()
    thief.close()

    await running.database.transact(subscribers.set_sip_password, row["isp_id"], row["id"], "battery-staple-42")
    for attempt in range(10):
        await deferLater(reactor, 0.2, lambda: None)
        roaming = _client(running, "alice", f"127.0.0.{61 + attempt}")
        roaming.password = "battery-staple-42"
        answer = await _register(roaming)
        roaming.close()
        if answer.response is not None and answer.response.status == 200:
            break
    assert answer.response.status == 200, "a new password lifts the lock"


@pytest_twisted.ensureDeferred
async def test_a_lock_made_on_one_node_holds_on_another_sharing_the_database(running):
    folder = reachable_tmpdir("wevoip-test-guessing-b-")
    other = Node(folder, sip=True, name="node-b")
    other.config_path.write_text(other.config_path.read_text().replace(
        "[sip]", f'[store]\ndsn = "{running.node.dsn}"\n[sip]') + SECURITY)
    health = await other.start_ready()
    try:
        phone = _client(running, "frank", "127.0.0.4")
        assert (await _register(phone)).response.status == 200
        phone.close()
        for n in range(20):
            guesser = _client(running, "frank", f"127.0.0.{120 + n}")
            await _register(guesser, password=f"guess-{n:03d}-wrong")
            guesser.close()
        port_b = Node.sip_port(health, "udp")
        thief = Client(port_b, "frank", DOMAIN, PASSWORD, address="127.0.0.150")
        stolen = await _register(thief)
        thief.close()
        assert stolen.response.status == 401, "node B has seen no failure, yet the lock holds there"
        phone = Client(port_b, "frank", DOMAIN, PASSWORD, address="127.0.0.4")
        assert (await _register(phone)).response.status == 200, "frank's phone moves to node B"
        phone.close()
    finally:
        await other.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest_twisted.ensureDeferred
async def test_a_phone_rebound_by_its_nat_twenty_times_keeps_one_binding(running):
    """No +sip.instance; the same Call-ID; a new source port (and Contact) each time. The
    limit is 10 contacts: before the fix the 11th REGISTER got 403 Too many contacts."""
    phone = _client(running, "bob", "127.0.0.3")
    for n in range(20):
        phone.bind("127.0.0.3")
        answer = await _register(phone)
        assert answer.response is not None and answer.response.status == 200, (n, answer.response)
        assert len(answer.response.headers.get_all("Contact")) == 1
    _, bindings = await _bindings(running, "bob")
    assert [b["source"] for b in bindings] == [f"127.0.0.3:{phone.local[1]}"]
    phone.close()


@pytest_twisted.ensureDeferred
async def test_digest_fields_that_are_not_utf8_get_400_and_count_towards_a_ban(running):
    client = _client(running, "carol", "127.0.0.40")
    answers = []
    for n in range(6):
        raw = (b'Digest username="car\xffol", realm="' + DOMAIN.encode() + b'", nonce="AAAA", uri="sip:'
               + DOMAIN.encode() + b'", response="00", algorithm=MD5, qop=auth, nc=00000001, cnonce="\xfe"')
        answers.append(await threads.deferToThread(lambda: client.send(client.request(raw_authorization=raw))))
    assert [(a.status, a.reason) for a in answers[:4]] == [(400, "Bad credentials: username is not UTF-8")] * 4
    assert answers[4:] == [None, None], "the fifth failure bans the source"
    assert "Traceback" not in running.node.output.text
    client.close()


@pytest.mark.parametrize("user, address, algorithms, agent, offered, used", [
    ("dave", "127.0.0.50", ("SHA-256", "MD5"), "wevoip-test-client/1.0", ["SHA-256", "MD5"], "SHA-256"),
    ("erin", "127.0.0.51", ("MD5",), "wevoip-test-client/1.0", ["SHA-256", "MD5"], "MD5"),
    ("erin", "127.0.0.52", ("MD5",), "sipsak 0.9.8.1", ["MD5"], "MD5"),
])
@pytest_twisted.ensureDeferred
async def test_the_default_offer_gives_sha256_to_who_speaks_it_and_md5_to_who_does_not(
        running, user, address, algorithms, agent, offered, used):
    client = _client(running, user, address, algorithms=algorithms, user_agent=agent)
    challenge = await threads.deferToThread(lambda: client.send(client.request()))
    assert [v.split("algorithm=")[1].split(",")[0] for v in challenge.headers.get_all("WWW-Authenticate")] == offered
    answer = await _register(client)
    assert (answer.response.status, answer.algorithm) == (200, used)
    client.close()
