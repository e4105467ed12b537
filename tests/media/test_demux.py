"""One port, four protocols: RFC 7983's first-byte ranges and RFC 5761's RTCP types."""

import pytest
from hypothesis import given, strategies as st

from twisted.internet.task import Clock

from wevoip.media.webrtc.demux import Kind, classify
from wevoip.media.webrtc.ice import IceLiteAgent

STUN_CHECK = bytes.fromhex("000100582112a442b7e7a701bc34d686fa87dfae") + b"\x00" * 88
DTLS_CLIENT_HELLO = bytes.fromhex("16fefd000000000000000000") + b"\x00" * 40
DTLS_APPLICATION = bytes.fromhex("17fefd0001000000000001") + b"\x00" * 40
RTP_PCMU = bytes.fromhex("80000001000000a0deadbeef") + b"\xff" * 160
RTP_OPUS_MARKER = bytes.fromhex("80ef0001000000a0deadbeef") + b"\x01" * 40
RTCP_SR = bytes.fromhex("80c8000600000001") + b"\x00" * 20
RTCP_RR = bytes.fromhex("81c90007deadbeef") + b"\x00" * 24
SRTCP_BYE = bytes.fromhex("81cb0001deadbeef") + b"\x00" * 14
RTCP_PSFB = bytes.fromhex("81ce0002deadbeef") + b"\x00" * 8


@pytest.mark.parametrize("data, kind", [
    (STUN_CHECK, Kind.STUN),
    (DTLS_CLIENT_HELLO, Kind.DTLS),
    (DTLS_APPLICATION, Kind.DTLS),
    (bytes([20]) + b"\x00" * 12, Kind.DTLS),       # change_cipher_spec, lowest DTLS byte
    (bytes([63]) + b"\x00" * 12, Kind.DTLS),
    (RTP_PCMU, Kind.RTP),
    (RTP_OPUS_MARKER, Kind.RTP),                   # PT 111 with marker: 0xef, still RTP
    (RTCP_SR, Kind.RTCP),
    (RTCP_RR, Kind.RTCP),
    (SRTCP_BYE, Kind.RTCP),
    (RTCP_PSFB, Kind.RTCP),
    (b"", Kind.DROP),
    (bytes([16]) + b"\x00" * 40, Kind.DROP),       # ZRTP
    (bytes([64]) + b"\x00" * 40, Kind.DROP),       # TURN channel
    (bytes([200]) + b"\x00" * 40, Kind.DROP),      # nothing of ours
    (b"\x00\x01\x00", Kind.DROP),                  # too short for STUN
    (b"\x16\xfe\xfd", Kind.DROP),                  # too short for a DTLS record
    (b"\x80\x00\x00\x01\x00\x00\x00\xa0\xde", Kind.DROP),  # too short for RTP
])
def test_first_byte_ranges(data, kind):
    assert classify(data) is kind


@given(st.binary(max_size=64))
def test_every_datagram_gets_one_kind(data):
    kind = classify(data)
    assert kind in Kind
    if kind is Kind.STUN:
        # What the demux calls STUN goes to the ICE agent, which must cope with it.
        IceLiteAgent(Clock(), "ufrag", "password-password-pass").receive(data, ("127.0.0.1", 9))
