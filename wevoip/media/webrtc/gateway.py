"""
The WebRTC gateway in the call path: an `IMediaRelay` wrapping the plain relay.

The B2BUA anchors every call in a relay and never learns that one side is a browser. This
relay passes plain descriptions to the wrapped one (`InProcessRelay`) untouched; a leg that
speaks WebRTC (its offer or answer is DTLS-SRTP, or the B2BUA asked for an offer for a
browser with `offer_to_browser`) is terminated here in a `BrowserLeg` (ICE-lite, DTLS-SRTP,
Opus when the browser has no G.711) on a port of its own, and the leg's plain side is a
second port pair in the reactor that talks RTP with the wrapped relay's port facing that
leg, as a phone would. So the plain relay latches, watches for silence and counts exactly
as for two phones, and a call between two browsers is two gateways back to back.

    browser offers:   browser_offer_to_plain -> relay.offer   ... relay.answer -> plain_answer_to_browser
    browser answers:  relay.offer -> plain_offer_to_browser   ... browser_answer_to_plain -> relay.answer

Ports of both kinds come from the relay's pool and go back when the session is released,
whatever way the call ends. A call that forks to several browsers (one subscriber's tabs
and devices) gives each fork a browser leg of its own (own port and ICE credentials; the
node's one DTLS certificate); the fork whose answer the B2BUA takes becomes the call's B
leg and the others are released at its final answer, as is every browser fork when a
phone's fork wins.

A browser leg whose ICE consent stays lost (RFC 7675: no good check for the consent
timeout, because the tab was closed or its network went) reports the call's media lost,
through the `on_lost` the B2BUA gave `allocate`, once; the B2BUA then ends the call. A
browser leg whose media never came up (DTLS failed, say on a wrong `a=fingerprint`, or ICE
and DTLS not done within the set-up timeout) reports it the same way with
`failed_setup=True`: the call ends at once and is not billed.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet import defer
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from zope.interface import implementer

from wevoip.interfaces import IMediaRelay, IMediaSession, MediaUnavailable
from wevoip.media.relay import Flow, InProcessRelay, RelaySession
from wevoip.media.sdp import SessionDescription
from wevoip.media.webrtc.dtls import Certificate
from wevoip.media.webrtc.ice import CONSENT_TIMEOUT, new_credentials
from wevoip.media.webrtc.leg import SETUP_TIMEOUT, BrowserLeg, BrowserLegProtocol
from wevoip.media.webrtc.translate import (WEBRTC_PROTOS, BrowserOffer, OriginCounter, PlainLocal, PlainOffer,
                                           WebRtcLocal, browser_answer_to_plain, browser_offer_to_plain,
                                           plain_answer_to_browser, plain_offer_to_browser)

LEGS = ("a", "b")

log = Logger(namespace="wevoip.media.webrtc")


def is_webrtc(sdp: bytes) -> bool:
    """A description whose first audio stream is DTLS-SRTP: a browser's."""
    description = SessionDescription.parse(sdp)
    audio = next((m for m in description.media if m.media == "audio"), None)
    return audio is not None and audio.proto.upper() in WEBRTC_PROTOS


def _other(leg: str) -> str:
    if leg not in LEGS:
        raise ValueError(f"a leg is 'a' or 'b', not {leg!r}")
    return "b" if leg == "a" else "a"


class _PlainPort(DatagramProtocol):
    """The browser leg's plain side: RTP (or RTCP) to and from the relay's port facing it."""

    def __init__(self, deliver: Callable[[bytes], None]):
        self.deliver = deliver
        self.destination: tuple[str, int] | None = None
        self.received = self.sent = self.received_octets = self.sent_octets = 0

    def datagramReceived(self, data: bytes, address) -> None:  # noqa: N802 (Twisted's name)
        if (address[0], address[1]) == self.destination:
            self.received += 1
            self.received_octets += len(data)
            self.deliver(data)

    def write(self, data: bytes) -> None:
        if self.transport is not None and self.destination is not None:
            self.sent += 1
            self.sent_octets += len(data)
            self.transport.write(data, self.destination)

    def counters(self) -> dict:
        return {"sent": {"packets": self.sent, "octets": self.sent_octets},
                "received": {"packets": self.received, "octets": self.received_octets}}


