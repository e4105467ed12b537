"""
Secrets at rest: what we keep instead of passwords and tokens.

SIP digest needs only HA1 = H(username:realm:password), so the SIP password itself is never
stored; web passwords get argon2id, which is slow on purpose and therefore runs in a thread;
API tokens are long random strings, so a plain SHA-256 of them is enough to look them up.
"""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from twisted.internet.threads import deferToThreadPool

_hasher = PasswordHasher()

DIGEST_ALGORITHMS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    text = f"{username}:{realm}:{password}".encode("utf-8")
    return DIGEST_ALGORITHMS[algorithm](text).hexdigest()


def sip_ha1s(username: str, realm: str, password: str) -> dict[str, str]:
    """Both digests a subscriber row keeps, one per algorithm a phone may choose."""
    return {"ha1_md5": ha1(username, realm, password, "MD5"),
            "ha1_sha256": ha1(username, realm, password, "SHA-256")}


def hash_password(reactor, password: str):
    """A Deferred firing with the argon2id hash, computed off the reactor thread."""
    return deferToThreadPool(reactor, reactor.getThreadPool(), _hasher.hash, password)


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def verify_password(reactor, stored: str, password: str):
    """A Deferred firing True or False, computed off the reactor thread."""
    return deferToThreadPool(reactor, reactor.getThreadPool(), _verify, stored, password)


def new_secret(prefix: str = "", size: int = 24) -> str:
    return prefix + secrets.token_urlsafe(size)


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()
