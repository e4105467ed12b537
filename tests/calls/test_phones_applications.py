"""
Call applications end to end: a real baresip registered to a real node (`twistd wevoip`)
calls a DID routed to the echo test (and the echo test's feature code, *43) and hears its
own tone back (its frequency read from the phone's recording); a DID routed to an
operator's announcement (a module dropped into the configured plugins folder, playing the
operator's WAV) plays the file and hangs up.
"""

from __future__ import annotations

import textwrap

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue

from tests.calls.test_phones_call import DOMAIN, NAMESPACE, Baresip, Running, frequency, subscriber, until
from tests.node import Node, node_for_module
from tests.pg import reachable_tmpdir
from tests.store.builders import build_tree
from wevoip.store import dids
from wevoip.store.database import Database

pytestmark = pytest.mark.slow

ECHO_DID = "+15550199000"
WELCOME_DID = "+15550199001"
OPERATOR_PLUGIN = textwrap.dedent("""
    from pathlib import Path

    from wevoip_plugins.call_applications import Announcement

    welcome = Announcement("welcome", "The operator's welcome", Path({path!r}))
""")


def extra(plugins: str) -> str:
    return textwrap.dedent(f"""
        [sip_security]
        drop_scanners = false
        [media]
        rtp_address = "127.0.0.1"
        rtp_port_min = 46200
        rtp_port_max = 46299
        [plugins]
        directories = ["{plugins}"]
        [calls]
        applications = ["echo", "announcement", "welcome"]
        feature_codes = {{ "*43" = "echo" }}
    """)


async def cdrs(running):
    return await running.database.fetch("select * from cdrs order by id")


async def _start():
    folder = reachable_tmpdir("wevoip-test-apps-")
    plugins = folder / "operator-plugins"
    plugins.mkdir()
    welcome = folder / "welcome.wav"
    await getProcessOutputAndValue("/usr/bin/sox", ["-n", "-r", "8000", "-c", "1", "-b", "16", str(welcome),
                                                    "synth", "3", "sine", "440"])
    (plugins / "operator_welcome.py").write_text(OPERATOR_PLUGIN.format(path=str(welcome)))
    node = Node(folder, sip=True)
    node.config_path.write_text(node.config_path.read_text() + extra(str(plugins)))
    health = await node.start_ready()
    database = Database(reactor, node.dsn, size=2)
    await database.connect()
    tree = await build_tree(database, NAMESPACE)

    async def more(tx):
        isp_id = tree.isp["id"]
        await dids.route_did(tx, isp_id, tree.did["id"], None, "echo", {"echo"})
        [second] = await dids.add_dids(tx, isp_id, WELCOME_DID)
        await dids.allocate_did(tx, isp_id, second["id"], tree.tenant["id"])
        await dids.route_did(tx, isp_id, second["id"], None, "welcome", {"welcome"})
    await database.transact(more)
    return Running(node, health, database, tree, folder)


@pytest.fixture(scope="module")
def running():
    yield from node_for_module(_start)


@pytest.fixture
def alice(running, tmp_path):
    pytest_twisted.blockon(getProcessOutputAndValue("/usr/bin/sox", [
        "-n", "-r", "8000", "-c", "1", "-b", "16", str(tmp_path / "1000.wav"), "synth", "30", "sine", "1000"]))
    phone = Baresip(tmp_path / "alice", "alice", subscriber("alice", running.port),
                    source=f"aufile,{tmp_path / '1000.wav'}")
    phone.start()
    pytest_twisted.blockon(defer.ensureDeferred(until(lambda: running.registered("alice"),
                                                      lambda: f"alice to register:\n{phone.output}")))
    yield phone
    pytest_twisted.blockon(defer.ensureDeferred(phone.stop()))


async def _ended(running, count):
    async def ended():
        return len(await cdrs(running)) >= count and not await running.active_calls()
    await until(ended, lambda: f"the call to end\n{running.node.output.text[-3000:]}")
    return (await cdrs(running))[count - 1]


@pytest.mark.parametrize("dialled", [ECHO_DID, "*43"])
@pytest_twisted.ensureDeferred
async def test_a_phone_calling_a_did_routed_to_the_echo_test_or_its_code_hears_its_own_tone(running, alice, dialled):
    count = len(await cdrs(running))
    await alice.command("dial", f"sip:{dialled}@{DOMAIN}")

    async def established():
        return alice.recordings() and "Call established" in alice.output
    await until(established, lambda: f"the echo test to answer\n{alice.output}\n{running.node.output.text[-3000:]}")
    await deferLater(reactor, 2, lambda: None)     # let the tone go there and back
    await alice.command("hangup")
    cdr = await _ended(running, count + 1)
    assert (cdr["direction"], cdr["disposition"], cdr["hangup_by"], cdr["sip_code"]) == (
        "internal", "answered", "caller", 200)
    assert (cdr["callee_dialled"], cdr["carrier_id"], cdr["talk_ms"] >= 2000) == (dialled, None, True)
    assert cdr["callee_e164"] == (ECHO_DID if dialled == ECHO_DID else None)
    assert abs(await frequency(alice.recordings()[-1]) - 1000) < 50     # alice heard her own tone


@pytest_twisted.ensureDeferred
async def test_a_phone_calling_an_announcement_hears_the_file_and_is_hung_up_on(running, alice):
    count = len(await cdrs(running))
    await alice.command("dial", f"sip:{WELCOME_DID}@{DOMAIN}")
    cdr = await _ended(running, count + 1)        # the application hangs up after 3 s: BYE to alice
    assert (cdr["disposition"], cdr["hangup_by"], cdr["callee_e164"]) == ("answered", "callee", WELCOME_DID)
    assert 2500 <= cdr["talk_ms"] < 10_000

    async def closed():
        return "terminated" in alice.output.lower() or "closed" in alice.output.lower()
    await until(closed, lambda: f"alice to see the BYE\n{alice.output}")
    assert abs(await frequency(alice.recordings()[-1]) - 440) < 30     # the operator's file reached alice
