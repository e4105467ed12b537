"""
A seeded mutation fuzzer over every parser that reads what comes from outside: SIP
messages, SIP URIs and header values, the TCP stream framer, SDP, STUN, RTP and what tells
RTP from RTCP, digest credentials, and the API's JSON bodies.

Each target takes bytes and either returns (a parsed value, or nothing) or raises the
parser's own documented error; any other exception is a crash. The inputs are mutations
of seeds (the torture corpus in tests/sip/torture/ and valid messages of each kind),
drawn from `random.Random(seed)`, so a run is the same every time and a crash found in a
long run (`bench/fuzz.py`) is found again from its seed and case number.

The mutator is ours (standard library only): byte flips, deletions, insertions of the
characters parsers trip on, splices of two seeds, repeated chunks, numbers replaced by
huge, negative or zero-padded ones, truncation.
"""

from __future__ import annotations

import io
import json
import random
import struct
import traceback
from dataclasses import dataclass
from typing import Callable

from twisted.internet.task import Clock
from twisted.web.test.requesthelper import DummyRequest

from tests.sip.corpus import cases
from wevoip.media import rtp, sdp
from wevoip.media.webrtc import demux, leg, stun
from wevoip.media.webrtc.translate import Candidate
from wevoip.sip import digest
from wevoip.sip.errors import ParseError
from wevoip.sip.framing import PING, StreamFramer
from wevoip.sip.headers import parse_addresses, parse_cseq, parse_tokens, parse_via, split_commas
from wevoip.sip.message import Request, parse
from wevoip.sip.uri import parse_address, parse_params, parse_uri
from wevoip.web.api.errors import ApiError
from wevoip.web.api.jsonio import read_json

# -- targets -----------------------------------------------------------------------


def sip_message(data: bytes) -> None:
    """A datagram: the message and every part a handler may read later."""
    message = parse(data)
    for part in ("via", "cseq", "from_", "to", "call_id"):
        getattr(message, part)
    for via in message.via:
        _ = via.rport, via.received, via.branch, via.rfc3261
    if isinstance(message, Request):
        _ = message.uri, message.max_forwards
    for name in ("Contact", "Route", "Record-Route", "Path"):
        parse_addresses(message.headers.get_all(name))
    for name in ("Require", "Proxy-Require", "Supported", "Allow"):
        parse_tokens(message.headers.get_all(name))


def sip_values(data: bytes) -> None:
    """Header values alone, as the lazily parsed parts read them."""
    text = data.decode("utf-8", "surrogateescape")
    for parser in (parse_uri, parse_address, parse_via, parse_cseq, split_commas, parse_params):
        try:
            parser(text)
        except ParseError:
            pass
    for part in split_commas(text):
        parse_address(part)


def sip_stream(data: bytes) -> None:
    """A TCP stream cut in uneven chunks: framed messages, each then parsed."""
    framer = StreamFramer(max_message=8192)
    for start in range(0, len(data), 37):
        for item in framer.feed(data[start:start + 37]):
            if item != PING:
                try:
                    sip_message(item)
                except ParseError:
                    pass


def session_description(data: bytes) -> None:
    description = sdp.parse(data)
    _ = description.origin, description.direction, description.connection
    for media in description.media:
        _ = media.media, media.port, media.proto, media.formats, media.direction, media.effective_connection
        _ = media.codecs(), media.telephone_event, media.rtcp, media.rtcp_mux, media.rtcp_destination()
        if media.is_t38:
            media.t38_options()
        for candidate in media.attributes("candidate"):
            Candidate.parse(candidate)


def stun_message(data: bytes) -> None:
    message = stun.parse(data)
    for kind, value in message.attributes:
        if kind == stun.XOR_MAPPED_ADDRESS:
            stun.decode_xor_address(value, message.transaction_id)
        elif kind == stun.ERROR_CODE:
            stun.decode_error_code(value)
        elif kind in (stun.PRIORITY, stun.FINGERPRINT):
            stun.decode_uint(value, 4, "attribute")


def rtp_packet(data: bytes) -> None:
    demux.classify(data)
    leg.rtp_payload(data)
    rtp.parse(data)


_AUTHORITY = digest.DigestAuthority(Clock(), b"a fuzzing nonce secret")


