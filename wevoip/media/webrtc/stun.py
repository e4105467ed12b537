"""
STUN messages (RFC 5389, as RFC 8489 keeps it) as far as ICE needs them: the wire format,
XOR-MAPPED-ADDRESS, USERNAME, MESSAGE-INTEGRITY, FINGERPRINT, ERROR-CODE and the ICE
attributes of RFC 8445 §16.1.

`parse` takes a datagram and returns a `Message` or raises `StunError`; nothing else can
escape it, because every byte comes from the network. A parsed message keeps its raw bytes
and where MESSAGE-INTEGRITY and FINGERPRINT sit, since both are computed over the message
as it was sent, with the length field rewritten to end at the attribute in question.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import ipaddress
import struct
from dataclasses import dataclass, field

MAGIC_COOKIE = 0x2112A442
HEADER = struct.Struct("!HHI12s")
FINGERPRINT_XOR = 0x5354554E

BINDING = 0x001

REQUEST = 0b00
INDICATION = 0b01
SUCCESS = 0b10
ERROR = 0b11

MAPPED_ADDRESS = 0x0001
USERNAME = 0x0006
MESSAGE_INTEGRITY = 0x0008
ERROR_CODE = 0x0009
UNKNOWN_ATTRIBUTES = 0x000A
REALM = 0x0014
NONCE = 0x0015
MESSAGE_INTEGRITY_SHA256 = 0x001C
PASSWORD_ALGORITHM = 0x001D
USERHASH = 0x001E
XOR_MAPPED_ADDRESS = 0x0020
PRIORITY = 0x0024
USE_CANDIDATE = 0x0025
SOFTWARE = 0x8022
ALTERNATE_SERVER = 0x8023
FINGERPRINT = 0x8028
ICE_CONTROLLED = 0x8029
ICE_CONTROLLING = 0x802A

# Comprehension-required attributes (below 0x8000) this module understands; any other one
# in a request earns a 420 (RFC 5389 §7.3.1).
UNDERSTOOD = frozenset({MAPPED_ADDRESS, USERNAME, MESSAGE_INTEGRITY, ERROR_CODE,
                        UNKNOWN_ATTRIBUTES, REALM, NONCE, XOR_MAPPED_ADDRESS, PRIORITY,
                        USE_CANDIDATE})

REASONS = {400: "Bad Request", 401: "Unauthorized", 420: "Unknown Attribute",
           487: "Role Conflict", 500: "Server Error"}

_IPV4 = 0x01
_IPV6 = 0x02
_INTEGRITY_LENGTH = 20


class StunError(ValueError):
    """The bytes are not a well-formed STUN message."""


def looks_like_stun(data: bytes) -> bool:
    """The cheap test RFC 5389 §6 allows: top two bits zero and the magic cookie."""
    return (len(data) >= HEADER.size and data[0] < 0x40
            and data[4:8] == b"\x21\x12\xa4\x42")


def _message_type(method: int, cls: int) -> int:
    # The class bits sit at positions 4 and 8 among the method bits (RFC 5389 figure 3).
    return ((method & 0x0F80) << 2) | ((method & 0x0070) << 1) | (method & 0x000F) \
        | ((cls & 0b10) << 7) | ((cls & 0b01) << 4)


def _split_type(message_type: int) -> tuple[int, int]:
    method = ((message_type & 0x3E00) >> 2) | ((message_type & 0x00E0) >> 1) | (message_type & 0x000F)
    cls = ((message_type & 0x0100) >> 7) | ((message_type & 0x0010) >> 4)
    return method, cls


def _pad(length: int) -> int:
    return (4 - length % 4) % 4


def crc_fingerprint(data: bytes) -> int:
    return (binascii.crc32(data) ^ FINGERPRINT_XOR) & 0xFFFFFFFF


@dataclass
class Message:
    method: int
    cls: int
    transaction_id: bytes
    attributes: list[tuple[int, bytes]] = field(default_factory=list)
    # Set by `parse`: the bytes received and the offsets of MESSAGE-INTEGRITY and
    # FINGERPRINT headers (None when absent).
    raw: bytes = b""
    integrity_at: int | None = None
    fingerprint_at: int | None = None

    def get(self, attribute_type: int) -> bytes | None:
        for kind, value in self.attributes:
            if kind == attribute_type:
                return value
        return None

    def has(self, attribute_type: int) -> bool:
        return self.get(attribute_type) is not None

    def add(self, attribute_type: int, value: bytes) -> "Message":
        self.attributes.append((attribute_type, value))
        return self

    def encode(self, integrity_key: bytes | None = None, fingerprint: bool = True) -> bytes:
        """The wire form; MESSAGE-INTEGRITY (when a key is given) and FINGERPRINT go last."""
        body = b"".join(struct.pack("!HH", kind, len(value)) + value + b"\x00" * _pad(len(value))
                        for kind, value in self.attributes
                        if kind not in (MESSAGE_INTEGRITY, FINGERPRINT))
        message_type = _message_type(self.method, self.cls)
        if integrity_key is not None:
            length = len(body) + 4 + _INTEGRITY_LENGTH
            head = HEADER.pack(message_type, length, MAGIC_COOKIE, self.transaction_id)
            mac = hmac.new(integrity_key, head + body, hashlib.sha1).digest()
            body += struct.pack("!HH", MESSAGE_INTEGRITY, _INTEGRITY_LENGTH) + mac
        if fingerprint:
            head = HEADER.pack(message_type, len(body) + 8, MAGIC_COOKIE, self.transaction_id)
            body += struct.pack("!HHI", FINGERPRINT, 4, crc_fingerprint(head + body))
        return HEADER.pack(message_type, len(body), MAGIC_COOKIE, self.transaction_id) + body

    def check_integrity(self, key: bytes) -> bool:
        """Whether MESSAGE-INTEGRITY is present and is the HMAC-SHA1 of the bytes before it."""
        if self.integrity_at is None:
            return False
        covered = bytearray(self.raw[:self.integrity_at])
        struct.pack_into("!H", covered, 2, self.integrity_at + 4 + _INTEGRITY_LENGTH - HEADER.size)
        expected = hmac.new(key, bytes(covered), hashlib.sha1).digest()
        start = self.integrity_at + 4
        return hmac.compare_digest(expected, self.raw[start:start + _INTEGRITY_LENGTH])

    def check_fingerprint(self) -> bool:
        """Whether FINGERPRINT is present and is the CRC-32 of the bytes before it."""
        if self.fingerprint_at is None:
            return False
        value, = struct.unpack_from("!I", self.raw, self.fingerprint_at + 4)
        return value == crc_fingerprint(self.raw[:self.fingerprint_at])


def parse(data: bytes) -> Message:
    if not looks_like_stun(data):
        raise StunError("not a STUN message (first bits or magic cookie)")
    message_type, length, _, transaction_id = HEADER.unpack_from(data)
    if length % 4 or length != len(data) - HEADER.size:
        raise StunError(f"length field {length} does not fit a {len(data)}-byte datagram")
    method, cls = _split_type(message_type)
    message = Message(method, cls, transaction_id, raw=bytes(data))
    offset = HEADER.size
    while offset < len(data):
        if offset + 4 > len(data):
            raise StunError("truncated attribute header")
        kind, size = struct.unpack_from("!HH", data, offset)
        end = offset + 4 + size
        if end > len(data):
            raise StunError(f"attribute 0x{kind:04x} runs past the end")
        if message.fingerprint_at is not None:
            raise StunError("attribute after FINGERPRINT")
        value = bytes(data[offset + 4:end])
        if kind == FINGERPRINT:
            if size != 4:
                raise StunError("FINGERPRINT is not 4 bytes")
            message.fingerprint_at = offset
        elif message.integrity_at is not None:
            # RFC 5389 §15.4: only FINGERPRINT may follow MESSAGE-INTEGRITY; the rest is ignored.
            offset = end + _pad(size)
            continue
        elif kind == MESSAGE_INTEGRITY:
            if size != _INTEGRITY_LENGTH:
                raise StunError("MESSAGE-INTEGRITY is not 20 bytes")
            message.integrity_at = offset
        message.attributes.append((kind, value))
        offset = end + _pad(size)
    if offset != len(data):
        raise StunError("attribute padding runs past the end")
    return message


def encode_xor_address(host: str, port: int, transaction_id: bytes) -> bytes:
    address = ipaddress.ip_address(host)
    xport = port ^ (MAGIC_COOKIE >> 16)
    if address.version == 4:
        return struct.pack("!BBH", 0, _IPV4, xport) + struct.pack("!I", int(address) ^ MAGIC_COOKIE)
    mask = int.from_bytes(struct.pack("!I", MAGIC_COOKIE) + transaction_id, "big")
    return struct.pack("!BBH", 0, _IPV6, xport) + (int(address) ^ mask).to_bytes(16, "big")


def decode_xor_address(value: bytes, transaction_id: bytes) -> tuple[str, int]:
    if len(value) < 4:
        raise StunError("XOR-MAPPED-ADDRESS too short")
    _, family, xport = struct.unpack_from("!BBH", value)
    port = xport ^ (MAGIC_COOKIE >> 16)
    if family == _IPV4 and len(value) == 8:
        raw, = struct.unpack_from("!I", value, 4)
        return str(ipaddress.IPv4Address(raw ^ MAGIC_COOKIE)), port
    if family == _IPV6 and len(value) == 20:
        mask = int.from_bytes(struct.pack("!I", MAGIC_COOKIE) + transaction_id, "big")
        return str(ipaddress.IPv6Address(int.from_bytes(value[4:], "big") ^ mask)), port
    raise StunError(f"XOR-MAPPED-ADDRESS family {family} with {len(value)} bytes")


def encode_error_code(code: int, reason: str | None = None) -> bytes:
    text = (reason or REASONS.get(code, "Error")).encode()
    return struct.pack("!HBB", 0, code // 100, code % 100) + text


def decode_error_code(value: bytes) -> tuple[int, str]:
    if len(value) < 4:
        raise StunError("ERROR-CODE too short")
    _, hundreds, rest = struct.unpack_from("!HBB", value)
    return (hundreds & 0x07) * 100 + rest, value[4:].decode("utf-8", "replace")


def decode_uint(value: bytes, size: int, name: str) -> int:
    if len(value) != size:
        raise StunError(f"{name} is not {size} bytes")
    return int.from_bytes(value, "big")
