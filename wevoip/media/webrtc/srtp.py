"""
SRTP and SRTCP (RFC 3711) for the browser leg, on libsrtp through PyPI's `pylibsrtp`.

A browser leg has one key per direction, both exported from the DTLS handshake (RFC 5764
§4.2): the exporter's bytes are client key | server key | client salt | server salt, and
whoever was the DTLS client sends with the client's half. `SrtpSession` holds one libsrtp
session for what we send and one for what we receive, and counts packets both ways (the
call record shows them, and one-way media is spotted from them).

Whatever libsrtp refuses (a bad tag, a replay, a runt) leaves as `SrtpError`; the caller
drops the datagram and the counters say why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pylibsrtp


@dataclass(frozen=True)
class Profile:
    """A DTLS-SRTP protection profile (RFC 5764 §4.1.2, RFC 7714 §14.2)."""

    name: str
    libsrtp: int
    key_length: int
    salt_length: int


PROFILES = {profile.name: profile for profile in (
    Profile("SRTP_AES128_CM_SHA1_80", pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 16, 14),
    Profile("SRTP_AES128_CM_SHA1_32", pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32, 16, 14),
    Profile("SRTP_AEAD_AES_128_GCM", pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 16, 12),
)}


class SrtpError(Exception):
    """libsrtp refused a packet: failed authentication, a replay, or not a packet at all."""


@dataclass(frozen=True)
class SrtpKeys:
    profile: Profile
    send_master: bytes   # master key followed by master salt, as libsrtp takes it
    receive_master: bytes

    @classmethod
    def from_exporter(cls, profile: Profile, material: bytes, is_client: bool) -> "SrtpKeys":
        """Split EXTRACTOR-dtls_srtp output (RFC 5764 §4.2) into our two directions."""
        k, s = profile.key_length, profile.salt_length
        if len(material) != 2 * (k + s):
            raise ValueError(f"{profile.name} needs {2 * (k + s)} bytes of keying material")
        client = material[:k] + material[2 * k:2 * k + s]
        server = material[k:2 * k] + material[2 * k + s:]
        return cls(profile, client, server) if is_client else cls(profile, server, client)


@dataclass
class Counters:
    packets: int = 0
    octets: int = 0
    refused: int = 0


@dataclass
class SrtpSession:
    keys: SrtpKeys
    sent: Counters = field(default_factory=Counters)
    received: Counters = field(default_factory=Counters)

    def __post_init__(self) -> None:
        self._tx = pylibsrtp.Session(self._policy(self.keys.send_master, pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
        self._rx = pylibsrtp.Session(self._policy(self.keys.receive_master, pylibsrtp.Policy.SSRC_ANY_INBOUND))

    def _policy(self, master: bytes, ssrc_type: int) -> pylibsrtp.Policy:
        return pylibsrtp.Policy(key=master, ssrc_type=ssrc_type, srtp_profile=self.keys.profile.libsrtp)

    def protect(self, rtp: bytes) -> bytes:
        return self._process(self._tx.protect, rtp, self.sent, outgoing=True)

    def protect_rtcp(self, rtcp: bytes) -> bytes:
        return self._process(self._tx.protect_rtcp, rtcp, self.sent, outgoing=True)

    def unprotect(self, srtp: bytes) -> bytes:
        return self._process(self._rx.unprotect, srtp, self.received, outgoing=False)

    def unprotect_rtcp(self, srtcp: bytes) -> bytes:
        return self._process(self._rx.unprotect_rtcp, srtcp, self.received, outgoing=False)

    @staticmethod
    def _process(operation, packet: bytes, counters: Counters, outgoing: bool) -> bytes:
        try:
            result = operation(packet)
        except (pylibsrtp.Error, ValueError) as error:
            counters.refused += 1
            raise SrtpError(str(error)) from None
        counters.packets += 1
        counters.octets += len(packet if outgoing else result)
        return result
