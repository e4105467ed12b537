"""
Done-means of the B2BUA: two real SIP phones (Debian's baresip) registered to different
subscribers of a real node (`twistd wevoip`) call each other through it; the callee
answers; a tone each one sends arrives at the other through the media relay, its
frequency read back from the other's recording; the caller holds and resumes (re-INVITEs
through the B2BUA and the relay); either side hangs up; the call's record says who did.
Then the carrier side: an outbound call passes over a silent gateway to a real one (UDP,
then TCP), and a carrier's call to a DID reaches its subscriber.
"""

from __future__ import annotations

import datetime
import json
import re
import shutil
import socket
from decimal import Decimal
import textwrap
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import defer, protocol, reactor
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue

from tests.node import Node, free_port, node_for_module
from tests.billing.world import price_north_america, publish_csv
from tests.pg import reachable_tmpdir
from tests.store.builders import build_tree, held
from wevoip.routing.dialplan import denormalise
from wevoip.store import carriers, customers, dids, ledger, registrations, subscribers
from wevoip.store.database import Database

pytestmark = pytest.mark.slow

PASSWORD = "correct-horse-9"
NAMESPACE = "calls-e2e.example.net"
DOMAIN = f"acme.{NAMESPACE}"
EXTRA = textwrap.dedent("""
    [sip_security]
    drop_scanners = false
    [media]
    rtp_address = "127.0.0.1"
    rtp_port_min = 46000
    rtp_port_max = 46199
    [calls]
    progress_seconds = 2
""")


class Baresip(protocol.ProcessProtocol):
    """One baresip, driven through its ctrl_tcp module (netstring JSON commands)."""

    def __init__(self, folder: Path, user: str, account: str, *, source: str, host: str = "127.0.0.1",
                 sip_port: int | None = None):
        self.folder = folder
        self.user = user
        self.host = host
        self.ctrl_port = free_port()
        self.keys_port = sip_ports()
        self.output = ""
        self.ended = defer.Deferred()
        (folder / "rec").mkdir(parents=True)
        rtp = free_port(2) // 2 * 2
        (folder / "config").write_text(textwrap.dedent(f"""\
            poll_method epoll
            sip_listen {host}:{sip_port or sip_ports(host)}
            audio_player aubridge,{user}
            audio_source {source}
            audio_alert aubridge,{user}
            module_path /usr/lib/baresip/modules
            module g711.so
            module aufile.so
            module aubridge.so
            module sndfile.so
            module_app account.so
            module_app menu.so
            module_app ctrl_tcp.so
            ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}
            module cons.so
            cons_listen 127.0.0.1:{self.keys_port}
            snd_path {folder / "rec"}
            rtp_ports {rtp}-{rtp + 20}
            """))
        (folder / "accounts").write_text(account + "\n")

    def start(self):
        self.transport = reactor.spawnProcess(self, shutil.which("baresip"),
                                              ["baresip", "-s", "-f", str(self.folder), "-n", self.host],
                                              env={"PATH": "/usr/bin:/bin", "HOME": str(self.folder)})

    def outReceived(self, data):  # noqa: N802
        self.output += data.decode(errors="replace")

    errReceived = outReceived

    def processEnded(self, reason):  # noqa: N802
        self.ended.callback(None)

    async def command(self, command: str, params: str = "") -> None:
        async def ready():
            return "baresip is ready." in self.output
        await until(ready, lambda: f"{self.user}'s baresip to start:\n{self.output}")
        body = json.dumps({"command": command, "params": params, "token": command}).encode()
        done = defer.Deferred()

        class Send(protocol.Protocol):
            def connectionMade(self):  # noqa: N802
                self.transport.write(b"%d:%s," % (len(body), body))
                reactor.callLater(0.3, self.transport.loseConnection)

            def connectionLost(self, reason):  # noqa: N802
                done.callback(None)

        await protocol.ClientCreator(reactor, Send).connectTCP("127.0.0.1", self.ctrl_port)
        await done

    def key(self, key: str) -> None:
        """A key press on the phone (its console module): 'x' holds the call, 'X' resumes it."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(key.encode(), ("127.0.0.1", self.keys_port))

    def recordings(self, kind: str = "dec") -> list[Path]:
        return sorted((self.folder / "rec").glob(f"*{kind}*.wav"))

    async def stop(self):
        if not self.ended.called:
            self.transport.signalProcess("TERM")
            await self.ended


def sip_ports(host: str = "127.0.0.1") -> int:
    """A port baresip can take: it listens on UDP and TCP there and on TLS one above."""
    for _ in range(100):
        port = free_port(2)
        probes = []
        try:
            for kind, offset in ((socket.SOCK_STREAM, 0), (socket.SOCK_STREAM, 1), (socket.SOCK_DGRAM, 0)):
                probe = socket.socket(socket.AF_INET, kind)
                probes.append(probe)
                probe.bind((host, port + offset))
            return port
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
    raise AssertionError("no free SIP port for baresip")


def subscriber(user: str, sip_port: int) -> str:
    """A phone registered to its subscriber, through the node as outbound proxy."""
    return (f'<sip:{user}@{DOMAIN}>;auth_pass={PASSWORD};outbound="sip:127.0.0.1:{sip_port};transport=udp"'
            f";regint=600;answermode=auto;audio_codecs=PCMU")


async def until(predicate, what, timeout=20.0):
    for _ in range(int(timeout * 20)):
        result = await predicate()
        if result:
            return result
        await deferLater(reactor, 0.05, lambda: None)
    raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")


async def frequency(path: Path) -> float:
    """The rough frequency sox reads from a recording (its `stat` effect)."""
    out, err, code = await getProcessOutputAndValue("/usr/bin/sox", [str(path), "-n", "stat"],
                                                    env={"PATH": "/usr/bin:/bin"})
    match = re.search(rb"Rough\s+frequency:\s+(\d+)", err + out)
    assert code == 0 and match, (err + out).decode()
    return float(match.group(1))


class Running:
    def __init__(self, node, health, database, tree, folder):
        self.node, self.health, self.database, self.tree, self.folder = node, health, database, tree, folder
        self.port = Node.sip_port(health, "udp")

    async def registered(self, username):
        """The phone's own binding (the test tree gives alice one at a documentation address)."""
        row = await self.database.transact(subscribers.sip_credentials, DOMAIN, username)
        rows = await self.database.transact(registrations.bindings_of, row["isp_id"], row["id"])
        return [r for r in rows if r["source"].startswith("127.0.0.1:")]

    async def last_cdr(self):
        return (await self.database.fetch("select * from cdrs order by id desc limit 1"))[0]

    async def active_calls(self):
        return await self.database.fetch("select * from active_calls")

    def records(self):
        """The call records the node logged: (direction, disposition, status, hung up by, gateway,
        the status of each leg tried)."""
        return re.findall(r"CDR \S+ isp=\d+ customer=\d+ tenant=\d+ (\w+) .*? (answered|busy|no answer|failed|cancelled)"
                          r" (\d+) by (\w+) .*?gateway=(\w+) attempts=(\S*)", self.node.output.text)


