"""
The WebRTC gateway behind IMediaRelay, on the real relay (thread forwarder) and real ports:
descriptions cross in both directions and for hold, the browser leg's plain side is wired
to the relay, and every port comes back on every path. The media itself (ICE, DTLS, SRTP
with a real browser) is tested in test_chromium_leg.py and, through SIP, in
tests/web/test_phone_console.py.
"""

import socket
from dataclasses import replace as replaced

import pytest
import pytest_twisted
from twisted.internet import reactor, task
from zope.interface.verify import verifyObject

from tests.media.phones import Phone, receive, rtp
from tests.media.test_ice import check
from tests.media.test_relay import CONFIG
from tests.media.webrtc_support import CHROMIUM_ANSWER, CHROMIUM_OFFER, UdpBrowser, offer_signed_by, replace
from wevoip.interfaces import IMediaRelay, IMediaSession, MediaUnavailable
from wevoip.media.relay import InProcessRelay
from wevoip.media.relay import Flow
from wevoip.media.sdp import SdpError, parse
from wevoip.media.webrtc import stun
from wevoip.media.webrtc.dtls import Certificate
from wevoip.media.webrtc.gateway import WebRtcGateway, is_webrtc


@pytest.fixture(scope="module")
def gateway():
    relay = InProcessRelay(reactor, replaced(CONFIG, forwarder="thread", rtp_port_min=45000, rtp_port_max=45999),
                           clock=task.Clock())
    relay.startService()
    pytest_twisted.blockon(relay.ready)
    released = []
    gateway = WebRtcGateway(reactor, relay, on_released=released.append)
    gateway.released = released
    yield gateway
    pytest_twisted.blockon(relay.stopService())


@pytest.fixture
def phone():
    made = Phone()
    yield made
    made.close()


def chromium_offer(direction="sendrecv"):
    return replace(CHROMIUM_OFFER, "a=sendrecv", f"a={direction}")


async def until(predicate, seconds=3.0):
    for _ in range(int(seconds / 0.02)):
        if predicate():
            return
        await task.deferLater(reactor, 0.02, lambda: None)
    raise AssertionError("condition not reached")


@pytest_twisted.ensureDeferred
async def test_browser_calls_phone_holds_resumes_and_every_port_comes_back(gateway, phone):
    verifyObject(IMediaRelay, gateway)
    pool = gateway.relay.pool
    free = pool.available
    session = await gateway.allocate("browser-to-phone", [].append)
    verifyObject(IMediaSession, session)
    to_phone = parse(await session.offer("a", chromium_offer()))
    audio = to_phone.media[0]
    assert audio.proto == "RTP/AVP" and not is_webrtc(to_phone.serialise())
    assert [c.name for c in audio.codecs()] == ["PCMU", "PCMA", "telephone-event"]
    to_browser = parse(await session.answer("b", phone.sdp()))
    assert is_webrtc(to_browser.serialise())
    browser_audio = to_browser.media[0]
    assert browser_audio.port == session.browsers["a"].local.port
    assert "ice-lite" in to_browser.serialise().decode() and "a=setup:active" in to_browser.serialise().decode()
    assert [c.name for c in browser_audio.codecs()] == ["PCMU", "telephone-event"]

    # The browser leg's plain side talks to the relay: browser -> phone, phone -> browser leg.
    browser = session.browsers["a"]
    browser.rtp_from_browser(rtp(5))
    data, _ = receive(phone.rtp)
    assert data == rtp(5)
    phone.rtp.sendto(rtp(6), ("127.0.0.1", audio.port))
    await until(lambda: browser.rtp.received == 1)
    assert browser.leg.dropped.not_keyed == 1      # no DTLS yet: nothing is sent to the browser

    # The browser holds (re-offer sendonly), then resumes; our DTLS role is kept.
    held = parse(await session.offer("a", chromium_offer("sendonly")))
    assert held.media[0].direction == "sendonly"
    answer = (await session.answer("b", phone.sdp("a=recvonly\r\n"))).decode()
    assert "a=recvonly" in answer and "a=setup:active" in answer
    await session.offer("a", chromium_offer())
    assert "a=setup:active" in (await session.answer("b", phone.sdp())).decode()

    stats = session.stats()["a"]
    assert stats["ice"]["selected"] is None and stats["ice"]["state"] == "new"
    assert stats["plain"] == {"sent": {"packets": 1, "octets": 172}, "received": {"packets": 1, "octets": 172}}
    assert not session.one_way(), "no RTP has crossed the browser leg either way"
    await session.release()
    assert pool.available == free and "browser-to-phone" not in gateway.sessions
    assert gateway.released[-1] is session


