import struct
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st

from wevoip.media import g711, rtp
from wevoip.media.dtmf import EventReceiver, event_payload, info_digit

ALL_SAMPLES = np.arange(-32768, 32768, dtype="<i2").tobytes()


@pytest.mark.parametrize("codec, pcm, code", [
    (g711.PCMU, 0, 0xFF), (g711.PCMU, -1, 0x7E), (g711.PCMU, 32767, 0x80), (g711.PCMU, -32768, 0x00),
    (g711.PCMA, 0, 0xD5), (g711.PCMA, -1, 0x55), (g711.PCMA, 32767, 0xAA), (g711.PCMA, -32768, 0x2A),
])
def test_g711_reference_codes(codec, pcm, code):
    assert codec.encode(struct.pack("<h", pcm)) == bytes([code])


@pytest.mark.parametrize("codec", [g711.PCMU, g711.PCMA])
def test_g711_round_trip_error_stays_within_the_segment_step(codec):
    samples = np.frombuffer(ALL_SAMPLES, "<i2").astype(np.int32)
    back = np.frombuffer(codec.decode(codec.encode(ALL_SAMPLES)), "<i2").astype(np.int32)
    error = np.abs(back - samples)
    assert error.max() <= 1024
    assert (error[np.abs(samples) < 64] <= 8).all()
    codes = bytes(c for c in range(256) if not (codec is g711.PCMU and c == 0x7F))  # u-law's -0
    assert codec.encode(codec.decode(codes)) == codes


def test_g711_matches_audioop_bit_for_bit_where_python_still_has_it():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    assert g711.PCMU.encode(ALL_SAMPLES) == audioop.lin2ulaw(ALL_SAMPLES, 2)
    assert g711.PCMA.encode(ALL_SAMPLES) == audioop.lin2alaw(ALL_SAMPLES, 2)
    assert g711.PCMU.decode(bytes(range(256))) == audioop.ulaw2lin(bytes(range(256)), 2)
    assert g711.PCMA.decode(bytes(range(256))) == audioop.alaw2lin(bytes(range(256)), 2)


def test_rtp_parse_reads_csrcs_extensions_and_padding():
    header = struct.pack("!BBHII", 0x80 | 0x20 | 0x10 | 2, 0x80 | 8, 7, 1000, 42)
    packet = rtp.parse(header + b"\0" * 8 + struct.pack("!HH", 0xBEDE, 1) + b"\1\2\3\4" + b"audio" + b"\0\0\3")
    assert (packet.payload_type, packet.marker, packet.sequence, packet.timestamp, packet.ssrc) == (8, True, 7, 1000, 42)
    assert packet.payload == b"audio"
    assert rtp.parse(packet.serialise()) == packet


@pytest.mark.parametrize("data", [b"", b"\x80\x00", b"\x40" + b"\0" * 20, b"\x8f" + b"\0" * 20,
                                  b"\x90" + b"\0" * 12, b"\xa0" + b"\0" * 12, b"\xa0" + b"\0" * 11 + b"\x40"])
def test_rtp_parse_refuses_junk_with_value_error(data):
    with pytest.raises(ValueError):
        rtp.parse(data)


@given(st.binary(max_size=64))
def test_rtp_parse_raises_nothing_but_value_error(data):
    try:
        rtp.parse(data)
    except ValueError:
        pass


def test_the_sender_numbers_frames_and_marks_the_first_of_a_talkspurt():
    sender = rtp.RtpSender()
    first, second = sender.packet(0, b"a"), sender.packet(0, b"b")
    assert first.marker and not second.marker
    assert second.sequence == (first.sequence + 1) & 0xFFFF
    assert second.timestamp == (first.timestamp + 160) & 0xFFFFFFFF
    assert first.ssrc == second.ssrc


def test_audio_is_placed_by_timestamp_across_a_wrap_reordering_and_a_new_source():
    start = 0xFFFFFFFF - 100
    packets = [rtp.RtpPacket(0, 3, (start + 320) & 0xFFFFFFFF, 5, b"c" * 160),
               rtp.RtpPacket(0, 1, start, 5, b"a" * 160),
               rtp.RtpPacket(0, 9, start + 20_000, 5, b"x" * 160),
               rtp.RtpPacket(0, 1, 777, 6, b"d" * 160),
               rtp.RtpPacket(0, 0, (start - 160) & 0xFFFFFFFF, 5, b"z" * 160)]
    assert rtp.place(packets, 10_000) == [(480, b"c" * 160), (160, b"a" * 160), (0, b"z" * 160),
                                          (640, b"d" * 160)]
    assert rtp.place(packets, 700) == [(480, b"c" * 160), (160, b"a" * 160), (0, b"z" * 160),
                                       (640, b"d" * 60)]


def test_an_rfc4733_event_is_one_digit_however_often_it_is_sent():
    receiver = EventReceiver()
    digits = []
    for timestamp, digit in ((100, "1"), (900, "#"), (1700, "1")):
        for duration in (160, 320, 480, 480, 480):
            payload = event_payload(digit, end=duration == 480, duration=duration)
            digits.append(receiver.receive(rtp.RtpPacket(101, 1, timestamp, 9, payload)))
    assert [d for d in digits if d] == ["1", "#", "1"]
    assert receiver.receive(rtp.RtpPacket(101, 1, 5000, 9, b"\x20\0\0\0")) is None
    assert receiver.receive(rtp.RtpPacket(101, 1, 5000, 9, b"\x01")) is None


@pytest.mark.parametrize("content_type, body, digit", [
    ("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n", "5"),
    ("Application/DTMF-Relay; charset=x", b"Signal= *\nDuration= 100", "*"),
    ("application/dtmf-relay", b"Signal=11\r\nDuration=160\r\n", "#"),
    ("application/dtmf", b"#", "#"),
    ("application/dtmf", b"d\r\n", "D"),
])
def test_sip_info_bodies_give_their_digit(content_type, body, digit):
    assert info_digit(content_type, body) == digit


@pytest.mark.parametrize("content_type, body, words", [
    ("text/plain", b"5", "not a DTMF body"),
    ("application/dtmf-relay", b"Duration=160", "not a DTMF digit"),
    ("application/dtmf", b"55", "not a DTMF digit"),
    ("application/dtmf", b"\xff", "not ASCII"),
])
def test_bad_sip_info_bodies_are_refused(content_type, body, words):
    with pytest.raises(ValueError, match=words):
        info_digit(content_type, body)
