"""
The ICE-lite agent of RFC 8445 §2.5: we only answer the browser's connectivity checks.

A lite agent gathers only host candidates, never sends checks and is always controlled;
the browser (a full agent, controlling) checks our one candidate and nominates a pair with
USE-CANDIDATE. What we learn from an authenticated check is where the browser's media comes
from, and so where ours must go. The browser keeps checking every few seconds as consent
to receive (RFC 7675); a pair with no good check for 30 s (the node's
`media.webrtc_consent_timeout_ms`) has lost consent. Once consent was given, a watchdog on
the clock tells the agent's owner when it stays lost, so that a browser that vanished (its
tab closed, its network gone) ends the call instead of leaving the other side in silence.

The checks a request must pass, in RFC 5389 §7.3 and §10.1.2's order: a FINGERPRINT that
matches (ICE always uses it, so without one it is not STUN and is dropped), USERNAME and
MESSAGE-INTEGRITY both present (400 otherwise), USERNAME naming our ufrag and the peer's
(401), MESSAGE-INTEGRITY keyed with our password (401), no unknown comprehension-required
attribute (420), and the peer controlling (487: a lite agent cannot take that role).
400 and 401 carry no MESSAGE-INTEGRITY, since the request proved no key.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from typing import Any, Callable

from twisted.internet.interfaces import IReactorTime

from wevoip.media.webrtc import stun

CONSENT_TIMEOUT = 30.0
MAX_VALID_ADDRESSES = 16
SOFTWARE = b"WeVoIP"
_ICE_CHARS = string.ascii_letters + string.digits + "+/"

Address = tuple[str, int]


def new_credentials() -> tuple[str, str]:
    """A fresh ufrag and password (RFC 8839 §5.4: at least 4 and 22 ice-chars)."""
    ufrag = "".join(secrets.choice(_ICE_CHARS) for _ in range(8))
    pwd = "".join(secrets.choice(_ICE_CHARS) for _ in range(24))
    return ufrag, pwd


@dataclass
class IceCounters:
    answered: int = 0
    refused: int = 0
    dropped: int = 0


@dataclass
class IceLiteAgent:
    clock: IReactorTime
    local_ufrag: str
    local_pwd: str
    remote_ufrag: str | None = None
    selected: Address | None = None
    last_consent: float | None = None
    valid: list[Address] = field(default_factory=list)
    counters: IceCounters = field(default_factory=IceCounters)
    consent_timeout: float = CONSENT_TIMEOUT
    on_consent_lost: Callable[[], None] | None = None
    consent_lost: bool = False     # the watchdog fired (and will not again)
    _watchdog: Any = field(default=None, repr=False)
    _watched_since: float = field(default=0.0, repr=False)

    def restart(self, local_ufrag: str, local_pwd: str, remote_ufrag: str | None) -> None:
        """New credentials from an ICE restart in a re-offer: the old pairs no longer count,
        and the browser has a whole timeout to check the new ones."""
        self.local_ufrag, self.local_pwd, self.remote_ufrag = local_ufrag, local_pwd, remote_ufrag
        self.selected, self.last_consent = None, None
        self.valid.clear()
        self._watched_since = self.clock.seconds()

    def stop(self) -> None:
        """The leg is closing: no more word about consent."""
        if self._watchdog is not None and self._watchdog.active():
            self._watchdog.cancel()
        self._watchdog, self.on_consent_lost = None, None

    @property
    def remote_address(self) -> Address | None:
        """Where to send media: the nominated pair, or before nomination the latest valid one."""
        if self.selected is not None:
            return self.selected
        return self.valid[-1] if self.valid else None

    def consent_expired(self) -> bool:
        return self.last_consent is None or self.clock.seconds() - self.last_consent >= self.consent_timeout

    def receive(self, data: bytes, source: Address) -> bytes | None:
        """The reply to send back to `source`, or None when the datagram earns none."""
        try:
            message = stun.parse(data)
        except stun.StunError:
            self.counters.dropped += 1
            return None
        if message.cls != stun.REQUEST or not message.check_fingerprint():
            # Indications and responses need nothing from a lite agent; a bad
            # FINGERPRINT means the datagram is not ours to read.
            self.counters.dropped += 1
            return None
        try:
            return self._answer(message, source)
        except stun.StunError:
            return self._refuse(message, 400, integrity=False)

    def _answer(self, message: stun.Message, source: Address) -> bytes:
        if message.method != stun.BINDING:
            return self._refuse(message, 400, integrity=False)
        username = message.get(stun.USERNAME)
        if username is None or message.integrity_at is None:
            return self._refuse(message, 400, integrity=False)
        if not self._username_is_ours(username) or not message.check_integrity(self.local_pwd.encode()):
            return self._refuse(message, 401, integrity=False)
        unknown = sorted({kind for kind, _ in message.attributes
                          if kind < 0x8000 and kind not in stun.UNDERSTOOD})
        if unknown:
            reply = self._error(message, 420)
            reply.add(stun.UNKNOWN_ATTRIBUTES, b"".join(kind.to_bytes(2, "big") for kind in unknown))
            self.counters.refused += 1
            return reply.encode(self.local_pwd.encode())
        if message.has(stun.ICE_CONTROLLED):
            return self._refuse(message, 487, integrity=True)
        controlling = message.get(stun.ICE_CONTROLLING)
        if controlling is not None:
            stun.decode_uint(controlling, 8, "ICE-CONTROLLING")
        self._validate(source, nominate=message.has(stun.USE_CANDIDATE) and controlling is not None)
        reply = stun.Message(stun.BINDING, stun.SUCCESS, message.transaction_id)
        reply.add(stun.XOR_MAPPED_ADDRESS, stun.encode_xor_address(source[0], source[1],
                                                                   message.transaction_id))
        reply.add(stun.SOFTWARE, SOFTWARE)
        self.counters.answered += 1
        return reply.encode(self.local_pwd.encode())

    def _username_is_ours(self, username: bytes) -> bool:
        ours, colon, theirs = username.partition(b":")
        if not colon or ours != self.local_ufrag.encode():
            return False
        return self.remote_ufrag is None or theirs == self.remote_ufrag.encode()

    def _validate(self, source: Address, nominate: bool) -> None:
        self.last_consent = self._watched_since = self.clock.seconds()
        if self._watchdog is None and self.on_consent_lost is not None and not self.consent_lost:
            self._watchdog = self.clock.callLater(self.consent_timeout, self._watch)
        if source in self.valid:
            self.valid.remove(source)
        self.valid.append(source)
        del self.valid[:-MAX_VALID_ADDRESSES]
        if nominate:
            self.selected = source

    def _watch(self) -> None:
        """One timer for the whole leg, moved on by the time of the last good check rather
        than re-armed by every check; it fires the owner's callback once."""
        left = self._watched_since + self.consent_timeout - self.clock.seconds()
        if left > 0:
            self._watchdog = self.clock.callLater(left, self._watch)
            return
        self._watchdog, self.consent_lost = None, True
        self.on_consent_lost()

    def _error(self, message: stun.Message, code: int) -> stun.Message:
        reply = stun.Message(message.method, stun.ERROR, message.transaction_id)
        reply.add(stun.ERROR_CODE, stun.encode_error_code(code))
        reply.add(stun.SOFTWARE, SOFTWARE)
        return reply

    def _refuse(self, message: stun.Message, code: int, integrity: bool) -> bytes:
        self.counters.refused += 1
        key = self.local_pwd.encode() if integrity else None
        return self._error(message, code).encode(key)