async def _start():
    folder = reachable_tmpdir("wevoip-test-calls-")
    node = Node(folder, sip=True)
    node.config_path.write_text(node.config_path.read_text() + EXTRA)
    health = await node.start_ready()
    database = Database(reactor, node.dsn, size=2)
    await database.connect()
    tree = await build_tree(database, NAMESPACE)

    silent, answering = free_port(2), sip_ports("127.0.0.3")

    async def more(tx):
        isp_id = tree.isp["id"]
        await held(tx, isp_id, tree.tenant["id"], "+15550100101")
        bob = await subscribers.create_subscriber(tx, isp_id, tree.tenant["id"], username="bob",
                                                  password=PASSWORD, extension="101", e164="+15550100101")
        await dids.route_did(tx, isp_id, tree.did["id"], bob["id"])
        await price_north_america(tx, isp_id, tree)
        await carriers.update_gateway(tx, isp_id, tree.gateway["id"], host="127.0.0.2", port=silent, priority=10,
                                      source_ips=["127.0.0.2"])
        return await carriers.create_gateway(tx, isp_id, tree.carrier["id"], host="127.0.0.3", port=answering,
                                             priority=20, strip_digits=1, prefix="00")
    gateway = await database.transact(more)
    running = Running(node, health, database, tree, folder)
    running.gateway, running.gateway_port = gateway, answering
    return running


@pytest.fixture(scope="module")
def running():
    yield from node_for_module(_start)


def tones(folder: Path, seconds: int = 30) -> None:
    """baresip hangs up when its audio file ends: make them last longer than the call."""
    for hertz in (1000, 440):
        pytest_twisted.blockon(getProcessOutputAndValue("/usr/bin/sox", [
            "-n", "-r", "8000", "-c", "1", "-b", "16", str(folder / f"{hertz}.wav"), "synth", str(seconds), "sine",
            str(hertz)]))


