"""The call-application seam on the real B2BUA, core, digest and store: calls to a feature
code or to a DID routed to a feature are answered by a real MediaEndpoint on loopback
ports, handed to an application, and end with their CDR and every port back."""

import textwrap

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock
from zope.interface import implementer

from plugins.call_applications import Announcement, Echo
from tests.calls.test_b2bua import SDP_A, Peer, _authorization, answered_row, cdrs, dial, make_world, statuses, \
    until
from tests.media.phones import Phone, rtp
from wevoip.calls.applications import Applications
from wevoip.calls.service import CallService
from wevoip.config import ConfigError, parse_config
from wevoip.interfaces import ICallApplication, ICallHandle, IDialplanPreset
from wevoip.media.endpoint import MediaEndpoint
from wevoip.media.ports import PortPool
from wevoip.media.sdp import parse as parse_sdp
from wevoip.plugins import PluginError, discover, require
from wevoip.sip.core import SipCore
from wevoip.sip.flow import FlowTable
from wevoip.sip.lifetime import Lifetimes, Timeouts
from wevoip.sip.transaction import T1
from wevoip.store import dids
from zope.interface.verify import verifyObject


@implementer(ICallApplication)
class Recorder:
    """An application that keeps its handle and does what the test says."""

    name = "recorder"
    description = "test application"

    def __init__(self, then=None):
        self.calls = []
        self.then = then

    def answer(self, call):
        self.calls.append(call)
        if self.then is not None:
            return self.then(call)
        return None


@pytest.fixture(scope="module")
def pool():
    return PortPool("127.0.0.1", 45200, 45219)


async def world_with(database, pool, *applications, codes=None):
    world = await make_world(database)
    world.b2bua.applications = Applications(
        {application.name: application for application in applications},
        lambda: MediaEndpoint(reactor, pool, "127.0.0.1", clock=world.clock), codes or {})
    return world


def ack(world, ok):
    world.alice.request("ACK", "sip:b2bua@127.0.0.1:5060", call_id=ok.call_id, to=ok.headers.get("To"),
                        from_=f"<sip:alice@{world.domain}>", cseq=world.alice.cseq)


def bye(world, ok):
    world.alice.request("BYE", "sip:b2bua@127.0.0.1:5060", call_id=ok.call_id, to=ok.headers.get("To"),
                        from_=f"<sip:alice@{world.domain}>")


async def answered(world):
    await until(lambda: any(getattr(m, "status", 0) >= 200 for m in world.wire.sent.get(world.alice.address, [])),
                "the final response")
    return [m for m in world.alice.take() if getattr(m, "status", 0) >= 200][0]


async def received(sock):
    """A datagram, waited for on the reactor (the endpoint answers there)."""
    got = []

    def ready():
        try:
            got.append(sock.recvfrom(4096)[0])
        except BlockingIOError:
            pass
        return got
    await until(ready, "a datagram")
    return got[0]


def test_the_built_in_applications_are_found_and_provide_the_interface():
    found = discover(ICallApplication)
    assert {"echo", "announcement"} <= set(found)
    assert found["echo"].description == Echo().description
    assert found["announcement"].path == Announcement().path
    assert found["announcement"].path.stat().st_size < 8000     # the bundled prompt stays small
    with pytest.raises(PluginError, match="call application plugin 'voicemail' is enabled but was not found"):
        require(found, ["echo", "voicemail"], "call application")


def test_an_operator_adds_an_application_by_dropping_a_module_into_a_folder(tmp_path):
    (tmp_path / "weather.py").write_text(textwrap.dedent("""
        from twisted.plugin import IPlugin
        from zope.interface import implementer
        from wevoip.interfaces import ICallApplication

        @implementer(IPlugin, ICallApplication)
        class Weather:
            name = "weather"
            description = "Tomorrow's weather"
            def answer(self, call):
                call.hang_up()

        weather = Weather()
    """))
    assert "weather" not in discover(ICallApplication)
    found = discover(ICallApplication, [tmp_path])
    assert found["weather"].description == "Tomorrow's weather" and "echo" in found
    (tmp_path / "broken.py").write_text(textwrap.dedent("""
        from twisted.plugin import IPlugin
        from zope.interface import implementer
        from wevoip.interfaces import ICallApplication

        @implementer(IPlugin, ICallApplication)
        class Broken:
            name = "broken"

        broken = Broken()
    """))
    with pytest.raises(PluginError, match="plugin 'broken' does not provide ICallApplication"):
        discover(ICallApplication, [tmp_path])


