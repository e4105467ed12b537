"""
One browser's media on one UDP port: the pieces of this package put together.

What arrives is sorted by `demux.classify`: STUN goes to the ICE-lite agent, DTLS to the
DTLS endpoint, SRTP and SRTCP are unprotected and handed to the plain side as RTP in the
plain leg's payload types (or transcoded, when the browser speaks only Opus). What the plain
side sends goes the other way. Nothing is believed before ICE: DTLS and SRTP are read only
from an address that passed a connectivity check, and we send only to the address ICE
selected (or, before nomination, the latest valid one), and stop sending when the browser's
consent lapses (no good check for 30 s, RFC 7675); `on_consent_lost` hears when it has.

Set-up is bounded: once the offer/answer is complete (`configure`), ICE must validate a
pair and DTLS key SRTP within `setup_timeout` (`media.webrtc_setup_timeout_ms`). A DTLS
handshake that fails (a certificate that does not match `a=fingerprint`) or a set-up not
done in time is told to `on_failed(reason, keyed)` once, with whether SRTP was ever keyed:
a leg that never was could not carry a sound, so the call is ended at once and not billed.

`BrowserLeg` is sans-IO; `BrowserLegProtocol` is the DatagramProtocol around it.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import Callable, Protocol

from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import DatagramProtocol

from wevoip.media.webrtc.demux import Kind, classify
from wevoip.media.webrtc.dtls import Certificate, DtlsEndpoint, DtlsState
from wevoip.media.webrtc.ice import CONSENT_TIMEOUT, Address, IceLiteAgent
from wevoip.media.webrtc.opus import G711ToOpus, OpusToG711, TranscodeError
from wevoip.media.webrtc.srtp import SrtpError, SrtpKeys, SrtpSession
from wevoip.media.webrtc.translate import BrowserTransport, CodecPlan

_HEADER = struct.Struct("!BBHII")
SETUP_TIMEOUT = 20.0


class PlainSide(Protocol):
    """Where the browser's media goes once it is plain RTP (the relay's side of the call)."""

    def rtp_from_browser(self, packet: bytes) -> None: ...

    def rtcp_from_browser(self, packet: bytes) -> None: ...


@dataclass
class Dropped:
    """Why datagrams were not passed on, for the call record."""

    unvalidated: int = 0      # DTLS or SRTP from an address ICE has not validated
    not_keyed: int = 0        # media (or DTLS) before there is a key (or an endpoint) for it
    no_consent: int = 0       # media for a browser whose consent lapsed (RFC 7675 §5.1)
    srtp: int = 0             # refused by libsrtp (tag, replay, runt)
    payload_type: int = 0     # an RTP payload type the plan does not carry
    transcode: int = 0        # a payload the codec refused
    junk: int = 0             # matched no protocol of the port


@dataclass
class Carried:
    """RTP packets passed on each way (RTCP and DTLS aside): what one-way media is judged by."""

    from_browser: int = 0     # unprotected and handed to the plain side
    to_browser: int = 0       # protected and sent to the browser


@dataclass
class _Restamp:
    """Our own RTP numbering for a transcoded direction (a new stream, so a new SSRC)."""

    samples_per_frame: int
    ssrc: int = field(default_factory=lambda: int.from_bytes(os.urandom(4), "big"))
    sequence: int = field(default_factory=lambda: int.from_bytes(os.urandom(2), "big"))
    timestamp: int = field(default_factory=lambda: int.from_bytes(os.urandom(4), "big"))

    def header(self, payload_type: int, marker: bool) -> bytes:
        header = _HEADER.pack(0x80, (0x80 if marker else 0) | payload_type, self.sequence,
                              self.timestamp, self.ssrc)
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + self.samples_per_frame) & 0xFFFFFFFF
        return header


def rtp_payload(packet: bytes) -> bytes | None:
    """The payload of an RTP packet (after CSRCs, extension and before padding), or None."""
    if len(packet) < 12 or packet[0] >> 6 != 2:
        return None
    start = 12 + 4 * (packet[0] & 0x0F)
    if packet[0] & 0x10:
        if len(packet) < start + 4:
            return None
        start += 4 + 4 * int.from_bytes(packet[start + 2:start + 4], "big")
    end = len(packet) - (packet[-1] if packet[0] & 0x20 else 0)
    return packet[start:end] if start <= end else None


class BrowserLeg:
    def __init__(self, clock: IReactorTime, certificate: Certificate, local_ufrag: str,
                 local_pwd: str, plain: PlainSide, send, consent_timeout: float = CONSENT_TIMEOUT,
                 on_consent_lost: Callable[[], None] | None = None, setup_timeout: float = SETUP_TIMEOUT,
                 on_failed: Callable[[str, bool], None] | None = None) -> None:
        """`send(datagram, address)` puts a datagram on the port's socket."""
        self.clock, self.certificate, self.plain, self._send = clock, certificate, plain, send
        self.setup_timeout = setup_timeout
        self._on_failed = on_failed
        self.keyed = False                  # DTLS keyed SRTP at least once: media could flow
        self.failure: str | None = None     # why the media failed, told once
        self._setup_timer = None
        self.ice = IceLiteAgent(clock, local_ufrag, local_pwd, consent_timeout=consent_timeout,
                                on_consent_lost=on_consent_lost)
        self.dtls: DtlsEndpoint | None = None
        self.srtp: SrtpSession | None = None
        self.plan: CodecPlan | None = None
        self.dropped = Dropped()
        self.carried = Carried()
        self._to_plain: dict[int, int] = {}
        self._to_browser: dict[int, int] = {}
        self._opus_in: OpusToG711 | None = None
        self._opus_out: G711ToOpus | None = None
        self._restamp_plain: _Restamp | None = None
        self._restamp_browser: _Restamp | None = None

    def configure(self, transport: BrowserTransport, dtls_client: bool, plan: CodecPlan) -> None:
        """Apply a completed offer/answer: the browser's credentials, our DTLS role, the codecs."""
        self.ice.remote_ufrag = transport.ice_ufrag
        if self.dtls is None or self.dtls.state is DtlsState.FAILED or \
                self.dtls.is_client != dtls_client or set(self.dtls.remote_fingerprints) != set(transport.fingerprints):
            self._new_dtls(transport, dtls_client)
        self.plan = plan
        self._to_plain = {plan.browser.payload_type: plan.plain.payload_type}
        self._to_browser = {plan.plain.payload_type: plan.browser.payload_type}
        if plan.browser_dtmf and plan.plain_dtmf:
            self._to_plain[plan.browser_dtmf.payload_type] = plan.plain_dtmf.payload_type
            self._to_browser[plan.plain_dtmf.payload_type] = plan.browser_dtmf.payload_type
        if plan.transcode and self._opus_in is None:
            self._opus_in, self._opus_out = OpusToG711(plan.plain.name), G711ToOpus(plan.plain.name)
            self._restamp_plain, self._restamp_browser = _Restamp(160), _Restamp(960)
        if self._setup_timer is None and not self.keyed and self.failure is None:
            self._setup_timer = self.clock.callLater(self.setup_timeout, self._setup_expired)

    def _setup_expired(self) -> None:
        self._setup_timer = None
        stage = "DTLS" if self.ice.valid else "ICE"
        self._fail(f"{stage} did not complete within {self.setup_timeout:g} s")

    def _fail(self, reason: str) -> None:
        if self.failure is not None:
            return
        self.failure = reason
        self._stop_setup_timer()
        if self._on_failed is not None:
            self._on_failed(reason, self.keyed)

    def _stop_setup_timer(self) -> None:
        if self._setup_timer is not None and self._setup_timer.active():
            self._setup_timer.cancel()
        self._setup_timer = None

    def _new_dtls(self, transport: BrowserTransport, dtls_client: bool) -> None:
        if self.dtls is not None:
            self.dtls.close()
        self.srtp = None
        self.dtls = DtlsEndpoint(self.clock, self.certificate, dtls_client, list(transport.fingerprints), self)
        if not dtls_client or self.ice.remote_address is not None:
            self.dtls.start()

    def close(self) -> None:
        self._on_failed = None
        self._stop_setup_timer()
        self.ice.stop()
        if self.dtls is not None:
            self.dtls.close()

    # What the DTLS endpoint reports (it is our owner-facing half).

    def send(self, datagram: bytes) -> None:
        address = self.ice.remote_address
        if address is not None:
            self._send(datagram, address)

    def established(self, keys: SrtpKeys) -> None:
        self.srtp = SrtpSession(keys)
        self.keyed = True
        self._stop_setup_timer()

    def failed(self, reason: str) -> None:
        self.srtp = None
        self._fail(f"DTLS failed: {reason}")

    # From the browser.

    def datagram_received(self, data: bytes, source: Address) -> None:
        kind = classify(data)
        if kind is Kind.STUN:
            had_address = self.ice.remote_address is not None
            reply = self.ice.receive(data, source)
            if reply is not None:
                self._send(reply, source)
            if not had_address and self.ice.remote_address is not None and self.dtls is not None:
                self.dtls.start()
            return
        if kind is Kind.DROP:
            self.dropped.junk += 1
            return
        if source not in self.ice.valid:
            self.dropped.unvalidated += 1
            return
        if kind is Kind.DTLS:
            # A browser that is the DTLS client may start before its answer reached us; it
            # resends its ClientHello, which then finds the endpoint `configure` made.
            if self.dtls is None:
                self.dropped.not_keyed += 1
            else:
                self.dtls.receive(data)
            return
        if self.srtp is None:
            self.dropped.not_keyed += 1
            return
        try:
            if kind is Kind.RTCP:
                self.plain.rtcp_from_browser(self.srtp.unprotect_rtcp(data))
                return
            packet = self.srtp.unprotect(data)
        except SrtpError:
            self.dropped.srtp += 1
            return
        self._browser_rtp(packet)

    def _browser_rtp(self, packet: bytes) -> None:
        self._carry(packet, self._to_plain, self._opus_in, self._restamp_plain, self._pass_to_plain)

    def _pass_to_plain(self, packet: bytes) -> None:
        self.carried.from_browser += 1
        self.plain.rtp_from_browser(packet)

    # From the plain side.

    def rtp_to_browser(self, packet: bytes) -> None:
        if len(packet) < 12 or self.srtp is None or self.ice.remote_address is None:
            self.dropped.not_keyed += 1
            return
        if self.ice.consent_expired():
            self.dropped.no_consent += 1
            return
        self._carry(packet, self._to_browser, self._opus_out, self._restamp_browser, self._protect_and_send)

    def _carry(self, packet: bytes, payload_types: dict[int, int], transcoder, restamp, deliver) -> None:
        """Map the payload type, or transcode into frames of a restamped stream."""
        mapped = payload_types.get(packet[1] & 0x7F)
        if mapped is None:
            self.dropped.payload_type += 1
            return
        if transcoder is None:
            deliver(packet[:1] + bytes([(packet[1] & 0x80) | mapped]) + packet[2:])
            return
        try:
            frames = transcoder.transcode(rtp_payload(packet) or b"")
        except TranscodeError:
            self.dropped.transcode += 1
            return
        for frame in frames:
            deliver(restamp.header(mapped, False) + frame)

    def rtcp_to_browser(self, packet: bytes) -> None:
        if self.srtp is None or self.ice.remote_address is None:
            self.dropped.not_keyed += 1
            return
        if self.ice.consent_expired():
            self.dropped.no_consent += 1
            return
        try:
            self._send(self.srtp.protect_rtcp(packet), self.ice.remote_address)
        except SrtpError:
            self.dropped.srtp += 1

    def _protect_and_send(self, packet: bytes) -> None:
        try:
            self._send(self.srtp.protect(packet), self.ice.remote_address)
        except SrtpError:
            self.dropped.srtp += 1
            return
        self.carried.to_browser += 1

    def _ice_state(self) -> str:
        """RFC 8445's words as a lite agent sees them: no check yet, a valid pair, a
        nominated one, or a pair whose consent (RFC 7675) lapsed."""
        if not self.ice.valid:
            return "new"
        if self.ice.consent_expired():
            return "consent_lost"
        return "nominated" if self.ice.selected is not None else "connected"

    def stats(self) -> dict:
        """ICE, DTLS and SRTP state and counters both ways, for the call record and console."""
        srtp, dtls, ice = self.srtp, self.dtls, self.ice
        last_check = ice.last_consent
        return {
            "ice": {"state": self._ice_state(), "selected": ice.selected, "valid": list(ice.valid),
                    "consent_expired": ice.consent_expired(),
                    "last_check_ms": None if last_check is None else
                    max(int((self.clock.seconds() - last_check) * 1000), 0),
                    "answered": ice.counters.answered, "refused": ice.counters.refused},
            "dtls": {"state": dtls.state.value if dtls else "new",
                     "role": dtls.role if dtls else None,
                     "failure": dtls.failure if dtls else None,
                     "handshake_done": dtls is not None and dtls.keys is not None,
                     "cipher": dtls.cipher if dtls else None},
            "srtp": {"profile": srtp.keys.profile.name if srtp else None,
                     "sent": vars(srtp.sent) if srtp else None,
                     "received": vars(srtp.received) if srtp else None},
            "rtp": vars(self.carried),
            "dropped": vars(self.dropped),
        }


class BrowserLegProtocol(DatagramProtocol):
    """The socket around a `BrowserLeg`: datagrams in, and `send` for the leg to write with."""

    def __init__(self, make_leg) -> None:
        self._make_leg = make_leg
        self.leg: BrowserLeg | None = None

    def startProtocol(self) -> None:
        self.leg = self._make_leg(self.send)

    def send(self, datagram: bytes, address: Address) -> None:
        # The last words of a closing leg (DTLS close_notify) may come after the port closed.
        if self.transport is not None:
            self.transport.write(datagram, address)

    def datagramReceived(self, data: bytes, address: Address) -> None:
        self.leg.datagram_received(data, (address[0], address[1]))

    def stopProtocol(self) -> None:
        if self.leg is not None:
            self.leg.close()
