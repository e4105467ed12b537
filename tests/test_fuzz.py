"""The mutation fuzzer (tests/fuzzing.py) over every parser of outside input, bounded and
with a fixed seed so CI runs the same cases every time; `bench/fuzz.py` runs it longer.
Each crash it found once is kept below as a regression example."""

import io
import random

import pytest
from twisted.web.test.requesthelper import DummyRequest

from tests.fuzzing import TARGETS, fuzz, mutate
from wevoip.media import sdp
from wevoip.media.webrtc.translate import Candidate
from wevoip.sip import digest
from wevoip.sip.errors import ParseError
from wevoip.sip.headers import parse_via
from wevoip.sip.message import parse
from wevoip.web.api.errors import ApiError
from wevoip.web.api.jsonio import read_json

SEED = 2026
CASES = 3000


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_every_parser_returns_or_raises_its_own_error(name):
    crashes = fuzz(TARGETS[name], CASES, SEED)
    assert crashes == [], crashes[:3]


def test_the_fuzzer_reaches_both_outcomes_of_every_parser():
    """A fuzzer whose inputs all fail (or all pass) the first check tests nothing deeper."""
    for target in TARGETS.values():
        seeds, outcomes = target.seeds(), set()
        for number in range(300):
            rng = random.Random(f"{SEED}:{target.name}:{number}")
            try:
                target.run(mutate(rng, rng.choice(seeds), seeds))
                outcomes.add("parsed")
            except target.errors:
                outcomes.add("refused")
        assert outcomes == {"parsed", "refused"}, target.name


@pytest.mark.parametrize("value, reason", [
    # bytes that are not UTF-8 in a quoted field (UnicodeEncodeError when hashed)
    (b'Digest username="alice", realm="pbx.example.com", nonce="MTIzNDU2Nzg5MA==", uri="sip:pbx.exa\xadple.com", '
     b'response="6629fae49393a05397450978507c4ef1"', "uri is not UTF-8"),
    # a response that is UTF-8 but not hexadecimal (TypeError from hmac.compare_digest)
    ('Digest username="bob",realm="r",nonce="n",uri="sip:r",response="' + "a" * 56 + 'é' + "a" * 7 + '"',
     "response is not hexadecimal"),
])
def test_digest_regressions(value, reason):
    with pytest.raises(digest.MalformedCredentials, match=reason):
        digest.parse_credentials(value if isinstance(value, str) else value.decode("utf-8", "surrogateescape"))


@pytest.mark.parametrize("body", [b"[" * 5000 + b"]" * 5000, b'{"a":' * 3000 + b"1" + b"}" * 3000])
def test_deep_json_bodies_are_400_not_a_crash(body):
    request = DummyRequest([b""])
    request.requestHeaders.setRawHeaders(b"content-type", [b"application/json"])
    request.content = io.BytesIO(body)
    with pytest.raises(ApiError) as caught:
        read_json(request)
    assert caught.value.status == 400


_SDP = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio {port} RTP/AVP {payload}\r\n"


@pytest.mark.parametrize("description", [
    _SDP.format(port="7" * 4400, payload="0"),    # int() of over 4300 digits raises ValueError
    _SDP.format(port="49170", payload="²"),       # "²".isdigit(), but int("²") raises ValueError
    _SDP.format(port="49170", payload="0") + "a=rtcp:" + "9" * 5000 + "\r\n",
])
def test_sdp_regressions(description):
    with pytest.raises(sdp.SdpError):
        parsed = sdp.parse(description.encode())
        for media in parsed.media:
            media.codecs(), media.rtcp


def test_sip_and_ice_number_regressions():
    with pytest.raises(ParseError):
        parse_via("SIP/2.0/UDP 192.0.2.1;rport=²;branch=z9hG4bK1")
    with pytest.raises(ParseError, match="Malformed status line"):
        parse("SIP/2.0 1²³ OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n"
              "To: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n".encode())
    with pytest.raises(sdp.SdpError):
        Candidate.parse("1 ² udp 2122260223 192.0.2.1 54321 typ host")