@pytest_twisted.ensureDeferred
async def test_a_feature_code_reaches_the_echo_test_which_returns_the_callers_audio(database, pool):
    free = pool.available
    world = await world_with(database, pool, Echo(), codes={"*43": "echo"})
    phone = Phone()
    try:
        await dial(world, "*43", body=phone.sdp().decode())
        ok = await answered(world)
        assert ok.status == 200 and ok.headers.get("Contact") == "<sip:b2bua@127.0.0.1:5060>"
        answer = parse_sdp(ok.body)
        port = answer.media[0].port
        assert answer.connection.address == "127.0.0.1" and pool.available == free - 1
        assert await world.active() == 1
        row = await answered_row(world)      # an application's answer is marked as the B2BUA's is
        assert (row["callee_dialled"], row["direction"]) == ("*43", "internal")
        ack(world, ok)
        phone.rtp.sendto(rtp(1, payload=b"\x12" * 160), ("127.0.0.1", port))
        echoed = await received(phone.rtp)
        assert echoed[12:] == b"\x12" * 160 and echoed[1] & 0x7F == 0
        bye(world, ok)
        assert statuses(world.alice.take()) == [200]
        await until(lambda: world.records, "the record")
        facts = world.records[0]
        assert (facts.record.disposition, facts.record.hung_up_by, facts.direction) == ("answered", "caller", "internal")
        assert await world.active() == 0 and pool.available == free
        [cdr] = await cdrs(world)
        assert (cdr["disposition"], cdr["sip_code"], cdr["hangup_by"], cdr["carrier_id"]) == (
            "answered", 200, "caller", None)
        assert cdr["callee_dialled"] == "*43" and cdr["answered_at"] is not None
    finally:
        phone.close()


@pytest_twisted.ensureDeferred
async def test_a_carrier_call_to_a_did_routed_to_a_feature_is_answered_and_the_application_hangs_up(
        database, pool):
    free = pool.available
    application = Recorder()
    world = await world_with(database, pool, application)
    isp_id = world.tree.isp["id"]
    await world.database.transact(dids.route_did, isp_id, world.tree.did["id"], None, "recorder:7",
                                  {"recorder"})
    carrier = Peer(world.core, world.wire, ("127.0.0.2", 5070), "carrier")
    phone = Phone()
    try:
        carrier.request("INVITE", "sip:15550199000@127.0.0.1", call_id="t1", to="<sip:15550199000@127.0.0.1>",
                        from_="<sip:+442071234567@127.0.0.2>", body=phone.sdp().decode())
        await until(lambda: any(getattr(m, "status", 0) == 200 for m in world.wire.sent.get(carrier.address, [])),
                    "the 200")
        [ok] = [m for m in carrier.take() if getattr(m, "status", 0) == 200]
        assert not application.calls, "the application waits for the ACK"
        world.clock.advance(T1)
        assert statuses(carrier.take()) == [200], "the 200 is resent until the ACK"
        carrier.request("ACK", "sip:b2bua@127.0.0.1:5060", call_id="t1", to=ok.headers.get("To"),
                        from_="<sip:+442071234567@127.0.0.2>", cseq=carrier.cseq)
        [handle] = application.calls
        assert verifyObject(ICallHandle, handle)
        assert (handle.argument, handle.called, handle.caller) == ("7", "+15550199000", "sip:+442071234567@127.0.0.2")
        digits = handle.collect_digits(count=1)
        handle.hang_up()
        [bye_request] = [m for m in carrier.take() if getattr(m, "method", None) == "BYE"]
        assert bye_request.call_id == "t1" and bye_request.to.tag == ok.headers.get("From").split("tag=")[1]
        assert await handle.ended == "callee"
        assert (await digits) == ""
        await world.b2bua.settled()
        assert await world.active() == 0 and pool.available == free
        [cdr] = await cdrs(world)
        assert (cdr["direction"], cdr["disposition"], cdr["hangup_by"], cdr["did_id"]) == (
            "inbound", "answered", "callee", world.tree.did["id"])
    finally:
        phone.close()


