"""
DTLS-SRTP (RFC 5763, 5764): the handshake that keys SRTP for the browser leg.

pyOpenSSL runs the handshake over memory BIOs, so nothing here touches a socket: datagrams
come in through `receive`, go out through the owner's `send`, and the owner hears
`established` with the SRTP keys or `failed` with a reason.

Trust comes from SDP, not from a CA: each side's certificate is self-signed and its hash
travels in `a=fingerprint`. The peer's certificate is checked against that hash in
OpenSSL's verify callback, so a mismatch aborts the handshake with an alert, and checked
again before keys are handed out. The server asks for the client's certificate, as RFC 5763
§5 requires. A peer may give several fingerprints; RFC 8122 §5 has the certificate checked
with the strongest hash function among them that we support, so only the fingerprints of
that hash count (a weak hash that matches cannot stand in for a strong one that does not).

Retransmission: OpenSSL keeps the DTLS timer (1 s, doubling) against the wall clock; the
endpoint asks it how long is left and waits that long on the injected clock, then lets
OpenSSL resend its flight with fresh record numbers. If OpenSSL's clock disagrees (a test
clock), it reports no expiry and the endpoint waits again. Independently of that, a
handshake that has not finished `handshake_timeout` seconds after `start` fails; that
deadline is ours, on the injected clock alone.

No cookie exchange (DTLSv1_listen): the port only hands DTLS to an endpoint once ICE has
validated the source, which is the return-routability check cookies would give.
"""

from __future__ import annotations

import datetime
import enum
import hashlib
import hmac
import struct
from dataclasses import dataclass
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from wevoip.media.webrtc.srtp import PROFILES, SrtpKeys

EXPORTER_LABEL = b"EXTRACTOR-dtls_srtp"
# Offered in this order of preference; the mandatory profile (RFC 5764 §9) is among them.
OFFERED_PROFILES = (b"SRTP_AEAD_AES_128_GCM", b"SRTP_AES128_CM_SHA1_80", b"SRTP_AES128_CM_SHA1_32")
HANDSHAKE_TIMEOUT = 30.0
MTU = 1200
_RECORD_HEADER = struct.Struct("!B2sH6sH")
# The hash functions of RFC 8122's registry we support, weakest first (md2 and md5 are not).
_HASHES = {"sha-1": "sha1", "sha-224": "sha224", "sha-256": "sha256",
           "sha-384": "sha384", "sha-512": "sha512"}
_STRENGTH = {name: rank for rank, name in enumerate(_HASHES)}


class DtlsState(enum.Enum):
    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    FAILED = "failed"
    CLOSED = "closed"


@dataclass(frozen=True)
class Fingerprint:
    """An `a=fingerprint` value (RFC 8122 §5): a hash name and the certificate's digest."""

    algorithm: str
    digest: bytes

    @staticmethod
    def supported(text: str) -> bool:
        """Whether an `a=fingerprint` value names a hash function we support."""
        return text.strip().partition(" ")[0].lower() in _HASHES

    @classmethod
    def parse(cls, text: str) -> "Fingerprint":
        algorithm, _, value = text.strip().partition(" ")
        algorithm = algorithm.lower()
        if algorithm not in _HASHES:
            raise ValueError(f"fingerprint hash {algorithm!r} is not one of {', '.join(_HASHES)}")
        try:
            digest = bytes(int(part, 16) for part in value.strip().split(":"))
        except ValueError:
            raise ValueError(f"fingerprint {value!r} is not colon-separated hex") from None
        if len(digest) != hashlib.new(_HASHES[algorithm]).digest_size:
            raise ValueError(f"fingerprint is {len(digest)} bytes, not a {algorithm} digest")
        return cls(algorithm, digest)

    @classmethod
    def of(cls, certificate_der: bytes, algorithm: str = "sha-256") -> "Fingerprint":
        return cls(algorithm, hashlib.new(_HASHES[algorithm], certificate_der).digest())

    def matches(self, certificate_der: bytes) -> bool:
        return hmac.compare_digest(Fingerprint.of(certificate_der, self.algorithm).digest, self.digest)

    def __str__(self) -> str:
        return f"{self.algorithm} {self.digest.hex(':').upper()}"


