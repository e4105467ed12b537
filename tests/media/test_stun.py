"""STUN wire format against the test vectors of RFC 5769, and junk that must not escape."""

import hashlib

import pytest
from hypothesis import given, strategies as st

from tests.media.rfc5769 import (LONG_TERM_REQUEST, SAMPLE_IPV4_RESPONSE, SAMPLE_IPV6_RESPONSE,
                                 SAMPLE_REQUEST, SHORT_TERM_PASSWORD, TRANSACTION)
from wevoip.media.webrtc import stun


def test_sample_request_parses_and_both_checks_pass():
    message = stun.parse(SAMPLE_REQUEST)
    assert (message.method, message.cls) == (stun.BINDING, stun.REQUEST)
    assert message.transaction_id == TRANSACTION
    assert message.get(stun.SOFTWARE) == b"STUN test client"
    assert message.get(stun.USERNAME) == b"evtj:h6vY"
    assert stun.decode_uint(message.get(stun.PRIORITY), 4, "PRIORITY") == 0x6E0001FF
    assert message.get(stun.ICE_CONTROLLED) == bytes.fromhex("932ff9b151263b36")
    assert message.check_integrity(SHORT_TERM_PASSWORD)
    assert not message.check_integrity(b"VOkJxbRl1RmTxUk/WvJxBu")
    assert message.check_fingerprint()


def test_sample_request_is_rebuilt_byte_for_byte():
    """Our encoder, given the same attributes and key, writes RFC 5769's bytes (padding aside)."""
    message = stun.Message(stun.BINDING, stun.REQUEST, TRANSACTION)
    message.add(stun.SOFTWARE, b"STUN test client")
    message.add(stun.PRIORITY, bytes.fromhex("6e0001ff"))
    message.add(stun.ICE_CONTROLLED, bytes.fromhex("932ff9b151263b36"))
    message.add(stun.USERNAME, b"evtj:h6vY")
    encoded = message.encode(SHORT_TERM_PASSWORD)
    # The RFC pads USERNAME with spaces and we pad with zeros (RFC 8489 §14 asks for
    # zeros); the pad is covered by the HMAC and CRC, so those are compared through a
    # re-parse, whose checks the RFC's own bytes have just proven.
    expected = SAMPLE_REQUEST.replace(b"h6vY   ", b"h6vY\x00\x00\x00")
    assert encoded[:-32] == expected[:-32]
    reparsed = stun.parse(encoded)
    assert reparsed.check_integrity(SHORT_TERM_PASSWORD) and reparsed.check_fingerprint()


@pytest.mark.parametrize("sample, host", [
    (SAMPLE_IPV4_RESPONSE, "192.0.2.1"),
    (SAMPLE_IPV6_RESPONSE, "2001:db8:1234:5678:11:2233:4455:6677"),
])
def test_sample_responses_decode_the_mapped_address(sample, host):
    message = stun.parse(sample)
    assert (message.method, message.cls) == (stun.BINDING, stun.SUCCESS)
    assert message.get(stun.SOFTWARE) == b"test vector"
    assert stun.decode_xor_address(message.get(stun.XOR_MAPPED_ADDRESS), TRANSACTION) == (host, 32853)
    assert message.check_integrity(SHORT_TERM_PASSWORD)
    assert message.check_fingerprint()


@pytest.mark.parametrize("sample, host", [
    (SAMPLE_IPV4_RESPONSE, "192.0.2.1"),
    (SAMPLE_IPV6_RESPONSE, "2001:db8:1234:5678:11:2233:4455:6677"),
])
def test_sample_responses_are_rebuilt_byte_for_byte(sample, host):
    message = stun.Message(stun.BINDING, stun.SUCCESS, TRANSACTION)
    message.add(stun.SOFTWARE, b"test vector")
    message.add(stun.XOR_MAPPED_ADDRESS, stun.encode_xor_address(host, 32853, TRANSACTION))
    encoded = message.encode(SHORT_TERM_PASSWORD)
    # The RFC pads SOFTWARE with a space; with the RFC's pad byte our bytes are its bytes.
    assert encoded.replace(b"vector\x00", b"vector ")[:-32] == sample[:-32]
    assert stun.parse(encoded).check_integrity(SHORT_TERM_PASSWORD)


def test_long_term_sample_request_checks_with_the_md5_key():
    """RFC 5769 §2.4: key = MD5(username ":" realm ":" SASLprep(password))."""
    message = stun.parse(LONG_TERM_REQUEST)
    username = "\u30de\u30c8\u30ea\u30c3\u30af\u30b9"
    assert message.get(stun.USERNAME).decode() == username
    assert message.get(stun.NONCE) == b"f//499k954d6OL34oL9FSTvy64sA"
    assert message.get(stun.REALM) == b"example.org"
    # SASLprep maps "The\u00adM\u00aatr\u2168" to "TheMatrIX".
    key = hashlib.md5(f"{username}:example.org:TheMatrIX".encode()).digest()
    assert message.check_integrity(key)
    assert not message.check_integrity(hashlib.md5(b"x:example.org:TheMatrIX").digest())
    assert message.fingerprint_at is None and not message.check_fingerprint()


def test_a_flipped_bit_breaks_integrity_and_fingerprint():
    damaged = bytearray(SAMPLE_REQUEST)
    damaged[30] ^= 0x01
    message = stun.parse(bytes(damaged))
    assert not message.check_integrity(SHORT_TERM_PASSWORD)
    assert not message.check_fingerprint()


def test_error_code_round_trip():
    assert stun.decode_error_code(stun.encode_error_code(487)) == (487, "Role Conflict")
    assert stun.decode_error_code(stun.encode_error_code(401, "nope")) == (401, "nope")


@pytest.mark.parametrize("junk, reason", [
    (b"", "not a STUN"),
    (b"\x80" + SAMPLE_REQUEST[1:], "not a STUN"),
    (SAMPLE_REQUEST[:4] + b"\x00\x00\x00\x00" + SAMPLE_REQUEST[8:], "not a STUN"),
    (SAMPLE_REQUEST[:-1], "length field"),
    (SAMPLE_REQUEST[:2] + b"\x00\x04" + SAMPLE_REQUEST[4:20] + b"\x00\x06\x00\x09", "runs past"),
    (SAMPLE_REQUEST[:2] + b"\x00\x04" + SAMPLE_REQUEST[4:20] + b"\x80\x28\x00\x00", "FINGERPRINT is not"),
])
def test_junk_is_refused_with_a_reason(junk, reason):
    with pytest.raises(stun.StunError, match=reason):
        stun.parse(junk)


@given(st.binary(max_size=200))
def test_random_bytes_never_escape_as_anything_but_stun_error(data):
    try:
        message = stun.parse(data)
    except stun.StunError:
        return
    message.check_integrity(b"key")
    message.check_fingerprint()


@given(st.binary(min_size=0, max_size=120))
def test_random_bodies_behind_a_good_header_never_escape(body):
    data = bytes.fromhex("0001") + len(body).to_bytes(2, "big") + SAMPLE_REQUEST[4:20] + body
    try:
        stun.parse(data)
    except stun.StunError:
        pass