@pytest_twisted.ensureDeferred
async def test_phone_calls_browser_and_a_plain_answer_on_a_websocket_drops_the_browser_leg(gateway, phone):
    pool = gateway.relay.pool
    free = pool.available
    session = await gateway.allocate("phone-to-browser", [].append)
    to_b = await session.offer("a", phone.sdp())
    assert not is_webrtc(to_b)
    offer = (await session.offer_to_browser("b", to_b, fork=0)).decode()
    assert "UDP/TLS/RTP/SAVPF" in offer and "a=setup:actpass" in offer and "a=ice-lite" in offer
    session.fork_answers(0, final=True)
    to_phone = parse(await session.answer("b", CHROMIUM_ANSWER))
    assert to_phone.media[0].proto == "RTP/AVP" and session.browsers["b"].configured
    # The phone holds: the browser is re-offered in WebRTC terms with the role it has.
    reoffer = (await session.offer("a", phone.sdp("a=sendonly\r\n"))).decode()
    assert "a=sendonly" in reoffer and "a=setup:passive" in reoffer
    await session.answer("b", replace(CHROMIUM_ANSWER, "a=sendrecv", "a=recvonly"))
    await session.release()
    await session.release()
    assert pool.available == free

    # A SIP phone registered over a WebSocket answers in plain RTP: no browser after all.
    plain = await gateway.allocate("sip-phone-on-a-websocket", [].append)
    to_b = await plain.offer("a", phone.sdp())
    await plain.offer_to_browser("b", to_b, fork=0)
    assert pool.available < free
    other = Phone()
    try:
        plain.fork_answers(0, final=False)      # its 183 with SDP
        answer = parse(await plain.answer("b", other.sdp()))
        assert answer.media[0].proto == "RTP/AVP" and "b" not in plain.browsers and plain.forks == {}
    finally:
        other.close()
    with pytest.raises(ValueError):
        await plain.offer_to_browser("a", to_b, fork=1)
    await plain.release()
    assert pool.available == free


async def ringing(gateway, phone, call_id, forks):
    """A phone's call anchored and offered to browser forks: the session, the pool's free
    pairs once anchored, and each fork's offer."""
    session = await gateway.allocate(call_id, [].append)
    to_b = await session.offer("a", phone.sdp())
    anchored = gateway.relay.pool.available
    offers = [(await session.offer_to_browser("b", to_b, fork=index)).decode() for index in forks]
    return session, anchored, offers


@pytest_twisted.ensureDeferred
async def test_two_browser_forks_get_a_leg_each_and_the_loser_is_released_at_the_answer(gateway, phone):
    pool = gateway.relay.pool
    free = pool.available
    session, anchored, offers = await ringing(gateway, phone, "phone-forks-to-two-tabs", (0, 1))
    first, second = session.forks[0], session.forks[1]
    assert pool.available == anchored - 4
    assert first.local.port != second.local.port and first.local.ice_ufrag != second.local.ice_ufrag
    assert first.local.ice_pwd != second.local.ice_pwd and first.local.fingerprint == second.local.fingerprint
    for offer, browser in zip(offers, (first, second)):
        assert f"a=ice-ufrag:{browser.local.ice_ufrag}" in offer and f" {browser.local.port} " in offer
    assert "b" not in session.browsers      # ringing: no fork is the call's yet

    session.fork_answers(1, final=True)
    to_phone = parse(await session.answer("b", CHROMIUM_ANSWER))
    assert session.browsers["b"] is second and second.configured and session.forks == {}
    await until(lambda: pool.available == anchored - 2)     # the first tab's leg went at the answer
    assert first._ports == []
    # The phone's media reaches the second tab's leg, and what it sends reaches the phone.
    phone.rtp.sendto(rtp(7), ("127.0.0.1", to_phone.media[0].port))
    await until(lambda: second.rtp.received == 1)
    assert first.rtp.received == 0
    second.rtp_from_browser(rtp(8))
    assert receive(phone.rtp)[0] == rtp(8)
    await session.release()
    assert pool.available == free


