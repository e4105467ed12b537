"""
The certificate TLS and WSS listeners present.

Operators configure a real one (sip.tls_certificate and sip.tls_private_key). Until they
do, the first start makes a self-signed one in the data directory and keeps it, so phones
that pin it on first use see the same certificate after a restart.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import ssl

from wevoip.config import ConfigError

SELF_SIGNED_NAME = "sip-self-signed.pem"
VALIDITY = datetime.timedelta(days=3650)


def self_signed_pem(hostname: str, now: datetime.datetime) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "WeVoIP self-signed")])
    alternatives = [x509.DNSName(hostname), x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1"))]
    certificate = (x509.CertificateBuilder()
                   .subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + VALIDITY)
                   .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
            + certificate.public_bytes(serialization.Encoding.PEM))


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".new")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)
    os.replace(partial, path)


def server_tls_options(data_dir: Path, certificate: Path | None, private_key: Path | None,
                       now: datetime.datetime | None = None) -> ssl.CertificateOptions:
    if certificate is not None and private_key is not None:
        try:
            pem = certificate.read_bytes() + b"\n" + private_key.read_bytes()
            return ssl.PrivateCertificate.loadPEM(pem).options()
        except OSError as error:
            raise ConfigError("sip.tls_certificate", f"cannot read: {error.strerror}") from None
        except Exception as error:
            raise ConfigError("sip.tls_certificate",
                              f"not a PEM certificate matching sip.tls_private_key ({error})") from None
    path = data_dir / SELF_SIGNED_NAME
    if not path.exists():
        _write_private(path, self_signed_pem(socket.getfqdn() or "wevoip.invalid",
                                             now or datetime.datetime.now(datetime.timezone.utc)))
    return ssl.PrivateCertificate.loadPEM(path.read_bytes()).options()