@pytest_twisted.ensureDeferred
async def test_dtmf_by_sip_info_reaches_the_application(database, pool):
    application = Recorder()
    world = await world_with(database, pool, application, codes={"*1": "recorder"})
    phone = Phone()
    try:
        await dial(world, "*1", body=phone.sdp().decode())
        ok = await answered(world)
        ack(world, ok)
        [handle] = application.calls
        digits = handle.collect_digits(count=2)
        for digit in "42":
            world.alice.request("INFO", "sip:b2bua@127.0.0.1:5060", call_id=ok.call_id, to=ok.headers.get("To"),
                                from_=f"<sip:alice@{world.domain}>",
                                extra="Content-Type: application/dtmf-relay\r\n",
                                body=f"Signal={digit}\r\nDuration=160\r\n")
        world.alice.request("INFO", "sip:b2bua@127.0.0.1:5060", call_id=ok.call_id, to=ok.headers.get("To"),
                            from_=f"<sip:alice@{world.domain}>", extra="Content-Type: text/plain\r\n", body="hello")
        assert await digits == "42"
        assert [m.status for m in world.alice.take()] == [200, 200, 415]
        bye(world, ok)
        assert await handle.ended == "caller"
    finally:
        phone.close()


@pytest_twisted.ensureDeferred
async def test_a_feature_no_application_serves_gets_480_and_admits_nothing(database, pool):
    world = await world_with(database, pool, Echo())
    isp_id = world.tree.isp["id"]
    # The store refuses such a route now (tests/web/test_numbers_api.py); a row written before
    # that, or by hand, still meets the call path's own check.
    await world.database.transact(lambda tx: tx.execute(
        "update dids set feature = 'voicemail:100' where isp_id = %s and id = %s", (isp_id, world.tree.did["id"])))
    await dial(world, "+15550199000")
    final = await answered(world)
    assert final.status == 480 and final.reason == "Temporarily Unavailable: no application serves 'voicemail:100'"
    assert await world.active() == 0


@pytest_twisted.ensureDeferred
async def test_an_offer_the_endpoint_cannot_answer_gets_488_and_leaves_nothing(database, pool):
    free = pool.available
    application = Recorder()
    world = await world_with(database, pool, application, codes={"*43": "recorder"})
    await dial(world, "*43", body=SDP_A.replace("RTP/AVP 0", "RTP/AVP 18"))
    final = await answered(world)
    assert final.status == 488 and final.reason.startswith("Not Acceptable Here: no audio stream")
    await world.b2bua.settled()
    assert await world.active() == 0 and pool.available == free and not application.calls
    [cdr] = await cdrs(world)
    assert (cdr["disposition"], cdr["sip_code"]) == ("failed", 488)


@pytest_twisted.ensureDeferred
async def test_without_an_ack_the_call_is_given_up_with_bye(database, pool):
    free = pool.available
    application = Recorder()
    world = await world_with(database, pool, application, codes={"*43": "recorder"})
    phone = Phone()
    try:
        await dial(world, "*43", body=phone.sdp().decode())
        ok = await answered(world)
        world.clock.pump([T1, 2 * T1, 4 * T1])
        assert statuses(world.alice.take()) == [200, 200, 200]
        world.clock.advance(64 * T1)
        assert "BYE" in statuses(world.alice.take())
        await world.b2bua.settled()
        assert await world.active() == 0 and pool.available == free and not application.calls
        assert world.records[0].record.hung_up_by == "system"
        assert ok.status == 200
    finally:
        phone.close()