@pytest.fixture
def phones(running, tmp_path):
    tones(tmp_path)
    alice = Baresip(tmp_path / "alice", "alice", subscriber("alice", running.port),
                    source=f"aufile,{tmp_path / '1000.wav'}")
    bob = Baresip(tmp_path / "bob", "bob", subscriber("bob", running.port), source=f"aufile,{tmp_path / '440.wav'}")
    alice.start()
    bob.start()
    yield alice, bob
    for phone in (alice, bob):
        pytest_twisted.blockon(defer.ensureDeferred(phone.stop()))


@pytest.mark.parametrize("hangs_up", ["caller", "callee"])
@pytest_twisted.ensureDeferred
async def test_two_phones_call_through_the_b2bua_hear_each_other_and_hang_up(running, phones, hangs_up):
    alice, bob = phones
    for phone in (alice, bob):
        await until(lambda phone=phone: running.registered(phone.user), lambda phone=phone: f"{phone.user} to register:\n{phone.output}")
    before = len(running.records())
    await alice.command("dial", f"sip:101@{DOMAIN}")
    rows = await until(running.active_calls, "the call to be admitted")
    assert rows[0]["direction"] == "internal"

    async def both_recording():
        return alice.recordings() and bob.recordings() and "Call established" in alice.output + bob.output
    await until(both_recording, lambda: f"the call to be answered\n{alice.output}\n{bob.output}\n{running.node.output.text[-3000:]}")
    await deferLater(reactor, 2, lambda: None)     # let the tones flow through the relay
    offers = bob.output.count("INVITE sip:")
    alice.key("x")                                 # hold: a re-INVITE with a=sendonly reaches bob

    async def held():
        return bob.output.count("INVITE sip:") > offers and "a=sendonly" in bob.output.split("INVITE sip:")[-1]
    await until(held, lambda: f"the hold to reach bob\n{alice.output[-3000:]}\n{bob.output[-3000:]}")
    alice.key("X")                                 # and unhold: sendrecv again

    async def resumed():
        last = bob.output.split("INVITE sip:")[-1]
        return bob.output.count("INVITE sip:") > offers + 1 and "a=sendrecv" in last
    await until(resumed, lambda: f"the resume to reach bob\n{alice.output[-3000:]}\n{bob.output[-3000:]}")
    await deferLater(reactor, 2, lambda: None)
    await (alice if hangs_up == "caller" else bob).command("hangup")

    async def ended():
        return len(running.records()) > before and not await running.active_calls()
    await until(ended, lambda: f"the call to end\n{running.node.output.text[-3000:]}")
    direction, disposition, status, by, gateway, attempts = running.records()[-1]
    assert (direction, disposition, status, by, gateway) == ("internal", "answered", "200", hangs_up, "None")
    assert attempts == "200"
    cdr = await running.last_cdr()
    assert (cdr["direction"], cdr["disposition"], cdr["hangup_by"], cdr["callee_dialled"], cdr["price"]) == (
        "internal", "answered", hangs_up, "101", 0)
    assert cdr["talk_ms"] >= 3000
    assert abs(await frequency(bob.recordings()[-1]) - 1000) < 50      # alice's tone reached bob
    assert abs(await frequency(alice.recordings()[-1]) - 440) < 30     # and bob's reached alice


@pytest.fixture
def carrier_calls(running, tmp_path):
    """alice's phone, bob's phone, the carrier's answering gateway on 127.0.0.3 (its account is
    the digits that gateway is sent), and the carrier calling in from 127.0.0.2."""
    tones(tmp_path)
    digits = denormalise("+12125550100", 1, "00")
    made = [
        Baresip(tmp_path / "alice", "alice", subscriber("alice", running.port), source=f"aufile,{tmp_path / '1000.wav'}"),
        Baresip(tmp_path / "bob", "bob", subscriber("bob", running.port), source=f"aufile,{tmp_path / '440.wav'}"),
        Baresip(tmp_path / "gateway", digits, f"<sip:{digits}@127.0.0.3>;regint=0;answermode=auto;audio_codecs=PCMU",
                source=f"aufile,{tmp_path / '440.wav'}", host="127.0.0.3", sip_port=running.gateway_port),
        Baresip(tmp_path / "carrier", "carrier",
                f'<sip:carrier@127.0.0.2>;regint=0;outbound="sip:127.0.0.1:{running.port};transport=udp"'
                f";audio_codecs=PCMU", source=f"aufile,{tmp_path / '1000.wav'}", host="127.0.0.2"),
    ]
    for phone in made:
        phone.start()
    yield made
    for phone in made:
        pytest_twisted.blockon(defer.ensureDeferred(phone.stop()))