class _Browser:
    """One browser leg: its ICE/DTLS port, its plain port pair, and the offer in flight."""

    def __init__(self, gateway: WebRtcGateway, on_consent_lost: Callable[[_Browser], None],
                 on_failed: Callable[[_Browser, str, bool], None]):
        self.gateway = gateway
        pool = gateway.relay.pool
        self._taken: list[tuple[int, Any, Any]] = []
        self._ports: list[Any] = []
        try:
            self._taken.append(pool.take())
            self._taken.append(pool.take())
        except MediaUnavailable:
            self.close()
            raise
        (browser_port, browser_rtp, _), (plain_port, plain_rtp, plain_rtcp) = self._taken
        ufrag, pwd = new_credentials()
        self.rtp = _PlainPort(lambda packet: self.leg.rtp_to_browser(packet))
        self.rtcp = _PlainPort(lambda packet: self.leg.rtcp_to_browser(packet))
        self.protocol = BrowserLegProtocol(
            lambda send: BrowserLeg(gateway.clock, gateway.certificate, ufrag, pwd, self, send,
                                    gateway.consent_timeout, lambda: on_consent_lost(self),
                                    gateway.setup_timeout, lambda reason, keyed: on_failed(self, reason, keyed)))
        reactor, family = gateway.reactor, pool.family
        for sock, protocol in ((browser_rtp, self.protocol), (plain_rtp, self.rtp), (plain_rtcp, self.rtcp)):
            sock.setblocking(False)
            self._ports.append(reactor.adoptDatagramPort(sock.fileno(), family, protocol))
        self.local = WebRtcLocal(gateway.relay.advertised_address, browser_port, ufrag, pwd,
                                 gateway.certificate.fingerprint)
        self.plain = PlainLocal(pool.address, plain_port)
        self.origin_plain, self.origin_browser = OriginCounter(), OriginCounter()
        self.pending: BrowserOffer | PlainOffer | None = None
        self.configured = False

    @property
    def leg(self) -> BrowserLeg:
        return self.protocol.leg

    @property
    def dtls_client(self) -> bool | None:
        dtls = self.leg.dtls
        return dtls.is_client if (dtls is not None and self.configured) else None

    def point_at(self, relay_port: int) -> None:
        """The relay's pair facing this leg is where its plain side sends."""
        address = self.gateway.relay.pool.address
        self.rtp.destination, self.rtcp.destination = (address, relay_port), (address, relay_port + 1)

    # The leg's PlainSide.

    def rtp_from_browser(self, packet: bytes) -> None:
        self.rtp.write(packet)

    def rtcp_from_browser(self, packet: bytes) -> None:
        self.rtcp.write(packet)

    def configure(self, answered) -> None:
        self.leg.configure(answered.transport, answered.dtls_client, answered.plan)
        self.configured = True
        self.pending = None

    def stats(self) -> dict:
        stats = self.leg.stats()
        stats["plain"] = self.rtp.counters()
        stats["port"] = self.local.port
        return stats

    def close(self) -> defer.Deferred:
        """Stop the reactor's ports and give every pair back to the pool."""
        stopped = [defer.maybeDeferred(port.stopListening) for port in self._ports]
        self._ports = []
        taken, self._taken = self._taken, []

        def give_back(_):
            for port, rtp, rtcp in taken:
                rtp.close()
                rtcp.close()
                self.gateway.relay.pool.give_back(port)
        return defer.gatherResults(stopped).addCallback(give_back)


