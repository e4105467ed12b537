import pytest
from hypothesis import given, strategies as st

from wevoip.media.sdp import Codec, Connection, SdpError, parse

OFFER = (
    "v=0\r\n"
    "o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n"
    "s=-\r\n"
    "c=IN IP4 192.0.2.10\r\n"
    "t=0 0\r\n"
    "a=X-vendor:keep me\r\n"
    "m=audio 49170 RTP/AVP 0 8 101\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\n"
    "a=ptime:20\r\n"
    "a=rtcp:49171\r\n"
    "a=rtcp-mux\r\n"
    "a=sendrecv\r\n"
    "a=candidate:1 1 UDP 2130706431 192.0.2.10 49170 typ host\r\n"
    "a=ice-ufrag:abcd\r\n"
    "m=image 0 udptl t38\r\n"
    "a=T38FaxVersion:0\r\n"
    "a=T38MaxBitRate:14400\r\n"
    "a=T38FaxRateManagement:transferredTCF\r\n"
)


def test_it_reads_the_parts_a_b2bua_and_relay_need():
    sdp = parse(OFFER.encode())
    assert sdp.origin.username == "alice" and sdp.origin.session_version == 2890844526
    assert sdp.connection == Connection("IN", "IP4", "192.0.2.10")
    audio, image = sdp.media
    assert (audio.media, audio.port, audio.proto, audio.formats) == ("audio", 49170, "RTP/AVP", ["0", "8", "101"])
    assert audio.codecs() == [Codec(0, "PCMU", 8000), Codec(8, "PCMA", 8000),
                              Codec(101, "telephone-event", 8000, 1, "0-16")]
    assert audio.telephone_event.payload_type == 101
    assert audio.rtcp == (49171, None) and audio.rtcp_mux
    assert audio.rtcp_destination() == ("192.0.2.10", 49171)
    assert audio.direction == "sendrecv" and audio.is_rtp and not audio.is_t38
    assert image.is_t38 and not image.is_rtp and image.codecs() == []
    assert image.t38_options() == {"T38FaxVersion": "0", "T38MaxBitRate": "14400",
                                   "T38FaxRateManagement": "transferredTCF"}
    assert sdp.attribute("X-vendor") == "keep me"


def test_it_writes_back_exactly_what_it_read():
    assert parse(OFFER).serialise() == OFFER.encode()


def test_rewriting_for_the_relay_touches_only_addresses_ports_and_ice():
    sdp = parse(OFFER)
    sdp.set_connection_address("203.0.113.5")
    sdp.media[0].port = 30000
    sdp.media[0].set_rtcp(30001)
    sdp.remove_ice()
    text = sdp.serialise().decode()
    assert "o=alice 2890844526 2890844526 IN IP4 203.0.113.5\r\n" in text
    assert "c=IN IP4 203.0.113.5\r\n" in text and "192.0.2.10" not in text
    assert "m=audio 30000 RTP/AVP 0 8 101\r\n" in text and "a=rtcp:30001\r\n" in text
    assert "candidate" not in text and "ice-ufrag" not in text
    assert "a=X-vendor:keep me\r\n" in text and "a=T38MaxBitRate:14400\r\n" in text
    assert "m=image 0 udptl t38\r\n" in text


def test_a_media_level_connection_wins_and_is_the_one_rewritten():
    sdp = parse("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\n"
                "m=audio 4000 RTP/AVP 0\r\nc=IN IP4 10.0.0.2\r\n"
                "m=audio 4002 RTP/AVP 8\r\ni=second\r\nc=IN IP6 ::1\r\n")
    assert sdp.connection is None
    assert [m.effective_connection.address for m in sdp.media] == ["10.0.0.2", "::1"]
    sdp.set_connection_address("2001:db8::7")
    assert sdp.connection is None
    assert [str(m.effective_connection) for m in sdp.media] == ["IN IP6 2001:db8::7"] * 2
    assert sdp.origin.addrtype == "IP6"


