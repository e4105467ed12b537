"""
Two real nodes on one database: bob's baresip registers over TCP (then TLS) to node A; alice's
over UDP to node B. alice calls bob: node B has no connection to bob, so its INVITE goes to
node A with a flow token in its Route, and node A forwards it over bob's connection
(sip/edge.py). bob answers, each tone is read back from the other's recording, and either
side's BYE (and alice's hold and resume) pass through node A.
"""

from __future__ import annotations

import shutil

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.task import deferLater

from tests.calls.test_phones_call import DOMAIN, EXTRA, NAMESPACE, PASSWORD, Baresip, frequency, tones, until
from tests.node import Node
from tests.pg import reachable_tmpdir
from tests.store.builders import build_tree, held
from wevoip.store import registrations, subscribers
from wevoip.store.database import Database

pytestmark = pytest.mark.slow


class Nodes:
    def __init__(self, a, b, health_a, health_b, database, folders):
        self.a, self.b, self.database, self.folders = a, b, database, folders
        self.port_a = {t: Node.sip_port(health_a, t) for t in ("udp", "tcp", "tls")}
        self.port_b = Node.sip_port(health_b, "udp")

    async def binding(self, username, transport):
        row = await self.database.transact(subscribers.sip_credentials, DOMAIN, username)
        rows = await self.database.transact(registrations.bindings_of, row["isp_id"], row["id"])
        return [r for r in rows if r["transport"] == transport and r["source"].startswith("127.0.0.1:")]

    async def cdrs(self):
        return await self.database.fetch("select * from cdrs order by id")

    async def active_calls(self):
        return await self.database.fetch("select * from active_calls")


async def _start():
    folder_a, folder_b = reachable_tmpdir("wevoip-test-node-a-"), reachable_tmpdir("wevoip-test-node-b-")
    a = Node(folder_a, sip=True, name="node-a")
    a.config_path.write_text(a.config_path.read_text() + EXTRA)
    health_a = await a.start_ready()
    b = Node(folder_b, sip=True, name="node-b")
    b.config_path.write_text(b.config_path.read_text().replace("[sip]", f'[store]\ndsn = "{a.dsn}"\n[sip]')
                             + EXTRA.replace("46000", "46200").replace("46199", "46399"))
    try:
        health_b = await b.start_ready()
    except AssertionError:
        await a.stop()
        raise
    database = Database(reactor, a.dsn, size=2)
    await database.connect()
    tree = await build_tree(database, NAMESPACE)

    async def bob(tx):
        await held(tx, tree.isp["id"], tree.tenant["id"], "+15550100101")
        return await subscribers.create_subscriber(tx, tree.isp["id"], tree.tenant["id"], username="bob",
                                                   password=PASSWORD, extension="101", e164="+15550100101")
    await database.transact(bob)
    return Nodes(a, b, health_a, health_b, database, (folder_a, folder_b))


@pytest.fixture(scope="module")
def nodes():
    running = pytest_twisted.blockon(defer.ensureDeferred(_start()))
    yield running
    pytest_twisted.blockon(defer.ensureDeferred(running.database.close()))
    for node in (running.b, running.a):
        pytest_twisted.blockon(defer.ensureDeferred(node.stop()))
    for folder in running.folders:
        shutil.rmtree(folder, ignore_errors=True)


def account(user: str, port: int, transport: str) -> str:
    return (f"<sip:{user}@{DOMAIN};transport={transport}>;auth_pass={PASSWORD};"
            f'outbound="sip:127.0.0.1:{port};transport={transport}";regint=600;answermode=auto;audio_codecs=PCMU')


@pytest.fixture
def phones(nodes, tmp_path, request):
    transport = request.param
    tones(tmp_path)
    alice = Baresip(tmp_path / "alice", "alice", account("alice", nodes.port_b, "udp"),
                    source=f"aufile,{tmp_path / '1000.wav'}")
    bob = Baresip(tmp_path / "bob", "bob", account("bob", nodes.port_a[transport], transport),
                  source=f"aufile,{tmp_path / '440.wav'}")
    if transport == "tls":
        (tmp_path / "bob" / "config").write_text((tmp_path / "bob" / "config").read_text() + "sip_verify_server no\n")
    bob.start()
    alice.start()
    yield transport, alice, bob
    for phone in (alice, bob):
        pytest_twisted.blockon(defer.ensureDeferred(phone.stop()))


@pytest.mark.parametrize("phones, hangs_up", [("tcp", "caller"), ("tcp", "callee"), ("tls", "callee")],
                         indirect=["phones"])
@pytest_twisted.ensureDeferred
async def test_a_phone_on_another_nodes_connection_is_called_through_that_node(nodes, phones, hangs_up):
    transport, alice, bob = phones
    [bound] = await until(lambda: nodes.binding("bob", transport), lambda: f"bob to register:\n{bob.output}")
    assert bound["node"] == "node-a"
    await until(lambda: nodes.binding("alice", "udp"), lambda: f"alice to register:\n{alice.output}")
    before = len(await nodes.cdrs())
    await alice.command("dial", f"sip:101@{DOMAIN}")

    async def both_recording():
        return alice.recordings() and bob.recordings() and "Call established" in alice.output + bob.output
    await until(both_recording, lambda: f"the call to be answered\n{alice.output}\n{bob.output}\n"
                                        f"{nodes.b.output.text[-3000:]}\n{nodes.a.output.text[-3000:]}")
    [row] = await nodes.active_calls()
    assert (row["node"], row["direction"]) == ("node-b", "internal")      # the call is node B's
    invite = bob.output[bob.output.index("INVITE sip:"):]
    assert f"Via: SIP/2.0/{transport.upper()} 127.0.0.1:{nodes.port_a[transport]}" in invite   # over bob's connection
    assert "Record-Route: <sip:wvf1." in invite                         # node A stays on the path
    await deferLater(reactor, 2, lambda: None)     # let the tones flow through node B's relay
    offers = bob.output.count("INVITE sip:")
    alice.key("x")                                 # hold: node B's re-INVITE reaches bob through node A

    async def held():
        return bob.output.count("INVITE sip:") > offers and "a=sendonly" in bob.output.split("INVITE sip:")[-1]
    await until(held, lambda: f"the hold to reach bob\n{alice.output[-3000:]}\n{bob.output[-3000:]}")
    alice.key("X")

    async def resumed():
        return bob.output.count("INVITE sip:") > offers + 1 and "a=sendrecv" in bob.output.split("INVITE sip:")[-1]
    await until(resumed, lambda: f"the resume to reach bob\n{alice.output[-3000:]}\n{bob.output[-3000:]}")
    await (alice if hangs_up == "caller" else bob).command("hangup")

    async def ended():
        return len(await nodes.cdrs()) > before and not await nodes.active_calls()
    await until(ended, lambda: f"the call to end\n{nodes.b.output.text[-3000:]}\n{nodes.a.output.text[-3000:]}")
    other = bob if hangs_up == "caller" else alice

    async def bye_reached():
        return "BYE sip:" in other.output
    await until(bye_reached, lambda: f"the BYE to reach {other.user}\n{other.output[-3000:]}")
    cdr = (await nodes.cdrs())[-1]
    assert (cdr["node"], cdr["disposition"], cdr["hangup_by"], cdr["callee_dialled"]) == (
        "node-b", "answered", hangs_up, "101")
    assert cdr["talk_ms"] >= 2000
    assert abs(await frequency(bob.recordings()[-1]) - 1000) < 50      # alice's tone reached bob
    assert abs(await frequency(alice.recordings()[-1]) - 440) < 30     # and bob's reached alice