def digest_credentials(data: bytes) -> None:
    """Credentials as the authenticator takes them: parsed, then checked (here against
    an unknown user, which runs the same hashing with a stand-in HA1)."""
    credentials = digest.parse_credentials(data.decode("utf-8", "surrogateescape"))
    assert _AUTHORITY.check(credentials, "REGISTER", None) is digest.Verdict.BAD


def api_json(data: bytes) -> None:
    request = DummyRequest([b""])
    request.requestHeaders.setRawHeaders(b"content-type", [b"application/json"])
    request.content = io.BytesIO(data)
    read_json(request)


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], None]
    errors: tuple[type[BaseException], ...]   # what the parser documents it raises
    seeds: Callable[[], list[bytes]]


def _sip_seeds() -> list[bytes]:
    return [case.data for case in cases()]


def _value_seeds() -> list[bytes]:
    return [b'"J Rosenberg \\"" <sip:jdrosen@example.com;lr>;tag=98asjd8;q=0.33',
            b"sip:user:pa$$@[2001:db8::10]:5070;transport=tcp;maddr=192.0.2.1?Subject=hi&X=%20",
            b"SIP/2.0/TLS [2001:db8::9:1]:6050;branch=z9hG4bKas3;received=2001:db8::9:255;rport=5060",
            b"tel:+1-201-555-0123;phone-context=example.com", b"4711 INVITE", b"100rel, timer, path",
            b"<sip:a@b>;expires=60, \"Q\" <sip:c@d;lr>;q=0.5, sip:e@f;x"]


def _stream_seeds() -> list[bytes]:
    messages = [case.data for case in cases() if b"Content-Length: -" not in case.data]
    return [b"\r\n\r\n" + first + b"\r\n" + second for first, second in zip(messages, messages[1:])]


_SDP = (b"v=0\r\no=alice 2890844526 2890844527 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\n"
        b"t=0 0\r\na=sendrecv\r\nm=audio 49170 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
        b"a=fmtp:101 0-15\r\na=rtcp:49171 IN IP4 192.0.2.10\r\na=ptime:20\r\n"
        b"m=image 49172 udptl t38\r\na=T38FaxVersion:0\r\na=T38FaxRateManagement:transferredTCF\r\n")
_SDP6 = (b"v=0\r\no=- 1 1 IN IP6 2001:db8::10\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\n"
         b"c=IN IP6 2001:db8::10\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\na=ice-ufrag:abcd\r\n"
         b"a=fingerprint:sha-256 AB:CD\r\na=setup:actpass\r\na=recvonly\r\n"
         b"a=candidate:1 1 udp 2122260223 2001:db8::10 54321 typ host generation 0\r\n")


def _stun_seeds() -> list[bytes]:
    transaction = bytes(range(12))
    message = stun.Message(0x0001, 0, transaction, [
        (stun.XOR_MAPPED_ADDRESS, stun.encode_xor_address("192.0.2.1", 5060, transaction)),
        (stun.XOR_MAPPED_ADDRESS, stun.encode_xor_address("2001:db8::1", 5060, transaction)),
        (stun.ERROR_CODE, stun.encode_error_code(487, "Role Conflict")),
        (stun.PRIORITY, struct.pack("!I", 1845501695))])
    return [message.encode(fingerprint=False), message.encode(), message.encode(integrity_key=b"k" * 16)]


def _rtp_seeds() -> list[bytes]:
    packet = rtp.RtpPacket(0, 4711, 160, 0x1234, b"\xff" * 160).serialise()
    extended = (bytes([0x92]) + packet[1:12] + b"\0\0\0\x01" + b"\xbe\xde\0\x01" + b"\x10\x01\0\0"
                + b"x" * 20 + b"\0\x04")
    rtcp = bytes([0x80, 200, 0, 6]) + b"\0" * 24
    return [packet, extended, bytes([0xa0]) + packet[1:] + b"\x02", rtcp]


def _digest_seeds() -> list[bytes]:
    return [b'Digest username="alice", realm="pbx.example.com", nonce="MTIzNDU2Nzg5MA==", '
            b'uri="sip:pbx.example.com", response="6629fae49393a05397450978507c4ef1", algorithm=MD5, '
            b'qop=auth, nc=00000001, cnonce="0a4f113b"',
            b'Digest username="bob",realm="r",nonce="n",uri="sip:r",response="' + b"a" * 64
            + b'",algorithm=SHA-256,opaque="x"']