@pytest_twisted.ensureDeferred
async def test_a_phone_fork_winning_releases_every_browser_fork_and_early_answers_do_not(gateway, phone):
    pool = gateway.relay.pool
    free = pool.available
    session, anchored, _ = await ringing(gateway, phone, "phone-beats-two-tabs", (0, 2))
    session.fork_answers(2, final=False)    # a tab's early media: it is B for now, nothing is released
    assert session.browsers["b"] is session.forks[2] and pool.available == anchored - 4
    session.fork_answers(1, final=False)    # then a phone's
    assert "b" not in session.browsers and len(session.forks) == 2
    other = Phone()
    try:
        session.fork_answers(1, final=True)
        answer = parse(await session.answer("b", other.sdp()))
        assert answer.media[0].proto == "RTP/AVP" and session.forks == {} and "b" not in session.browsers
    finally:
        other.close()
    await until(lambda: pool.available == anchored)
    await session.release()
    assert pool.available == free

    released, _, _ = await ringing(gateway, phone, "released-while-ringing", (0, 1))
    await released.release()
    assert pool.available == free
    with pytest.raises(MediaUnavailable):
        await released.offer_to_browser("b", phone.sdp(), fork=2)


@pytest_twisted.ensureDeferred
async def test_a_browser_that_stops_checking_loses_the_call_once(gateway, phone):
    clock = task.Clock()
    timed = WebRtcGateway(reactor, gateway.relay, gateway.certificate, clock=clock, consent_timeout=5)
    lost = []
    session = await timed.allocate("tab-closed", lost.append)
    await session.offer("a", chromium_offer())
    await session.answer("b", phone.sdp())
    browser = session.browsers["a"]
    tab = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tab.bind(("127.0.0.1", 0))
    try:
        _, data = check(username=f"{browser.local.ice_ufrag}:Xq7T", password=browser.local.ice_pwd,
                              nominate=True)
        tab.sendto(data, ("127.0.0.1", browser.local.port))
        await until(lambda: browser.leg.ice.counters.answered == 1)
        reply, _ = receive(tab)
        assert stun.parse(reply).cls == stun.SUCCESS
    finally:
        tab.close()
    clock.advance(4.9)
    assert lost == []
    clock.advance(0.1)
    assert lost == ["ICE consent of the browser on leg a expired"]
    clock.advance(60)
    assert lost == ["ICE consent of the browser on leg a expired"]
    await session.release()
    assert clock.getDelayedCalls() == []


class Lost(list):
    """An `on_lost` that keeps (reason, failed_setup)."""

    def __call__(self, reason, failed_setup=False):
        self.append((reason, failed_setup))


class RefusedBrowser(UdpBrowser):
    """A browser whose handshake our side aborts: it takes the alert without complaint."""

    def failed(self, reason):
        self.failure = reason


@pytest_twisted.ensureDeferred
async def test_a_browser_whose_certificate_is_not_its_fingerprint_fails_the_call_at_once(gateway, phone,
                                                                                       browser_certificate):
    lost = Lost()
    session = await gateway.allocate("wrong-fingerprint", lost)
    await session.offer("a", offer_signed_by(Certificate.generate("someone else")))
    await session.answer("b", phone.sdp())
    local = session.browsers["a"].local
    far = RefusedBrowser(reactor, browser_certificate, gateway.certificate.fingerprint, ("127.0.0.1", local.port),
                         local.ice_ufrag, local.ice_pwd)
    port = reactor.listenUDP(0, far, interface="127.0.0.1")
    try:
        far.check()
        await until(lambda: lost)
    finally:
        await port.stopListening()
    assert lost == [("media of the browser on leg a not set up: DTLS failed: peer certificate does not match "
                     "a=fingerprint", True)]
    assert far.srtp is None and session.live_stats()["a"]["dtls"]["state"] == "failed"
    await session.release()
    assert lost[1:] == []


@pytest_twisted.ensureDeferred
async def test_a_browser_that_never_checks_fails_the_call_at_the_set_up_timeout(gateway, phone):
    clock = task.Clock()
    timed = WebRtcGateway(reactor, gateway.relay, gateway.certificate, clock=clock, setup_timeout=3)
    lost = Lost()
    session = await timed.allocate("no-ice", lost)
    to_b = await session.offer("a", phone.sdp())
    await session.offer_to_browser("b", to_b, fork=0)
    clock.advance(10)
    assert lost == [], "a ringing browser fork has no set-up clock yet"
    session.fork_answers(0, final=True)
    await session.answer("b", CHROMIUM_ANSWER)
    clock.advance(2.9)
    assert lost == []
    clock.advance(0.1)
    assert lost == [("media of the browser on leg b not set up: ICE did not complete within 3 s", True)]
    await session.release()
    assert clock.getDelayedCalls() == []