async def _answered(running, before, *phones):
    async def established():
        return len(running.records()) >= before and all("Call established" in p.output for p in phones)
    await until(established, lambda: "the call to be answered\n" + "\n".join(p.output for p in phones))


async def _ended(running, before, timeout=20.0):
    async def ended():
        return len(running.records()) > before and not await running.active_calls()
    await until(ended, lambda: f"the call to end\n{running.node.output.text[-3000:]}", timeout)
    return running.records()[-1]


@pytest_twisted.ensureDeferred
async def test_an_outbound_call_passes_over_a_silent_gateway_to_one_that_answers_with_its_digits(
        running, carrier_calls):
    alice, bob, gateway, carrier = carrier_calls
    await until(lambda: running.registered("alice"), lambda: f"alice to register:\n{alice.output}")
    before = len(running.records())
    await alice.command("dial", "2125550100")
    await _answered(running, before, alice, gateway)
    assert f"INVITE sip:{gateway.user}@127.0.0.3:{running.gateway_port} SIP/2.0" in gateway.output
    assert "P-Asserted-Identity: <sip:+15550100100@127.0.0.1;user=phone>" in gateway.output
    [row] = await running.active_calls()
    assert (row["direction"], row["carrier_id"]) == ("outbound", running.tree.carrier["id"])
    await deferLater(reactor, 2, lambda: None)
    await alice.command("hangup")
    record = await _ended(running, before)
    # the first gateway never answered: passed over after calls.progress_seconds (a made-up 408)
    assert record == ("outbound", "answered", "200", "caller", str(running.gateway["id"]), "408,200")
    cdr = await running.last_cdr()
    assert (cdr["direction"], cdr["disposition"], cdr["hangup_by"], cdr["gateway_id"], cdr["callee_e164"]) == (
        "outbound", "answered", "caller", running.gateway["id"], "+12125550100")
    assert cdr["talk_ms"] >= 2000 and cdr["price"] == Decimal("0.01")     # one started minute
    assert abs(await frequency(gateway.recordings()[-1]) - 1000) < 50


@pytest_twisted.ensureDeferred
async def test_a_gateway_is_shown_only_a_number_the_tenant_holds(running, carrier_calls):
    """Issue 12, point 7, end to end: bob's number written by hand to one his tenant does not
    hold (as rows from before the check could be) never reaches the carrier's gateway: bob
    calls out as his tenant's pilot, +15550100100, which the tenant holds."""
    alice, bob, gateway, carrier = carrier_calls
    isp_id = running.tree.isp["id"]
    await running.database.fetch("update subscribers set e164 = '+12025550199' where isp_id = %s"
                                 " and username = 'bob' returning id", (isp_id,))
    try:
        await until(lambda: running.registered("bob"), lambda: f"bob to register:\n{bob.output}")
        before = len(running.records())
        await bob.command("dial", "2125550100")
        await _answered(running, before, bob, gateway)
        assert "P-Asserted-Identity: <sip:+15550100100@127.0.0.1;user=phone>" in gateway.output
        assert "+12025550199" not in gateway.output and "+15550100101" not in gateway.output
        await bob.command("hangup")
        await _ended(running, before)
        cdr = await running.last_cdr()
        assert (cdr["direction"], cdr["caller_e164"]) == ("outbound", "+15550100100")
    finally:
        await running.database.fetch("update subscribers set e164 = '+15550100101' where isp_id = %s"
                                     " and username = 'bob' returning id", (isp_id,))


@pytest_twisted.ensureDeferred
async def test_a_call_from_the_carrier_to_a_did_reaches_its_subscriber(running, carrier_calls):
    alice, bob, gateway, carrier = carrier_calls
    await until(lambda: running.registered("bob"), lambda: f"bob to register:\n{bob.output}")
    before = len(running.records())
    await carrier.command("dial", f"sip:+15550199000@127.0.0.1:{running.port}")
    await _answered(running, before, carrier, bob)
    await deferLater(reactor, 2, lambda: None)
    await carrier.command("hangup")
    record = await _ended(running, before)
    assert record[:4] == ("inbound", "answered", "200", "caller")
    cdr = await running.last_cdr()
    assert (cdr["direction"], cdr["disposition"], cdr["did_id"], cdr["talk_ms"] >= 2000) == (
        "inbound", "answered", running.tree.did["id"], True)
    assert abs(await frequency(bob.recordings()[-1]) - 1000) < 50