@implementer(IMediaSession)
class GatewaySession:
    def __init__(self, gateway: WebRtcGateway, inner: RelaySession, on_lost: Callable[..., None]):
        self.gateway = gateway
        self.inner = inner
        self.call_id = inner.call_id
        self.on_lost = on_lost
        self.browsers: dict[str, _Browser] = {}
        self.forks: dict[int, _Browser] = {}     # B forks offered to browsers, until the final answer
        self._lost = False
        self.last_stats: dict[str, dict] = {}
        self._closing: list[defer.Deferred] = []
        self._released = False
        self._at_release: dict[str, dict] = {}

    def offer(self, leg: str, sdp: bytes) -> defer.Deferred:
        return defer.Deferred.fromCoroutine(self._offer(leg, sdp))

    def answer(self, leg: str, sdp: bytes) -> defer.Deferred:
        return defer.Deferred.fromCoroutine(self._answer(leg, sdp))

    def offer_to_browser(self, leg: str, sdp: bytes, fork: int) -> defer.Deferred:
        """The offer B fork `fork` is to get (as the relay rewrote it), for a browser: in
        WebRTC's terms, on a browser leg of the fork's own (several may ring at once)."""
        if leg != "b":
            return defer.fail(ValueError(f"only B legs fork, not {leg!r}"))
        return defer.maybeDeferred(self._to_fork_offer, fork, sdp)

    def fork_answers(self, fork: int, final: bool) -> None:
        """The answer about to come for B is B fork `fork`'s: its browser leg (when it was
        offered one) becomes the call's; at the final answer the other forks' legs go."""
        chosen = self.forks.get(fork)
        if chosen is not None:
            self.browsers["b"] = chosen
        elif self.browsers.get("b") in self.forks.values():
            del self.browsers["b"]       # a phone's fork answers after a browser's early answer
        if final:
            for browser in self.forks.values():
                if browser is not chosen:
                    self._closing.append(browser.close())
            self.forks.clear()

    async def _offer(self, leg: str, sdp: bytes) -> bytes:
        other = _other(leg)
        browser = self.browsers.get(leg)
        if browser is not None or is_webrtc(sdp):
            browser = browser or self._browser(leg)
            sdp, browser.pending = browser_offer_to_plain(sdp, browser.plain, browser.origin_plain)
        rewritten = await self.inner.offer(leg, sdp)
        self._point(leg)
        if other in self.browsers:
            return self._offer_for(self.browsers[other], rewritten)
        return rewritten

    async def _answer(self, leg: str, sdp: bytes) -> bytes:
        other = _other(leg)
        browser = self.browsers.get(leg)
        if isinstance(getattr(browser, "pending", None), PlainOffer):
            if is_webrtc(sdp):
                answered = browser_answer_to_plain(sdp, browser.pending, browser.plain, browser.origin_plain)
                browser.configure(answered)
                sdp = answered.sdp
            else:    # not a browser after all (a SIP phone on a WebSocket): plain RTP to the relay
                self._drop(leg)
        rewritten = await self.inner.answer(leg, sdp)
        self._point(leg)
        browser = self.browsers.get(other)
        if browser is not None and isinstance(browser.pending, BrowserOffer):
            answered = plain_answer_to_browser(rewritten, browser.pending, browser.local, browser.origin_browser,
                                               browser.dtls_client)
            browser.configure(answered)
            return answered.sdp
        return rewritten

    def _to_fork_offer(self, fork: int, sdp: bytes) -> bytes:
        browser = self.forks.get(fork)
        if browser is None:
            browser = self.forks[fork] = self._new_browser()
            self._point_browser(browser, "b")
        return self._offer_for(browser, sdp)

    @staticmethod
    def _offer_for(browser: _Browser, sdp: bytes) -> bytes:
        browser_sdp, browser.pending = plain_offer_to_browser(sdp, browser.local, browser.origin_browser,
                                                              browser.dtls_client)
        return browser_sdp

    def _browser(self, leg: str) -> _Browser:
        browser = self.browsers[leg] = self._new_browser()
        self._point(leg)
        return browser

    def _new_browser(self) -> _Browser:
        if self._released:
            raise MediaUnavailable("the media session has ended")
        return _Browser(self.gateway, self._consent_lost, self._failed)

    def _consent_lost(self, browser: _Browser) -> None:
        self._lose(browser, lambda leg: f"ICE consent of the browser on leg {leg} expired", False)

    def _failed(self, browser: _Browser, reason: str, keyed: bool) -> None:
        """A leg whose media never came up fails the call's set-up; one that had keys and
        lost them (a new DTLS association after a re-offer that failed) lost its media."""
        state = "lost" if keyed else "not set up"
        self._lose(browser, lambda leg: f"media of the browser on leg {leg} {state}: {reason}", not keyed)

    def _lose(self, browser: _Browser, reason: Callable[[str], str], failed_setup: bool) -> None:
        """Only the call's own browser legs count (not a ringing fork); the media is lost once."""
        leg = next((name for name, held in self.browsers.items() if held is browser), None)
        if leg is None or self._released or self._lost:
            return
        self._lost = True
        text = reason(leg)
        log.info("call {call_id}: {reason}", call_id=self.call_id, reason=text)
        if failed_setup:
            self.on_lost(text, failed_setup=True)
        else:
            self.on_lost(text)

    def _point(self, leg: str) -> None:
        browser = self.browsers.get(leg)
        if browser is not None:
            self._point_browser(browser, leg)

    def _point_browser(self, browser: _Browser, leg: str) -> None:
        if self.inner.streams:
            browser.point_at(self.inner.streams[0].ports[leg])

    def _drop(self, leg: str) -> None:
        browser = self.browsers.pop(leg)
        self.forks = {index: fork for index, fork in self.forks.items() if fork is not browser}
        self._closing.append(browser.close())

    def stats(self) -> dict[str, dict]:
        """Per browser leg: ICE, DTLS and SRTP state, counters both ways (kept after release)."""
        for leg, browser in self.browsers.items():
            self.last_stats[leg] = browser.stats()
        return dict(self.last_stats)

    def live_stats(self) -> dict[str, dict]:
        """The browser legs the call has now (a fork's leg that lost to a phone is gone)."""
        return {leg: browser.stats() for leg, browser in self.browsers.items()}

    def one_way(self) -> bool:
        """RTP reached a browser leg but none came back from it, or the reverse."""
        for stats in self.live_stats().values():
            carried = stats["rtp"]
            if bool(carried["from_browser"]) != bool(carried["to_browser"]):
                return True
        return False

    def flow(self) -> Flow | None:
        """The relay's count, less what a browser leg could not pass on: what reached the
        plain port of a browser leg that never sent it (no keys, no consent) did not arrive."""
        inner = self.inner.flow()
        if inner is None:
            return None
        a_to_b, b_to_a = inner.a_to_b, inner.b_to_a
        for leg, stats in self._at_release.items():
            if leg == "b":
                a_to_b = min(a_to_b, stats["rtp"]["to_browser"])
            else:
                b_to_a = min(b_to_a, stats["rtp"]["to_browser"])
        return Flow(a_to_b, b_to_a)

    def release(self) -> defer.Deferred:
        if not self._released:
            self._released = True
            self.stats()
            self._at_release = self.live_stats()
            for browser in self.forks.values():
                if browser not in self.browsers.values():
                    self._closing.append(browser.close())
            self.forks.clear()
            for leg in list(self.browsers):
                self._drop(leg)
            self.gateway._released(self)
        return defer.gatherResults([self.inner.release(), *self._closing]).addCallback(lambda _: None)