@pytest_twisted.ensureDeferred
async def test_a_browser_offer_that_cannot_be_bridged_is_an_sdp_error_and_takes_nothing(gateway):
    pool = gateway.relay.pool
    free = pool.available
    session = await gateway.allocate("bad", [].append)
    with pytest.raises(SdpError):
        await session.offer("a", replace(CHROMIUM_OFFER, "a=rtcp-mux\r\n", ""))
    await session.release()
    assert pool.available == free


@pytest.fixture(scope="module")
def browser_certificate():
    return Certificate.generate("browser")


async def browser_call(gateway, phone, certificate, call_id):
    """A browser (on a loopback socket) calls the phone; returns once its SRTP is keyed."""
    session = await gateway.allocate(call_id, [].append)
    to_phone = parse(await session.offer("a", offer_signed_by(certificate)))
    await session.answer("b", phone.sdp())
    local = session.browsers["a"].local
    far = UdpBrowser(reactor, certificate, gateway.certificate.fingerprint, ("127.0.0.1", local.port),
                     local.ice_ufrag, local.ice_pwd)
    port = reactor.listenUDP(0, far, interface="127.0.0.1")
    far.check()
    await until(lambda: far.srtp is not None)
    return session, far, port, to_phone.media[0].port


@pytest_twisted.ensureDeferred
async def test_a_browser_that_only_listens_is_one_way_live_and_in_its_flow(gateway, phone, browser_certificate):
    session, far, port, relay_port = await browser_call(gateway, phone, browser_certificate, "listening-browser")
    try:
        for sequence in range(5):
            phone.rtp.sendto(rtp(sequence), ("127.0.0.1", relay_port))
        await until(lambda: len(far.media) == 5)
        stats = session.live_stats()["a"]
        assert stats["ice"]["state"] == "nominated" and stats["ice"]["selected"] == ("127.0.0.1", port.getHost().port)
        assert stats["dtls"]["state"] == "connected" and stats["dtls"]["role"] == "client"
        assert stats["dtls"]["handshake_done"] and stats["dtls"]["cipher"]
        assert stats["srtp"]["profile"] and stats["srtp"]["sent"]["packets"] == 5
        assert stats["srtp"]["received"]["packets"] == 0
        assert stats["rtp"] == {"from_browser": 0, "to_browser": 5}
        assert stats["plain"]["received"] == {"packets": 5, "octets": 5 * 172}
        assert session.one_way()
        assert gateway.leg_stats(session.browsers["a"].local.ice_ufrag)["one_way"] is True
    finally:
        await port.stopListening()
    await session.release()
    assert session.flow() == Flow(a_to_b=0, b_to_a=5)
    assert session.live_stats() == {} and session.stats()["a"]["rtp"]["to_browser"] == 5


@pytest_twisted.ensureDeferred
async def test_a_browser_talking_both_ways_is_not_one_way(gateway, phone, browser_certificate):
    session, far, port, relay_port = await browser_call(gateway, phone, browser_certificate, "talking-browser")
    try:
        heard = []

        def both_heard():
            got = receive(phone.rtp, 0)
            if got is not None:
                heard.append(got[0])
            return len(heard) == 3 and len(far.media) == 3
        for sequence in range(3):
            far.send_rtp(rtp(sequence))
            phone.rtp.sendto(rtp(sequence, ssrc=9), ("127.0.0.1", relay_port))
        await until(both_heard)
        assert heard == [rtp(0), rtp(1), rtp(2)]
        stats = session.live_stats()["a"]
        assert stats["rtp"] == {"from_browser": 3, "to_browser": 3} and not session.one_way()
        assert stats["srtp"]["received"] == {"packets": 3, "octets": 3 * 172, "refused": 0}
        assert stats["plain"]["sent"] == {"packets": 3, "octets": 3 * 172}
    finally:
        await port.stopListening()
    await session.release()
    assert session.flow() == Flow(a_to_b=3, b_to_a=3)


@pytest_twisted.ensureDeferred
async def test_what_reached_a_browser_leg_without_keys_did_not_reach_the_browser(gateway, phone):
    session = await gateway.allocate("unkeyed-browser", [].append)
    to_phone = parse(await session.offer("a", chromium_offer()))
    await session.answer("b", phone.sdp())
    phone.rtp.sendto(rtp(1), ("127.0.0.1", to_phone.media[0].port))
    await until(lambda: session.browsers["a"].rtp.received == 1)
    await session.release()
    assert session.flow() == Flow(a_to_b=0, b_to_a=0), "the relay delivered it, the browser never got it"