def test_hold_and_unhold_set_the_direction_of_every_stream():
    sdp = parse("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
                "a=sendonly\r\nm=audio 4000 RTP/AVP 0\r\nm=audio 4002 RTP/AVP 0\r\na=inactive\r\n")
    assert [m.direction for m in sdp.media] == ["sendonly", "inactive"]
    sdp.direction = "sendrecv"
    assert sdp.direction == "sendrecv"
    assert [m.direction for m in sdp.media] == ["sendrecv", "sendrecv"]
    assert sdp.serialise().decode().count("a=sendrecv") == 2
    sdp.media[0].direction = "recvonly"
    assert sdp.media[0].direction == "recvonly"
    with pytest.raises(ValueError):
        sdp.media[0].direction = "sideways"


def test_formats_can_be_narrowed_and_their_maps_go_with_them():
    sdp = parse(OFFER)
    sdp.media[0].formats = ["8", "101"]
    assert [c.name for c in sdp.media[0].codecs()] == ["PCMA", "telephone-event"]
    sdp.media[0].formats = ["0"]
    assert "rtpmap:101" not in sdp.serialise().decode()


def test_line_feeds_alone_are_accepted_and_written_as_crlf():
    assert parse(OFFER.replace("\r\n", "\n")).serialise() == OFFER.encode()


@pytest.mark.parametrize("text, words", [
    ("", "empty"),
    ("m=audio 4000 RTP/AVP 0\r\n", "v=0"),
    ("v=1\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\n", "v=0"),
    ("v=0\r\ns=-\r\n", "origin"),
    ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n", "session name"),
    ("v=0\r\no=- x 1 IN IP4 1.2.3.4\r\ns=-\r\n", "o="),
    ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nhello\r\n", "line 4"),
    ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nm=audio 4000 RTP/AVP 0\r\n", "no connection"),
    ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nm=audio 99999 RTP/AVP 0\r\n", "out of range"),
    ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP\r\n", "m= line"),
    ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 96\r\n", "no a=rtpmap"),
    ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 200\r\n", "0-127"),
    ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP6 1.2.3.4\r\n", "not an IP6"),
    ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN\r\n", "c=IN"),
    ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0\r\na=rtcp:x\r\n", "a=rtcp"),
    ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 96\r\na=rtpmap:96 opus\r\n", "a=rtpmap"),
])
def test_bad_descriptions_raise_a_reason_fit_for_a_488(text, words):
    with pytest.raises(SdpError, match=words):
        parse(text)


def test_bytes_that_are_not_utf8_are_refused():
    with pytest.raises(SdpError, match="UTF-8"):
        parse(b"v=0\r\no=\xff\r\n")


_value = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF, blacklist_categories=("Cs",)),
                 max_size=30)
_unknown = st.builds(lambda kind, value: f"{kind}=x-{value}" if kind == "a" else f"{kind}={value}",
                     st.sampled_from("abeiklruxyz"), _value)
_media_line = st.builds(lambda media, port, proto, fmts: f"m={media} {port} {proto} {' '.join(fmts)}",
                        st.sampled_from(["audio", "video", "image", "application"]),
                        st.integers(0, 65535), st.sampled_from(["udptl", "TCP/MSRP", "UDP/DTLS/SCTP"]),
                        st.lists(st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True), min_size=1, max_size=4))


@given(st.lists(_unknown, max_size=6),
       st.lists(st.tuples(_media_line, st.lists(_unknown, max_size=4)), max_size=3))
def test_any_description_round_trips_byte_for_byte(session_lines, media):
    lines = ["v=0", "o=- 1 2 IN IP4 198.51.100.1", "s=x", "c=IN IP4 198.51.100.1", *session_lines]
    for m, extra in media:
        lines += [m, *extra]
    text = "".join(f"{line}\r\n" for line in lines).encode()
    sdp = parse(text)
    assert sdp.serialise() == text
    assert len(sdp.media) == len(media)
    again = parse(sdp.serialise())
    assert [m.port for m in again.media] == [m.port for m in sdp.media]