def _json_seeds() -> list[bytes]:
    return [json.dumps({"name": "Acme", "plan": 3, "limits": {"calls": 10, "numbers": ["+4930123"]},
                        "prepaid": True, "credit": "12.50", "note": None}).encode(),
            b'[{"a": [1, 2.5e3, -0, "\\u00e9\\ud83d\\ude00"]}]', b'"just a string"']


TARGETS = {target.name: target for target in (
    Target("sip-message", sip_message, (ParseError,), _sip_seeds),
    Target("sip-values", sip_values, (ParseError,), _value_seeds),
    Target("sip-stream", sip_stream, (ParseError,), _stream_seeds),
    Target("sdp", session_description, (sdp.SdpError,), lambda: [_SDP, _SDP6]),
    Target("stun", stun_message, (stun.StunError,), _stun_seeds),
    Target("rtp", rtp_packet, (ValueError,), _rtp_seeds),
    Target("digest", digest_credentials, (digest.MalformedCredentials,), _digest_seeds),
    Target("api-json", api_json, (ApiError,), _json_seeds),
)}

# -- the mutator -----------------------------------------------------------------------

_INTERESTING = [b"\r\n", b"\r\n\r\n", b"\n", b" ", b"\t", b";", b",", b":", b"=", b"<", b">", b'"', b"\\",
                b"[", b"]", b"[::", b":::", b"%", b"%0", b"%00", b"@", b"?", b"&", b"/", b"\x00", b"\x7f",
                b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf0\x9f", b"SIP/2.0", b"z9hG4bK", b";tag=", b"sip:",
                b"Content-Length: ", b"-1", b"0", b"4294967296", b"99999999999999999999", b"00000000001",
                b"m=", b"c=IN IP6 ", b"a=rtpmap:", b'{"', b"[", b"]", b"{", b"}", b"\\u", b"\\ud800", b"1e999",
                "²".encode(), "٣".encode(), b"9" * 5000]


def mutate(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 3, 5, 8))):
        at = rng.randrange(len(out) + 1)
        action = rng.randrange(9)
        if action == 0 and out:
            out[min(at, len(out) - 1)] = rng.randrange(256)
        elif action == 1:
            del out[at:at + rng.choice((1, 1, 2, 4, 16, 64))]
        elif action == 2:
            out[at:at] = rng.choice(_INTERESTING)
        elif action == 3:
            other = rng.choice(seeds)
            start = rng.randrange(len(other) + 1)
            out[at:] = other[start:start + rng.randrange(1, 400)]
        elif action == 4 and out:
            start = rng.randrange(len(out))
            chunk = bytes(out[start:start + rng.randrange(1, 32)])
            out[at:at] = chunk * rng.choice((2, 3, 50, 3000))
        elif action == 5:
            digits = [index for index in range(len(out)) if 48 <= out[index] <= 57]
            if digits:
                index = rng.choice(digits)
                out[index:index + 1] = rng.choice((b"-1", b"99999999999999999999", b"0000", b"4294967296", b"",
                                                   "²".encode(), b"7" * 4400))
        elif action == 6:
            del out[at:]
        elif action == 7 and out:
            start = rng.randrange(len(out))
            out[start:start + 1] = bytes([out[start] ^ (1 << rng.randrange(8))])
        elif action == 8:
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
    return bytes(out[:70000])


@dataclass
class Crash:
    target: str
    case: int
    data: bytes
    error: str


def fuzz(target: Target, count: int, seed: int, first: int = 0) -> list[Crash]:
    """`count` mutated inputs from `seed` (case numbers from `first`); the crashes found."""
    seeds = target.seeds()
    crashes = []
    for number in range(first, first + count):
        rng = random.Random(f"{seed}:{target.name}:{number}")
        data = mutate(rng, rng.choice(seeds), seeds)
        try:
            target.run(data)
        except target.errors:
            pass
        except Exception as error:  # noqa: BLE001 (that is what is being looked for)
            crashes.append(Crash(target.name, number, data, "".join(
                traceback.format_exception_only(type(error), error)).strip()))
    return crashes
