"""
SDP between a browser leg (ICE, DTLS-SRTP, BUNDLE, rtcp-mux, SAVPF, Opus) and a plain leg
(RTP/AVP with G.711), in both directions and for re-offers such as hold.

Four steps, one per SDP that crosses the gateway:

    browser calls phone:  browser_offer_to_plain   then  plain_answer_to_browser
    phone calls browser:  plain_offer_to_browser   then  browser_answer_to_plain

Each offer step returns the SDP for the other leg and a record of what was offered, which
its answer step takes back. The descriptions are read with `wevoip.media.sdp` and written
fresh rather than edited: nothing of the browser's (extmap, ssrc, msid, rtcp-fb,
candidates) may leak to a phone, and nothing of a phone's to the browser.

Only the first audio stream is bridged. The browser's other m= lines (video, a data
channel) are rejected in our answer with port 0 and left out of the BUNDLE group; a phone's
other streams (video, T.38) are not offered to the browser and are rejected in the answer
to the phone. G.711 passes through untouched; a browser that offers Opus but no G.711 gets
Opus and the gateway transcodes (`opus.py`). Anything else is an `SdpError` whose text is a
488 reason.

Direction passes through as written, because the gateway relays: a phone that offers
sendonly (hold) makes us offer the browser sendonly, and so on. RFC 2543's hold, a c= of
0.0.0.0, is read as the phone not wanting media sent to it.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

from wevoip.media.sdp import Codec, Connection, MediaDescription, SdpError, SessionDescription
from wevoip.media.webrtc.dtls import Fingerprint

G711 = ("PCMU", "PCMA")
WEBRTC_PROTOS = ("UDP/TLS/RTP/SAVPF", "UDP/TLS/RTP/SAVP")
OPUS_FMTP = "minptime=10;useinbandfec=1"
# The one candidate an ICE-lite gateway has: a host candidate on its media port (RFC 8445
# §5.1.2: priority for a host candidate of component 1 with the highest local preference).
HOST_PRIORITY = (126 << 24) | (65535 << 8) | 255
# ASCII digits, bounded (RFC 8839 §5.1): str.isdigit() takes "²", which int() refuses.
_COMPONENT = re.compile(r"[0-9]{1,3}\Z")
_PRIORITY = re.compile(r"[0-9]{1,10}\Z")
_PORT = re.compile(r"[0-9]{1,5}\Z")


@dataclass(frozen=True)
class WebRtcLocal:
    """What we put in SDP towards the browser: our one port and our credentials."""

    address: str
    port: int
    ice_ufrag: str
    ice_pwd: str
    fingerprint: Fingerprint


@dataclass(frozen=True)
class PlainLocal:
    """Where the plain leg should send its RTP (the gateway's plain-side port)."""

    address: str
    port: int


@dataclass(frozen=True)
class Candidate:
    """An a=candidate (RFC 8839 §5.1), kept for the call record; a lite agent checks none."""

    foundation: str
    component: int
    transport: str
    priority: int
    address: str
    port: int
    type: str

    @classmethod
    def parse(cls, value: str) -> "Candidate":
        parts = value.split()
        if len(parts) < 8 or parts[6] != "typ" or not (_COMPONENT.match(parts[1]) and _PRIORITY.match(parts[3])
                                                        and _PORT.match(parts[5])):
            raise SdpError(f"a=candidate:{value[:60]} is not 'foundation component transport "
                           f"priority address port typ type'")
        return cls(parts[0], int(parts[1]), parts[2].lower(), int(parts[3]), parts[4],
                   int(parts[5]), parts[7])


@dataclass(frozen=True)
class BrowserTransport:
    """The browser's side of ICE and DTLS, as its offer or answer states it."""

    ice_ufrag: str
    ice_pwd: str
    fingerprints: tuple[Fingerprint, ...]
    setup: str
    candidates: tuple[Candidate, ...]


@dataclass(frozen=True)
class CodecPlan:
    """What each leg carries: the browser's payload types and the plain leg's."""

    browser: Codec
    plain: Codec
    browser_dtmf: Codec | None
    plain_dtmf: Codec | None

    @property
    def transcode(self) -> bool:
        return self.browser.name.lower() != self.plain.name.lower()


@dataclass
class OriginCounter:
    """Our o= line on one leg: a fixed session id and a version that grows (RFC 3264 §8)."""

    session_id: str = field(default_factory=lambda: str(secrets.randbelow(2 ** 62)))
    version: int = 0

    def next_line(self, address: str) -> str:
        self.version += 1
        connection = Connection.for_address(address)
        return f"o=- {self.session_id} {self.version} IN {connection.addrtype} {address}"


@dataclass(frozen=True)
class BrowserOffer:
    """What `browser_offer_to_plain` learnt, for `plain_answer_to_browser`."""

    description: SessionDescription
    audio_index: int
    transport: BrowserTransport
    codecs: tuple[Codec, ...]


@dataclass(frozen=True)
class PlainOffer:
    """What `plain_offer_to_browser` offered, for `browser_answer_to_plain`."""

    description: SessionDescription
    audio_index: int
    codecs: tuple[Codec, ...]
    dtmf: Codec | None


@dataclass(frozen=True)
class Answered:
    """An answer step's result: the SDP for the other leg, the codecs, our DTLS role."""

    sdp: bytes
    plan: CodecPlan
    transport: BrowserTransport | None
    dtls_client: bool


def browser_offer_to_plain(offer: bytes, plain: PlainLocal, origin: OriginCounter) -> tuple[bytes, BrowserOffer]:
    description = SessionDescription.parse(offer)
    index, audio = _first_audio(description, "the browser's offer")
    if audio.proto.upper() not in WEBRTC_PROTOS:
        raise SdpError(f"the browser's audio is {audio.proto}, not DTLS-SRTP (UDP/TLS/RTP/SAVPF)")
    transport = _browser_transport(description, audio, "offer")
    if not audio.rtcp_mux:
        raise SdpError("the browser's offer lacks a=rtcp-mux, which WebRTC requires")
    codecs = audio.codecs()
    g711 = [codec for codec in codecs if _is_g711(codec)]
    if not g711 and _opus(codecs) is None:
        raise SdpError("the browser offers none of PCMU, PCMA or Opus")
    # G.711 the browser has is passed through; with only Opus we offer both laws and transcode.
    plain_codecs = g711 or [Codec(0, "PCMU", 8000), Codec(8, "PCMA", 8000)]
    dtmf = _dtmf(codecs, 8000)
    direction = audio.direction
    sdp = _plain_description(plain, origin, plain_codecs, dtmf, direction)
    return sdp, BrowserOffer(description, index, transport, tuple(codecs))


def plain_answer_to_browser(answer: bytes, offered: BrowserOffer, local: WebRtcLocal,
                            origin: OriginCounter, dtls_client: bool | None = None) -> Answered:
    """`dtls_client` is our current DTLS role when the browser re-offers (None at first).

    A browser re-offers with actpass (JSEP); answering with the role we already have keeps
    the DTLS association (RFC 8842 §5.5), where the initial rule would flip a server to
    client and force a new handshake.
    """
    description = SessionDescription.parse(answer)
    _, audio = _first_audio(description, "the answer from the other side")
    chosen = next((codec for codec in audio.codecs() if _is_g711(codec)), None)
    if chosen is None:
        raise SdpError("the other side answered without PCMU or PCMA")
    browser_codec = _matching(offered.codecs, chosen)
    # Transcoding renumbers the stream, so DTMF events are not carried across it.
    browser_dtmf = _dtmf(offered.codecs, 8000) if browser_codec else None
    browser_codec = browser_codec or _opus(offered.codecs)
    if browser_codec is None:
        raise SdpError(f"the other side answered {chosen.name}, which the browser did not offer")
    plain_dtmf = audio.telephone_event
    if plain_dtmf is None:
        browser_dtmf = None
    theirs = offered.transport.setup
    if theirs == "actpass" and dtls_client is not None:
        setup = "active" if dtls_client else "passive"
    else:
        setup = {"actpass": "active", "active": "passive", "passive": "active"}[theirs]
    sdp = _browser_description(
        offered.description, offered.audio_index, local, origin, setup,
        [browser_codec] + ([browser_dtmf] if browser_dtmf else []), _plain_direction(audio))
    plan = CodecPlan(browser_codec, chosen, browser_dtmf, plain_dtmf)
    return Answered(sdp, plan, offered.transport, dtls_client=setup == "active")


def plain_offer_to_browser(offer: bytes, local: WebRtcLocal, origin: OriginCounter,
                           dtls_client: bool | None = None) -> tuple[bytes, PlainOffer]:
    """`dtls_client` is our current DTLS role in a re-offer (None on the first offer)."""
    description = SessionDescription.parse(offer)
    index, audio = _first_audio(description, "the offer")
    codecs = [codec for codec in audio.codecs() if _is_g711(codec)]
    if not codecs:
        raise SdpError("the offer has neither PCMU nor PCMA, and a browser takes no other codec of it")
    dtmf = _dtmf(audio.codecs(), 8000)
    setup = "actpass" if dtls_client is None else "active" if dtls_client else "passive"
    sdp = _browser_offer_description(local, origin, setup, codecs + ([dtmf] if dtmf else []),
                                     _plain_direction(audio))
    return sdp, PlainOffer(description, index, tuple(codecs), dtmf)


def browser_answer_to_plain(answer: bytes, offered: PlainOffer, plain: PlainLocal,
                            origin: OriginCounter) -> Answered:
    description = SessionDescription.parse(answer)
    _, audio = _first_audio(description, "the browser's answer")
    transport = _browser_transport(description, audio, "answer")
    chosen = next((codec for codec in audio.codecs() if _is_g711(codec)), None)
    plain_codec = _matching(offered.codecs, chosen) if chosen else None
    if plain_codec is None:
        raise SdpError("the browser answered with no G.711 codec that was offered")
    browser_dtmf = audio.telephone_event
    plain_dtmf = offered.dtmf if browser_dtmf is not None else None
    sdp = _plain_answer_description(offered, plain, origin,
                                    [plain_codec] + ([plain_dtmf] if plain_dtmf else []),
                                    audio.direction)
    plan = CodecPlan(chosen, plain_codec, browser_dtmf, plain_dtmf)
    return Answered(sdp, plan, transport, dtls_client=transport.setup == "passive")


def _first_audio(description: SessionDescription, what: str) -> tuple[int, MediaDescription]:
    for index, media in enumerate(description.media):
        if media.media == "audio" and media.port != 0:
            return index, media
    raise SdpError(f"{what} has no audio stream")


def _browser_transport(description: SessionDescription, audio: MediaDescription,
                       kind: str) -> BrowserTransport:
    def value(name: str) -> str | None:
        return audio.attribute(name) or description.attribute(name)

    ufrag, pwd = value("ice-ufrag"), value("ice-pwd")
    if not ufrag or not pwd:
        raise SdpError(f"the browser's {kind} has no a=ice-ufrag and a=ice-pwd")
    # Media-level fingerprints replace the session's (RFC 8122 §5); hash functions we do not
    # support (md5, md2, unknown) are passed over, the rest must be well formed.
    texts = audio.attributes("fingerprint") or description.attributes("fingerprint")
    if not texts:
        raise SdpError(f"the browser's {kind} has no a=fingerprint")
    usable = [text for text in texts if Fingerprint.supported(text)]
    if not usable:
        named = ", ".join(text.split()[0] for text in texts if text.split())
        raise SdpError(f"a=fingerprint: no hash function we support among {named}")
    try:
        fingerprints = tuple(Fingerprint.parse(text) for text in usable)
    except ValueError as error:
        raise SdpError(f"a=fingerprint: {error}") from None
    setup = value("setup") or ("actpass" if kind == "offer" else "active")
    allowed = ("actpass", "active", "passive") if kind == "offer" else ("active", "passive")
    if setup not in allowed:
        raise SdpError(f"a=setup:{setup} is not valid in an {kind} (one of {', '.join(allowed)})")
    candidates = tuple(Candidate.parse(text) for text in audio.attributes("candidate"))
    return BrowserTransport(ufrag, pwd, fingerprints, setup, candidates)


def _is_g711(codec: Codec) -> bool:
    return codec.name.upper() in G711 and codec.clock_rate == 8000


def _opus(codecs) -> Codec | None:
    return next((codec for codec in codecs if codec.name.lower() == "opus" and codec.clock_rate == 48000), None)


def _dtmf(codecs, clock_rate: int) -> Codec | None:
    return next((codec for codec in codecs if codec.name.lower() == "telephone-event"
                 and codec.clock_rate == clock_rate), None)


def _matching(codecs, wanted: Codec) -> Codec | None:
    return next((codec for codec in codecs if codec.name.upper() == wanted.name.upper()
                 and codec.clock_rate == wanted.clock_rate), None)


def _plain_direction(audio: MediaDescription) -> str:
    direction = audio.direction
    connection = audio.effective_connection
    if connection is not None and connection.address in ("0.0.0.0", "::"):
        return "sendonly" if direction in ("sendrecv", "sendonly") else "inactive"
    return direction


def _rtpmap_lines(codecs) -> list[str]:
    lines = []
    for codec in codecs:
        channels = f"/{codec.channels}" if codec.channels != 1 else ""
        lines.append(f"a=rtpmap:{codec.payload_type} {codec.name}/{codec.clock_rate}{channels}")
        fmtp = codec.fmtp or (OPUS_FMTP if codec.name.lower() == "opus" else
                              "0-16" if codec.name.lower() == "telephone-event" else None)
        if fmtp:
            lines.append(f"a=fmtp:{codec.payload_type} {fmtp}")
    return lines


def _session_head(origin: OriginCounter, address: str) -> list[str]:
    return ["v=0", origin.next_line(address), "s=-", "t=0 0"]


def _written(lines: list[str]) -> bytes:
    data = "".join(f"{line}\r\n" for line in lines).encode()
    SessionDescription.parse(data)  # what we write, we can read: a bug here fails loudly
    return data


def _plain_description(plain: PlainLocal, origin: OriginCounter, codecs, dtmf, direction: str) -> bytes:
    connection = Connection.for_address(plain.address)
    codecs = list(codecs) + ([dtmf] if dtmf else [])
    return _written([*_session_head(origin, plain.address), f"c={connection}",
                     f"m=audio {plain.port} RTP/AVP {' '.join(str(c.payload_type) for c in codecs)}",
                     *_rtpmap_lines(codecs), "a=ptime:20", f"a={direction}"])


def _plain_answer_description(offered: PlainOffer, plain: PlainLocal, origin: OriginCounter,
                              codecs, direction: str) -> bytes:
    connection = Connection.for_address(plain.address)
    lines = [*_session_head(origin, plain.address), f"c={connection}"]
    for index, media in enumerate(offered.description.media):
        if index == offered.audio_index:
            lines += [f"m=audio {plain.port} RTP/AVP {' '.join(str(c.payload_type) for c in codecs)}",
                      *_rtpmap_lines(codecs), "a=ptime:20", f"a={direction}"]
        else:
            lines += _rejected(media)
    return _written(lines)


def _rejected(media: MediaDescription) -> list[str]:
    """A stream refused in an answer (RFC 3264 §6): port 0, its first format, its mid."""
    first = media.formats[0]
    lines = [f"m={media.media} 0 {media.proto} {first}"]
    lines += [f"a=rtpmap:{value}" for value in media.attributes("rtpmap") if value.split(" ", 1)[0] == first]
    if media.attribute("mid") is not None:
        lines.append(f"a=mid:{media.attribute('mid')}")
    return lines


def _webrtc_audio_lines(local: WebRtcLocal, mid: str, setup: str, codecs, direction: str) -> list[str]:
    connection = Connection.for_address(local.address)
    return [f"m=audio {local.port} UDP/TLS/RTP/SAVPF {' '.join(str(c.payload_type) for c in codecs)}",
            f"c={connection}", f"a=mid:{mid}", f"a={direction}", "a=rtcp-mux",
            f"a=ice-ufrag:{local.ice_ufrag}", f"a=ice-pwd:{local.ice_pwd}",
            f"a=fingerprint:{local.fingerprint}", f"a=setup:{setup}",
            *_rtpmap_lines(codecs), "a=ptime:20",
            f"a=candidate:1 1 udp {HOST_PRIORITY} {local.address} {local.port} typ host",
            "a=end-of-candidates"]


def _browser_description(offer: SessionDescription, audio_index: int, local: WebRtcLocal,
                         origin: OriginCounter, setup: str, codecs, direction: str) -> bytes:
    """Our answer to the browser: its m= lines in its order, all but the audio rejected."""
    mid = offer.media[audio_index].attribute("mid") or "0"
    lines = [*_session_head(origin, local.address), "a=ice-lite", f"a=group:BUNDLE {mid}"]
    for index, media in enumerate(offer.media):
        if index == audio_index:
            lines += _webrtc_audio_lines(local, mid, setup, codecs, direction)
            continue
        lines += [*_rejected(media)[:1], f"c={Connection.for_address(local.address)}", *_rejected(media)[1:]]
    return _written(lines)


def _browser_offer_description(local: WebRtcLocal, origin: OriginCounter, setup: str, codecs,
                               direction: str) -> bytes:
    return _written([*_session_head(origin, local.address), "a=ice-lite", "a=group:BUNDLE 0",
                     *_webrtc_audio_lines(local, "0", setup, codecs, direction),
                     "a=msid:wevoip audio"])