@pytest_twisted.ensureDeferred
async def test_a_gateway_over_tcp_gets_its_call_on_a_connection_the_node_opens(running, carrier_calls):
    alice, bob, gateway, carrier = carrier_calls
    isp_id = running.tree.isp["id"]
    await running.database.transact(carriers.update_gateway, isp_id, running.gateway["id"], transport="tcp")
    try:
        await until(lambda: running.registered("alice"), lambda: f"alice to register:\n{alice.output}")
        before = len(running.records())
        await alice.command("dial", "2125550100")
        await _answered(running, before, alice, gateway)
        assert "Via: SIP/2.0/TCP 127.0.0.1:" in gateway.output   # the INVITE came over TCP
        await alice.command("hangup")
        record = await _ended(running, before)
        assert record[:5] == ("outbound", "answered", "200", "caller", str(running.gateway["id"]))
    finally:
        await running.database.transact(carriers.update_gateway, isp_id, running.gateway["id"], transport="udp")


@pytest.fixture
def chicago_call(running, tmp_path):
    """alice's phone and the carrier's gateway on 127.0.0.3 answering the digits of a Chicago number."""
    tones(tmp_path, seconds=120)
    digits = denormalise("+13125550100", 1, "00")
    yield (Baresip(tmp_path / "alice", "alice", subscriber("alice", running.port),
                   source=f"aufile,{tmp_path / '1000.wav'}"),
           Baresip(tmp_path / "gateway", digits, f"<sip:{digits}@127.0.0.3>;regint=0;answermode=auto;audio_codecs=PCMU",
                   source=f"aufile,{tmp_path / '440.wav'}", host="127.0.0.3", sip_port=running.gateway_port))


@pytest_twisted.ensureDeferred
async def test_a_prepaid_call_through_a_real_carrier_is_cut_when_the_money_runs_out(running, chicago_call):
    """Issue 6's end to end: credit for one minute at 0.60 a minute billed per second (1/1);
    the call is cut within one increment of the 60th second, and the CDR and the ledger agree."""
    isp_id, customer_id = running.tree.isp["id"], running.tree.customer["id"]
    alice, gateway = chicago_call

    async def one_minute_of_credit(tx):
        deck = await tx.fetch_one("select id from rate_decks where isp_id = %s and carrier_id = %s",
                                  (isp_id, running.tree.carrier["id"]))
        await publish_csv(tx, isp_id, deck["id"], "prefix,description,cost,connection_fee,increment\n"
                                                  "1,North America,0.0100,0,60/60\n"
                                                  "1312,Chicago,0.6000,0,1/1\n",
                          at=datetime.datetime.now(datetime.timezone.utc))
        customer = await customers.get_customer(tx, isp_id, customer_id)
        await ledger.add_charge(tx, isp_id, customer_id, amount=customer["balance"] - Decimal("0.60"),
                                description="leave one minute of credit")
    await running.database.transact(one_minute_of_credit)
    for phone in (alice, gateway):
        phone.start()
    try:
        await until(lambda: running.registered("alice"), lambda: f"alice to register:\n{alice.output}")
        before = len(running.records())
        await alice.command("dial", "3125550100")
        await _answered(running, before, alice, gateway)
        record = await _ended(running, before, timeout=90.0)
    finally:
        for phone in (alice, gateway):
            await phone.stop()
        await running.database.transact(ledger.add_payment, isp_id, customer_id, amount="10.00",
                                        description="top up for the next tests")
    assert record[:4] == ("outbound", "answered", "200", "system")
    cdr = await running.last_cdr()
    assert 59_000 <= cdr["talk_ms"] <= 61_000, cdr["talk_ms"]       # within one 1-second increment
    assert cdr["price"] == Decimal("0.60") and cdr["callee_e164"] == "+13125550100"
    [charge] = await running.database.fetch("select * from ledger where cdr_id = %s", (cdr["id"],))
    assert (charge["kind"], -charge["amount"]) == ("charge", cdr["price"])      # charges are negative amounts
    assert charge["balance_after"] == 0
