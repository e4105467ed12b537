"""
Telling apart what arrives on the one port a browser uses for everything (BUNDLE with
rtcp-mux): RFC 7983 §7 sorts by the first byte, and RFC 5761 §4 tells RTCP from RTP by the
second, because RTCP packet types 192-223 never clash with the RTP payload types a
multiplexed session may use (0-63 and 96-127, with or without the marker bit).

Everything outside the ranges (ZRTP, TURN channels, noise) is `Kind.DROP`.
"""

from __future__ import annotations

import enum


class Kind(enum.Enum):
    STUN = "stun"
    DTLS = "dtls"
    RTP = "rtp"
    RTCP = "rtcp"
    DROP = "drop"


def classify(data: bytes) -> Kind:
    if not data:
        return Kind.DROP
    first = data[0]
    if first <= 3:
        return Kind.STUN if len(data) >= 20 else Kind.DROP
    if 20 <= first <= 63:
        return Kind.DTLS if len(data) >= 13 else Kind.DROP
    if 128 <= first <= 191:
        if len(data) < 8:
            return Kind.DROP
        return Kind.RTCP if 192 <= data[1] <= 223 else Kind.RTP if len(data) >= 12 else Kind.DROP
    return Kind.DROP