@pytest_twisted.ensureDeferred
async def test_the_announcement_plays_its_file_then_hangs_up(database, pool):
    world = await world_with(database, pool, Announcement(), codes={"*44": "announcement"})
    phone = Phone()
    try:
        await dial(world, "*44", body=phone.sdp().decode())
        ok = await answered(world)
        ack(world, ok)
        packets = []

        def frames():
            world.clock.advance(0.02)
            try:
                packets.append(phone.rtp.recvfrom(4096)[0])
            except BlockingIOError:
                pass
            return "BYE" in statuses(world.wire.sent.get(world.alice.address, []))
        await until(frames, "the announcement's end")
        assert len(packets) >= 15 and all(packet[1] & 0x7F == 0 for packet in packets)
        assert len({packet[12:] for packet in packets}) > 1, "a tone, not silence"
        await world.b2bua.settled()
        assert world.records[0].record.hung_up_by == "callee"
    finally:
        phone.close()


def _call_service(tmp_path, text):

    class Sip:
        core = SipCore(Clock(), FlowTable())
        lifetimes = Lifetimes(Clock(), Timeouts())
    config = parse_config(text, tmp_path)
    return CallService(Clock(), config, None, Sip(), None, discover(IDialplanPreset),
                       applications=discover(ICallApplication))


def test_a_configured_application_that_is_not_found_stops_start_up_by_name(tmp_path):
    service = _call_service(tmp_path, "")
    assert set(service.applications.found) == {"echo", "announcement"} and service.applications.code("*43") == "echo"
    with pytest.raises(PluginError, match="call application plugin 'voicemail' is enabled but was not found"):
        _call_service(tmp_path, '[calls]\napplications = ["echo", "voicemail"]\n')
    with pytest.raises(PluginError, match="feature code '\\*44' names 'announcement', which calls.applications"):
        _call_service(tmp_path, '[calls]\napplications = ["echo"]\nfeature_codes = { "*44" = "announcement" }\n')


def test_feature_codes_are_checked_in_the_configuration(tmp_path):
    with pytest.raises(ConfigError, match="calls.feature_codes.43"):
        parse_config('[calls]\nfeature_codes = { "43" = "echo" }\n', tmp_path)
    with pytest.raises(ConfigError, match="calls.applications\\[0\\]"):
        parse_config('[calls]\napplications = ["bad name"]\n', tmp_path)



@pytest_twisted.ensureDeferred
async def test_a_call_cancelled_while_it_is_routed_is_not_answered(database, pool):
    free = pool.available
    application = Recorder()
    world = await world_with(database, pool, application, codes={"*43": "recorder"})
    alice = world.alice
    uri = f"sip:*43@{world.domain}"
    to, from_ = f"<{uri}>", f"<sip:alice@{world.domain}>"
    alice.request("INVITE", uri, call_id="c1", to=to, from_=from_, body=SDP_A)
    got = []
    await until(lambda: got.extend(alice.take()) or any(m.status == 407 for m in got), "the 407")
    challenge = next(m for m in got if m.status == 407)
    alice.request("ACK", uri, call_id="c1", to=challenge.headers.get("To"), from_=from_, cseq=alice.cseq,
                  branch=f"z9hG4bKINVITE{alice.cseq}c1")
    alice.request("INVITE", uri, call_id="c1", to=to, from_=from_, body=SDP_A,
                  extra=_authorization(challenge.headers.get("Proxy-Authenticate"), uri))
    alice.request("CANCEL", uri, call_id="c1", to=to, from_=from_, cseq=alice.cseq,
                  branch=f"z9hG4bKINVITE{alice.cseq}c1")     # while the INVITE is routed
    await until(lambda: world.records, "the record")
    assert sorted(m.status for m in alice.take()) == [100, 200, 487]     # 200 for the CANCEL
    assert world.records[0].record.disposition == "cancelled" and not application.calls
    assert await world.active() == 0 and pool.available == free