def strongest(fingerprints: list[Fingerprint]) -> list[Fingerprint]:
    """The fingerprints of the strongest hash function among them (RFC 8122 §5): the only
    ones a certificate is checked against. Several of one hash stay (one per certificate)."""
    if not fingerprints:
        return []
    best = max(_STRENGTH[fingerprint.algorithm] for fingerprint in fingerprints)
    return [fingerprint for fingerprint in fingerprints if _STRENGTH[fingerprint.algorithm] == best]


@dataclass(frozen=True)
class Certificate:
    """The node's self-signed DTLS certificate, made once at start and shown in every SDP."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    fingerprint: Fingerprint

    @classmethod
    def generate(cls, common_name: str = "WeVoIP") -> "Certificate":
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                       .public_key(key.public_key()).serial_number(x509.random_serial_number())
                       .not_valid_before(now - datetime.timedelta(days=1))
                       .not_valid_after(now + datetime.timedelta(days=365))
                       .sign(key, hashes.SHA256()))
        return cls(key, certificate, Fingerprint.of(certificate.public_bytes(Encoding.DER)))


def is_client_for_setup(setup: str) -> bool:
    """Our DTLS role from our own `a=setup` value (RFC 5763 §5); actpass is settled by the answer."""
    if setup == "active":
        return True
    if setup == "passive":
        return False
    raise ValueError(f"a=setup:{setup} leaves the DTLS role open; the answer must say active or passive")


def split_records(data: bytes) -> list[bytes]:
    """DTLS records from a memory BIO's output, which runs them together."""
    records, offset = [], 0
    while offset + _RECORD_HEADER.size <= len(data):
        length = _RECORD_HEADER.unpack_from(data, offset)[-1]
        end = offset + _RECORD_HEADER.size + length
        records.append(data[offset:end])
        offset = end
    return records


def pack_datagrams(records: list[bytes], mtu: int = MTU) -> list[bytes]:
    """Whole records packed into as few datagrams as fit the MTU (RFC 6347 §4.1.1)."""
    datagrams: list[bytes] = []
    current = b""
    for record in records:
        if current and len(current) + len(record) > mtu:
            datagrams.append(current)
            current = b""
        current += record
    if current:
        datagrams.append(current)
    return datagrams


class DtlsOwner(Protocol):
    def send(self, datagram: bytes) -> None: ...

    def established(self, keys: SrtpKeys) -> None: ...

    def failed(self, reason: str) -> None: ...


