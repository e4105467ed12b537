"""
RTP packets (RFC 3550) sans-IO: parse what a peer sends, build what the endpoint sends.

Everything parsed here came from the network: `parse` raises `ValueError` for anything that
is not a well-formed version 2 packet, and callers drop it.
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass

_HEADER = struct.Struct("!BBHII")
FRAME_MS = 20


@dataclass(frozen=True)
class RtpPacket:
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False

    def serialise(self) -> bytes:
        return _HEADER.pack(0x80, self.payload_type | (0x80 if self.marker else 0),
                            self.sequence, self.timestamp, self.ssrc) + self.payload


def parse(data: bytes) -> RtpPacket:
    if len(data) < 12:
        raise ValueError("shorter than an RTP header")
    first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
    if first >> 6 != 2:
        raise ValueError(f"RTP version {first >> 6}, not 2")
    start = 12 + 4 * (first & 0x0F)
    if first & 0x10:
        if len(data) < start + 4:
            raise ValueError("header extension cut short")
        start += 4 + 4 * struct.unpack_from("!H", data, start + 2)[0]
    end = len(data)
    if first & 0x20:
        if end == 0 or data[-1] == 0:
            raise ValueError("bad padding")
        end -= data[-1]
    if start > end:
        raise ValueError("header longer than the packet")
    return RtpPacket(second & 0x7F, sequence, timestamp, ssrc, bytes(data[start:end]), bool(second & 0x80))


class RtpSender:
    """One outgoing stream: random SSRC, sequence and timestamp origin (RFC 3550 5.1)."""

    def __init__(self, clock_rate: int = 8000):
        self.ssrc = secrets.randbits(32)
        self.sequence = secrets.randbits(16)
        self.timestamp = secrets.randbits(32)
        self.samples_per_frame = clock_rate * FRAME_MS // 1000
        self._talkspurt = True

    def packet(self, payload_type: int, payload: bytes) -> RtpPacket:
        """The next 20 ms frame; the first after a pause carries the marker bit."""
        packet = RtpPacket(payload_type, self.sequence, self.timestamp, self.ssrc, payload,
                           marker=self._talkspurt)
        self._talkspurt = False
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + self.samples_per_frame) & 0xFFFFFFFF
        return packet

    def event(self, payload_type: int, payload: bytes, start: bool) -> RtpPacket:
        """An RFC 4733 event packet: all of one event share the timestamp of its start."""
        packet = RtpPacket(payload_type, self.sequence, self.timestamp, self.ssrc, payload, marker=start)
        self.sequence = (self.sequence + 1) & 0xFFFF
        return packet

    def skip(self, samples: int) -> None:
        """Time passed without audio (after an event); the next frame starts a talkspurt."""
        self.timestamp = (self.timestamp + samples) & 0xFFFFFFFF
        self._talkspurt = True


def place(packets: list[RtpPacket], max_samples: int) -> list[tuple[int, bytes]]:
    """
    Where each received packet's audio (one byte a sample, as G.711) goes in a recording, by its RTP timestamp: so
    reordering, duplicates and jitter cost nothing and a lost packet leaves silence in its
    place instead of shifting what follows. Packets are given in arrival order.

    Each SSRC (a restarted stream, a switched source) is a segment placed after the last,
    in the order they first arrived. A timestamp further than `max_samples` from its
    segment's first packet is a peer's nonsense and is dropped, as is audio past the end.
    """
    segments: dict[int, list[RtpPacket]] = {}
    for packet in packets:
        segments.setdefault(packet.ssrc, []).append(packet)
    placed = []
    base = 0
    for segment in segments.values():
        reference = segment[0].timestamp
        deltas = []
        for packet in segment:
            delta = (packet.timestamp - reference) & 0xFFFFFFFF
            delta = delta - 0x100000000 if delta >= 0x80000000 else delta
            if -max_samples < delta < max_samples:
                deltas.append((delta, packet.payload))
        if not deltas:
            continue
        low = min(delta for delta, _ in deltas)
        end = base
        for delta, payload in deltas:
            position = base + delta - low
            if position < max_samples:
                payload = payload[:max_samples - position]
                placed.append((position, payload))
                end = max(end, position + len(payload))
        base = end
    return placed
