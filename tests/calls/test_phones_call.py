"""
Done-means of the B2BUA: two real SIP phones (Debian's baresip) registered to different
subscribers of a real node (`twistd wevoip`) call each other through it; the callee
answers; a tone each one sends arrives at the other through the media relay, its
frequency read back from the other's recording; either side hangs up; the call's record
says who did.
"""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import defer, protocol, reactor
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue

from tests.node import Node, free_port
from tests.pg import reachable_tmpdir
from tests.store.builders import build_tree
from wevoip.store import registrations, subscribers
from wevoip.store.database import Database

pytestmark = pytest.mark.slow

PASSWORD = "correct-horse-9"
NAMESPACE = "calls-e2e.example.net"
DOMAIN = f"acme.{NAMESPACE}"
EXTRA = textwrap.dedent("""
    [sip_security]
    digest_algorithms = ["MD5"]   # baresip 1.0 gives up on any challenge it cannot answer
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

    def __init__(self, folder: Path, user: str, sip_port: int, *, source: str):
        self.folder = folder
        self.user = user
        self.ctrl_port = free_port()
        self.output = ""
        self.ended = defer.Deferred()
        (folder / "rec").mkdir(parents=True)
        rtp = free_port(2) // 2 * 2
        (folder / "config").write_text(textwrap.dedent(f"""\
            poll_method epoll
            sip_listen 127.0.0.1:{free_port(2)}
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
            snd_path {folder / "rec"}
            rtp_ports {rtp}-{rtp + 20}
            """))
        (folder / "accounts").write_text(
            f'<sip:{user}@{DOMAIN}>;auth_pass={PASSWORD};outbound="sip:127.0.0.1:{sip_port};transport=udp"'
            f";regint=600;answermode=auto;audio_codecs=PCMU\n")

    def start(self):
        self.transport = reactor.spawnProcess(self, shutil.which("baresip"),
                                              ["baresip", "-s", "-f", str(self.folder), "-n", "127.0.0.1"],
                                              env={"PATH": "/usr/bin:/bin", "HOME": str(self.folder)})

    def outReceived(self, data):  # noqa: N802
        self.output += data.decode(errors="replace")

    errReceived = outReceived

    def processEnded(self, reason):  # noqa: N802
        self.ended.callback(None)

    async def command(self, command: str, params: str = "") -> None:
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

    def recordings(self, kind: str = "dec") -> list[Path]:
        return sorted((self.folder / "rec").glob(f"*{kind}*.wav"))

    async def stop(self):
        if not self.ended.called:
            self.transport.signalProcess("TERM")
            await self.ended


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

    async def active_calls(self):
        return await self.database.fetch("select * from active_calls")

    def records(self):
        return re.findall(r"CDR (\S+) .*? (answered|busy|no answer|failed|cancelled) (\d+) by (\w+)",
                          self.node.output.text)


async def _start():
    folder = reachable_tmpdir("wevoip-test-calls-")
    node = Node(folder, sip=True)
    node.config_path.write_text(node.config_path.read_text() + EXTRA)
    node.start()
    try:
        health = await node.wait_ready()
    except AssertionError:
        await node.stop()
        raise
    database = Database(reactor, node.dsn, size=2)
    await database.connect()
    tree = await build_tree(database, NAMESPACE)

    async def bob(tx):
        await subscribers.create_subscriber(tx, tree.isp["id"], tree.tenant["id"], username="bob",
                                            password=PASSWORD, extension="101", e164="+15550100101")
    await database.transact(bob)
    return Running(node, health, database, tree, folder)


@pytest.fixture(scope="module")
def running():
    running = pytest_twisted.blockon(defer.ensureDeferred(_start()))
    yield running
    pytest_twisted.blockon(defer.ensureDeferred(running.database.close()))
    pytest_twisted.blockon(defer.ensureDeferred(running.node.stop()))
    shutil.rmtree(running.folder, ignore_errors=True)


@pytest.fixture
def phones(running, tmp_path):
    for hertz in (1000, 440):
        pytest_twisted.blockon(getProcessOutputAndValue("/usr/bin/sox", [
            "-n", "-r", "8000", "-c", "1", "-b", "16", str(tmp_path / f"{hertz}.wav"), "synth", "30", "sine",
            str(hertz)]))
    alice = Baresip(tmp_path / "alice", "alice", running.port, source=f"aufile,{tmp_path / '1000.wav'}")
    bob = Baresip(tmp_path / "bob", "bob", running.port, source=f"aufile,{tmp_path / '440.wav'}")
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
    await deferLater(reactor, 3, lambda: None)     # let the tones flow through the relay
    await (alice if hangs_up == "caller" else bob).command("hangup")

    async def ended():
        return len(running.records()) > before and not await running.active_calls()
    await until(ended, lambda: f"the call to end\n{running.node.output.text[-3000:]}")
    call_ids, disposition, status, by = running.records()[-1]
    assert (disposition, status, by) == ("answered", "200", hangs_up)
    assert abs(await frequency(bob.recordings()[-1]) - 1000) < 50      # alice's tone reached bob
    assert abs(await frequency(alice.recordings()[-1]) - 440) < 30     # and bob's reached alice