class DtlsEndpoint:
    def __init__(self, clock: IReactorTime, certificate: Certificate, is_client: bool,
                 remote_fingerprints: list[Fingerprint], owner: DtlsOwner,
                 handshake_timeout: float = HANDSHAKE_TIMEOUT) -> None:
        if not remote_fingerprints:
            raise ValueError("DTLS-SRTP needs the peer's a=fingerprint to trust its certificate")
        self.clock, self.is_client, self.owner = clock, is_client, owner
        self.remote_fingerprints = list(remote_fingerprints)
        self._trusted = strongest(self.remote_fingerprints)
        self.handshake_timeout = handshake_timeout
        self.state = DtlsState.NEW
        self.keys: SrtpKeys | None = None
        self.failure: str | None = None
        self.cipher: str | None = None
        self._retransmit: IDelayedCall | None = None
        self._deadline: IDelayedCall | None = None
        self._mismatch = False
        context = SSL.Context(SSL.DTLS_METHOD)
        context.use_certificate(certificate.certificate)
        context.use_privatekey(certificate.key)
        context.set_options(SSL.OP_NO_TICKET | SSL.OP_NO_RENEGOTIATION)
        context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, self._verify)
        context.set_tlsext_use_srtp(b":".join(OFFERED_PROFILES))
        self._connection = SSL.Connection(context, None)
        if is_client:
            self._connection.set_connect_state()
        else:
            self._connection.set_accept_state()

    @property
    def role(self) -> str:
        return "client" if self.is_client else "server"

    def start(self) -> None:
        """Begin: the client sends its ClientHello, the server waits for one."""
        if self.state is not DtlsState.NEW:
            return
        self.state = DtlsState.CONNECTING
        self._deadline = self.clock.callLater(self.handshake_timeout, self._fail, "handshake timed out")
        if self.is_client:
            self._drive()

    def receive(self, datagram: bytes) -> None:
        if self.state is DtlsState.NEW:
            self.start()
        if self.state is DtlsState.CONNECTING:
            self._connection.bio_write(datagram)
            self._drive()
        elif self.state is DtlsState.CONNECTED:
            self._connection.bio_write(datagram)
            self._read_after_handshake()

    def close(self) -> None:
        """Say close_notify if we got that far, and stop every timer."""
        if self.state is DtlsState.CONNECTED:
            try:
                self._connection.shutdown()
            except SSL.Error:
                pass
            self._flush()
        self._stop_timers()
        if self.state is not DtlsState.FAILED:
            self.state = DtlsState.CLOSED

    def _verify(self, connection, certificate, error_number, depth, ok) -> bool:
        if depth > 0:
            return True
        der = certificate.to_cryptography().public_bytes(Encoding.DER)
        if self._matches(der):
            return True
        self._mismatch = True
        return False

    def _matches(self, der: bytes) -> bool:
        return any(fingerprint.matches(der) for fingerprint in self._trusted)

    def _drive(self) -> None:
        try:
            self._connection.do_handshake()
        except SSL.WantReadError:
            self._flush()
            self._arm_retransmit()
            return
        except SSL.Error as error:
            self._flush()  # the alert that tells the peer why
            self._fail("peer certificate does not match a=fingerprint" if self._mismatch
                       else f"handshake failed: {error}")
            return
        self._flush()
        self._handshake_done()

    def _handshake_done(self) -> None:
        self._stop_timers()
        peer = self._connection.get_peer_certificate(as_cryptography=True)
        der = peer.public_bytes(Encoding.DER) if peer is not None else b""
        if not self._matches(der):
            self._fail("peer certificate does not match a=fingerprint")
            return
        selected = self._connection.get_selected_srtp_profile()
        profile = PROFILES.get(selected.decode("ascii", "replace"))
        if profile is None:
            self._fail("peer negotiated no SRTP protection profile (use_srtp)")
            return
        material = self._connection.export_keying_material(
            EXPORTER_LABEL, 2 * (profile.key_length + profile.salt_length))
        self.keys = SrtpKeys.from_exporter(profile, material, self.is_client)
        self.cipher = self._connection.get_cipher_name()
        self.state = DtlsState.CONNECTED
        self.owner.established(self.keys)

    def _read_after_handshake(self) -> None:
        # No data channel rides on this DTLS (no SCTP): application data is read and
        # dropped; the peer's close_notify closes us, and a peer retransmitting its last
        # flight is answered by OpenSSL with ours.
        try:
            while True:
                self._connection.recv(MTU)
        except SSL.WantReadError:
            self._flush()
        except SSL.ZeroReturnError:
            self._stop_timers()
            self.state = DtlsState.CLOSED
        except SSL.Error:
            self._flush()

    def _flush(self) -> None:
        output = b""
        while True:
            try:
                output += self._connection.bio_read(65536)
            except SSL.WantReadError:
                break
        for datagram in pack_datagrams(split_records(output)):
            self.owner.send(datagram)

    def _arm_retransmit(self) -> None:
        if self._retransmit is not None and self._retransmit.active():
            self._retransmit.cancel()
        self._retransmit = None
        wait = self._connection.DTLSv1_get_timeout()
        if wait is not None and self.state is DtlsState.CONNECTING:
            self._retransmit = self.clock.callLater(max(wait, 0.001), self._on_retransmit_timer)

    def _on_retransmit_timer(self) -> None:
        self._retransmit = None
        try:
            self._connection.DTLSv1_handle_timeout()
        except SSL.Error as error:
            self._fail(f"handshake failed: {error}")
            return
        self._flush()
        self._arm_retransmit()

    def _fail(self, reason: str) -> None:
        if self.state in (DtlsState.FAILED, DtlsState.CLOSED):
            return
        self._stop_timers()
        self.state = DtlsState.FAILED
        self.failure = reason
        self.owner.failed(reason)

    def _stop_timers(self) -> None:
        for call in (self._retransmit, self._deadline):
            if call is not None and call.active():
                call.cancel()
        self._retransmit = self._deadline = None
