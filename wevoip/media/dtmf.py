"""
DTMF from both places a phone puts it: RFC 4733 telephone-event packets, and SIP INFO
bodies (application/dtmf-relay, the de facto Cisco format, and application/dtmf).

An RFC 4733 event is sent as several packets with the same RTP timestamp and a growing
duration, its end three times over; a digit is reported once, on the first packet of
its timestamp that arrives, however many copies or reorderings follow.
"""

from __future__ import annotations

import struct
from collections import deque

from wevoip.media.rtp import RtpPacket

EVENTS = "0123456789*#ABCD"


def event_payload(digit: str, end: bool, duration: int, volume: int = 10) -> bytes:
    """The 4 bytes of an RFC 4733 section 2.3 event."""
    return struct.pack("!BBH", EVENTS.index(digit.upper()), (0x80 if end else 0) | volume, duration)


class EventReceiver:
    """Turns telephone-event packets into digits, each once."""

    def __init__(self) -> None:
        self._seen: dict[int, deque[int]] = {}

    def receive(self, packet: RtpPacket) -> str | None:
        if len(packet.payload) < 4 or packet.payload[0] >= len(EVENTS):
            return None
        if len(self._seen) > 8 and packet.ssrc not in self._seen:
            self._seen.clear()
        seen = self._seen.setdefault(packet.ssrc, deque(maxlen=32))
        if packet.timestamp in seen:
            return None
        seen.append(packet.timestamp)
        return EVENTS[packet.payload[0]]


def info_digit(content_type: str, body: bytes) -> str:
    """
    The digit of a SIP INFO DTMF body; ValueError (the SIP layer answers 415 or 400) for
    another content type or a body without one digit.
    """
    kind = content_type.split(";", 1)[0].strip().lower()
    try:
        text = body.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ValueError("the DTMF body is not ASCII") from None
    if kind == "application/dtmf-relay":
        fields = {}
        for line in text.splitlines():
            name, _, value = line.partition("=")
            fields[name.strip().lower()] = value.strip()
        text = fields.get("signal", "")
    elif kind != "application/dtmf":
        raise ValueError(f"{content_type!r} is not a DTMF body type")
    if text in ("10", "11", "12", "13", "14", "15"):
        text = EVENTS[int(text)]
    if len(text) != 1 or text.upper() not in EVENTS:
        raise ValueError(f"{text[:20]!r} is not a DTMF digit")
    return text.upper()