@implementer(IMediaRelay)
class WebRtcGateway:
    """Wraps the node's plain relay; `sessions` are the calls in progress, for the consoles."""

    def __init__(self, reactor: Any, relay: InProcessRelay, certificate: Certificate | None = None,
                 clock: Any = None, on_released: Callable[[GatewaySession], None] | None = None,
                 consent_timeout: float = CONSENT_TIMEOUT, setup_timeout: float = SETUP_TIMEOUT):
        self.reactor = reactor
        self.clock = clock or reactor
        self.relay = relay
        self.certificate = certificate or Certificate.generate()
        self.sessions: dict[str, GatewaySession] = {}
        self.on_released = on_released
        self.consent_timeout = consent_timeout
        self.setup_timeout = setup_timeout

    def allocate(self, call_id: str, on_lost: Callable[..., None]) -> defer.Deferred:
        """`on_lost(reason)` as the wrapped relay calls it; the browser legs add
        `failed_setup=True` when their media never came up."""
        def wrap(inner):
            session = GatewaySession(self, inner, on_lost)
            self.sessions[call_id] = session
            return session
        return self.relay.allocate(call_id, on_lost).addCallback(wrap)

    def leg_stats(self, ufrag: str) -> dict | None:
        """The stats of the browser leg whose ICE ufrag (ours, in its SDP) this is, with its call."""
        for session in self.sessions.values():
            for leg, browser in session.browsers.items():
                if browser.local.ice_ufrag == ufrag:
                    return {"call_id": session.call_id, "leg": leg, "one_way": session.one_way(),
                            **browser.stats()}
        return None

    def _released(self, session: GatewaySession) -> None:
        if self.sessions.get(session.call_id) is session:
            del self.sessions[session.call_id]
        if self.on_released is not None and session.last_stats:
            self.on_released(session)
