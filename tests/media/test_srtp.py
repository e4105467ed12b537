"""
SRTP through pylibsrtp against RFC 3711 Appendix B.

pylibsrtp exposes neither the key derivation nor the keystream, so the vectors are used in
two steps: a small reference AES-CM and key derivation written here with `cryptography` is
first held to the RFC's own numbers (B.2 keystream, B.3 derived keys), and then libsrtp's
protected packet under the B.3 master key must be byte for byte what that reference says.
"""

import hashlib
import hmac
import struct

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings, strategies as st

from wevoip.media.webrtc.srtp import PROFILES, SrtpError, SrtpKeys, SrtpSession

AES_CM_80 = PROFILES["SRTP_AES128_CM_SHA1_80"]

# RFC 3711 B.3.
MASTER_KEY = bytes.fromhex("E1F97A0D3E018BE0D64FA32C06DE4139")
MASTER_SALT = bytes.fromhex("0EC675AD498AFEEBB6960B3AABE6")
CIPHER_KEY = bytes.fromhex("C61E7A93744F39EE10734AFE3FF7A087")
CIPHER_SALT = bytes.fromhex("30CBBC08863D8C85D49DB34A9AE1")
AUTH_KEY_START = bytes.fromhex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")


def keystream(key: bytes, iv: int, length: int) -> bytes:
    """AES in counter mode as RFC 3711 §4.1.1 defines it: AES(key, IV + block index)."""
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    blocks = b"".join(((iv + i) % (1 << 128)).to_bytes(16, "big") for i in range((length + 15) // 16))
    return (encryptor.update(blocks) + encryptor.finalize())[:length]


def derive(master_key: bytes, master_salt: bytes, label: int, length: int) -> bytes:
    """RFC 3711 §4.3.1 with key_derivation_rate 0 and packet index 0."""
    x = (label << 48) ^ int.from_bytes(master_salt, "big")
    return keystream(master_key, x << 16, length)


def reference_protect(packet: bytes) -> bytes:
    ssrc, = struct.unpack_from("!I", packet, 8)
    sequence, = struct.unpack_from("!H", packet, 2)
    cipher_key = derive(MASTER_KEY, MASTER_SALT, 0, 16)
    auth_key = derive(MASTER_KEY, MASTER_SALT, 1, 20)
    salt = int.from_bytes(derive(MASTER_KEY, MASTER_SALT, 2, 14), "big")
    iv = (salt << 16) ^ (ssrc << 64) ^ (sequence << 16)
    header, payload = packet[:12], packet[12:]
    encrypted = header + bytes(a ^ b for a, b in zip(payload, keystream(cipher_key, iv, len(payload))))
    tag = hmac.new(auth_key, encrypted + b"\x00\x00\x00\x00", hashlib.sha1).digest()[:10]
    return encrypted + tag


def rtp(sequence: int, payload: bytes = b"\xab" * 16, ssrc: int = 0xCAFEBABE) -> bytes:
    return struct.pack("!BBHII", 0x80, 0x0F, sequence, 0xDECAFBAD, ssrc) + payload


def test_reference_aes_cm_gives_rfc3711_b2_keystream():
    key = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
    offset = 0xF0F1F2F3F4F5F6F7F8F9FAFBFCFD0000
    assert keystream(key, offset, 48).hex().upper() == (
        "E03EAD0935C95E80E166B16DD92B4EB4" "D23513162B02D0F72A43A2FE4A5F97AB"
        "41E95B3BB0A2E8DD477901E4FCA894C0")
    assert keystream(key, offset + 0xFEFF, 48).hex().upper() == (
        "EC8CDF7398607CB0F2D21675EA9EA1E4" "362B7C3C6773516318A077D7FC5073AE"
        "6A2CC3787889374FBEB4C81B17BA6C44")


def test_reference_key_derivation_gives_rfc3711_b3_keys():
    assert derive(MASTER_KEY, MASTER_SALT, 0, 16) == CIPHER_KEY
    assert derive(MASTER_KEY, MASTER_SALT, 2, 14) == CIPHER_SALT
    assert derive(MASTER_KEY, MASTER_SALT, 1, 20) == AUTH_KEY_START


def test_libsrtp_protects_as_rfc3711_says_under_the_b3_master_key():
    session = SrtpSession(SrtpKeys(AES_CM_80, MASTER_KEY + MASTER_SALT, MASTER_KEY + MASTER_SALT))
    packet = rtp(0x1234)
    protected = session.protect(packet)
    assert protected == reference_protect(packet)
    assert len(protected) == len(packet) + 10
    assert session.unprotect(protected) == packet


@pytest.fixture
def pair():
    """Two ends keyed as a DTLS client and server would be from the same exporter output."""
    material = bytes(range(60))
    client = SrtpSession(SrtpKeys.from_exporter(AES_CM_80, material, is_client=True))
    server = SrtpSession(SrtpKeys.from_exporter(AES_CM_80, material, is_client=False))
    return client, server


def test_exporter_split_follows_rfc5764_layout():
    material = bytes(range(60))
    client = SrtpKeys.from_exporter(AES_CM_80, material, is_client=True)
    assert client.send_master == material[0:16] + material[32:46]
    assert client.receive_master == material[16:32] + material[46:60]
    server = SrtpKeys.from_exporter(AES_CM_80, material, is_client=False)
    assert (server.send_master, server.receive_master) == (client.receive_master, client.send_master)
    with pytest.raises(ValueError, match="needs 60 bytes"):
        SrtpKeys.from_exporter(AES_CM_80, material[:59], is_client=True)


def test_round_trip_both_ways_with_counters(pair):
    client, server = pair
    for sequence in range(5):
        assert server.unprotect(client.protect(rtp(sequence))) == rtp(sequence)
        assert client.unprotect(server.protect(rtp(sequence, ssrc=7))) == rtp(sequence, ssrc=7)
    assert (client.sent.packets, server.received.packets, server.received.octets) == (5, 5, 5 * 28)
    assert client.received.packets == 5 and client.received.refused == 0


def test_rtcp_round_trip_and_tamper(pair):
    client, server = pair
    report = bytes.fromhex("80c80006cafebabe") + bytes(20)
    protected = client.protect_rtcp(report)
    assert server.unprotect_rtcp(protected) == report
    tampered = bytearray(client.protect_rtcp(report))
    tampered[10] ^= 0x40
    with pytest.raises(SrtpError, match="authentication"):
        server.unprotect_rtcp(bytes(tampered))


def test_a_tampered_packet_is_refused_and_counted(pair):
    client, server = pair
    protected = bytearray(client.protect(rtp(1)))
    protected[14] ^= 0x01
    with pytest.raises(SrtpError, match="authentication"):
        server.unprotect(bytes(protected))
    assert server.received.refused == 1 and server.received.packets == 0


def test_a_replayed_packet_is_refused(pair):
    client, server = pair
    protected = client.protect(rtp(100))
    server.unprotect(protected)
    with pytest.raises(SrtpError, match="replay"):
        server.unprotect(protected)


def test_the_wrong_direction_key_is_refused(pair):
    client, _ = pair
    with pytest.raises(SrtpError):
        client.unprotect(client.protect(rtp(1)))


def test_the_other_profiles_round_trip():
    for name in ("SRTP_AES128_CM_SHA1_32", "SRTP_AEAD_AES_128_GCM"):
        profile = PROFILES[name]
        material = bytes(range(2 * (profile.key_length + profile.salt_length)))
        client = SrtpSession(SrtpKeys.from_exporter(profile, material, is_client=True))
        server = SrtpSession(SrtpKeys.from_exporter(profile, material, is_client=False))
        assert server.unprotect(client.protect(rtp(9))) == rtp(9)


@settings(max_examples=50)
@given(st.binary(max_size=200))
def test_junk_is_refused_never_raised_otherwise(data):
    session = SrtpSession(SrtpKeys(AES_CM_80, MASTER_KEY + MASTER_SALT, MASTER_KEY + MASTER_SALT))
    for operation in (session.unprotect, session.unprotect_rtcp):
        try:
            operation(data)
        except SrtpError:
            pass


def test_an_oversized_packet_is_refused_with_a_reason(pair):
    client, _ = pair
    with pytest.raises(SrtpError, match="too long"):
        client.protect(rtp(1, payload=bytes(1500)))
