"""
A browser's call through the real B2BUA, store and WebRTC gateway (relay forwarder in a
thread, ports on loopback), the browser made of the media package's own pieces: while the
call lasts it is listed among its ISP's, customer's and tenant's WebRTC calls and no one
else's; the browser only listens, so the record says only the callee was heard.
"""

from dataclasses import replace

import pytest
import pytest_twisted
from twisted.internet import reactor

from tests.calls.test_b2bua import answered, hang_up, make_world, until
from tests.media.phones import Phone, rtp
from tests.media.test_relay import CONFIG
from tests.media.webrtc_support import UdpBrowser, offer_signed_by
from wevoip.calls.live import webrtc_calls
from wevoip.media.relay import InProcessRelay
from wevoip.media.sdp import parse as parse_sdp
from wevoip.media.webrtc.dtls import Certificate
from wevoip.media.webrtc.gateway import WebRtcGateway


@pytest.fixture(scope="module")
def gateway():
    relay = InProcessRelay(reactor, replace(CONFIG, forwarder="thread", rtp_port_min=45300, rtp_port_max=45399))
    relay.startService()
    pytest_twisted.blockon(relay.ready)
    yield WebRtcGateway(reactor, relay)
    pytest_twisted.blockon(relay.stopService())


@pytest_twisted.ensureDeferred
async def test_a_browser_call_is_listed_to_its_owners_while_it_lasts_and_its_record_says_one_way(database, gateway):
    world = await make_world(database, gateway)
    tree, b2bua = world.tree, world.b2bua
    certificate, phone = Certificate.generate("alice's browser"), Phone()
    browser_port = None
    try:
        invite, ok = await answered(world, offer_signed_by(certificate), phone.sdp())
        assert parse_sdp(invite.body).media[0].proto == "RTP/AVP", "bob's phone is offered plain RTP"
        assert b"UDP/TLS/RTP/SAVPF" in ok.body and b"a=ice-lite" in ok.body

        isp_id, customer_id, tenant_id = tree.isp["id"], tree.customer["id"], tree.tenant["id"]
        [call] = webrtc_calls(b2bua.sessions.values(), "test-node", isp_id)
        assert (call["node"], call["call_id"], call["direction"], call["dialled"]) == ("test-node", "c1", "internal", "101")
        assert call["call_ids"] == ["c1", invite.call_id] and call["customer_id"] == customer_id
        assert (call["subscriber_id"], call["callee_subscriber_id"]) == (tree.subscriber["id"], world.bob["id"])
        assert (call["answered_at"] - call["started_at"]).total_seconds() == 2
        [leg] = call["legs"]
        assert (leg["side"], leg["ice"]["state"], leg["dtls"]["state"], leg["srtp"]["active"]) == (
            "caller", "new", "new", False)
        for scope in ({"customer_id": customer_id}, {"tenant_id": tenant_id},
                      {"customer_id": customer_id, "tenant_id": tenant_id}):
            assert len(webrtc_calls(b2bua.sessions.values(), "test-node", isp_id, **scope)) == 1, scope
        for isp, scope in ((isp_id + 1, {}), (isp_id, {"customer_id": customer_id + 1}),
                           (isp_id, {"tenant_id": tenant_id + 1})):
            assert webrtc_calls(b2bua.sessions.values(), "test-node", isp, **scope) == [], (isp, scope)

        # The browser connects and listens; bob's phone talks.
        local = b2bua.sessions[next(iter(b2bua.sessions))].media.browsers["a"].local
        far = UdpBrowser(reactor, certificate, gateway.certificate.fingerprint, ("127.0.0.1", local.port),
                         local.ice_ufrag, local.ice_pwd)
        browser_port = reactor.listenUDP(0, far, interface="127.0.0.1")
        far.check()
        await until(lambda: far.srtp is not None, "the DTLS handshake")
        relay_port = parse_sdp(invite.body).media[0].port
        for sequence in range(4):
            phone.rtp.sendto(rtp(sequence), ("127.0.0.1", relay_port))
        await until(lambda: len(far.media) == 4, "the phone's packets at the browser")
        [call] = webrtc_calls(b2bua.sessions.values(), "test-node", isp_id)
        [leg] = call["legs"]
        assert leg["ice"]["state"] == "nominated" and leg["ice"]["nominated"] == f"127.0.0.1:{far.transport.getHost().port}"
        assert leg["dtls"]["handshake_done"] and leg["srtp"]["active"] and call["one_way"]
        assert (leg["to_browser"]["packets"], leg["from_browser"]["packets"]) == (4, 0)
        assert leg["plain"]["from_relay"] == {"packets": 4, "octets": 4 * 172}

        hang_up(world, ok)
        await b2bua.settled()
        assert webrtc_calls(b2bua.sessions.values(), "test-node", isp_id) == []
        [cdr] = await database.fetch("select * from cdrs where a_call_id = 'c1'")
        assert (cdr["disposition"], cdr["media_flow"], cdr["one_way_media"]) == ("answered", "callee_only", True)
    finally:
        phone.close()
        if browser_port is not None:
            await browser_port.stopListening()
