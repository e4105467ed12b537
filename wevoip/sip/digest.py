"""
Digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760), without I/O.

Nonces are stateless: `base64url(issued-at || salt || HMAC(secret, issued-at || salt || realm))`
with a 6-byte salt (a counter from a random start), so no two challenges share a nonce
(and its count). Any node
holding the same secret can check a nonce another node issued, and a node keeps nothing
per challenge. The secret is one row in PostgreSQL shared by every node
(see `wevoip/store/secrets.py`). A nonce older than its lifetime is answered with a fresh
challenge marked `stale=true`, which a phone follows without asking its user again.

Replay is stopped by the nonce count: for every nonce in use the highest `nc` seen is kept,
and a request must go above it. That table is bounded; when it is full the oldest entry
goes, and every nonce issued no later than the one dropped is from then on treated as
stale, so forgetting never reopens a replay window, it only costs a phone one challenge.

Unknown users are checked against a dummy HA1, so they cost the same hashing and get the
same answer as a known user with a wrong password: the response tells nothing.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import itertools
import re
import secrets
import struct
from collections import OrderedDict
from dataclasses import dataclass

ALGORITHMS = {"SHA-256": hashlib.sha256, "MD5": hashlib.md5}
# RFC 8760 §2.4: one challenge per algorithm, the preferred first; a UAC answers the
# topmost it supports, so a SHA-256 phone uses SHA-256. Stacks that fall short of that
# (sipsak and sipvicious read only the first challenge; libre 1.x, hence baresip 1.0,
# gives up on any challenge that is not MD5; pyVoIP keeps the last one) are met by
# User-Agent: `MD5_USER_AGENTS` (sip_security.digest_md5_user_agents) get MD5 alone.
OFFERED = ("SHA-256", "MD5")
MD5_USER_AGENTS = ("sipsak", "baresip v0.", "baresip v1.", "friendly-scanner")
HA1_COLUMN = {"SHA-256": "ha1_sha256", "MD5": "ha1_md5"}

MAX_HEADER = 2048
_MAC_SIZE = 16
_SALT_SIZE = 6
_HEAD = 8 + _SALT_SIZE


class Verdict(enum.Enum):
    OK = "ok"
    STALE = "stale"          # expired or unknown-to-us nonce: challenge again, stale=true
    REPLAY = "replay"        # nonce count not above the last one seen: challenge again
    BAD = "bad"              # wrong password, unknown user or malformed: a failure


@dataclass(frozen=True)
class Credentials:
    """The Authorization / Proxy-Authorization values that matter, already unquoted."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str = ""
    nc: str = ""
    cnonce: str = ""


class MalformedCredentials(ValueError):
    pass


def parse_credentials(value: str) -> Credentials:
    """Parse `Digest k=v, k="v", ...`; raises MalformedCredentials with the reason."""
    if len(value) > MAX_HEADER:
        raise MalformedCredentials("credentials too long")
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise MalformedCredentials("only the Digest scheme is accepted")
    params = _parameters(rest)
    for name, text in params.items():
        if not _is_utf8(text):
            raise MalformedCredentials(f"{name[:32]} is not UTF-8")
    try:
        credentials = Credentials(
            username=params["username"], realm=params["realm"], nonce=params["nonce"],
            uri=params["uri"], response=params["response"].lower(),
            algorithm=params.get("algorithm", "MD5").upper(), qop=params.get("qop", "").lower(),
            nc=params.get("nc", ""), cnonce=params.get("cnonce", ""))
    except KeyError as missing:
        raise MalformedCredentials(f"credentials lack {missing.args[0]}") from None
    if credentials.algorithm not in ALGORITHMS:
        raise MalformedCredentials(f"algorithm {credentials.algorithm} is not offered")
    if credentials.qop not in ("", "auth"):
        raise MalformedCredentials("only qop=auth is offered")
    if credentials.qop and not (len(credentials.nc) == 8 and _is_hex(credentials.nc)
                                and credentials.cnonce):
        raise MalformedCredentials("qop=auth needs an 8-digit hex nc and a cnonce")
    if not _is_hex(credentials.response):
        raise MalformedCredentials("response is not hexadecimal")
    return credentials


def _is_utf8(text: str) -> bool:
    """The parser keeps bytes that are not UTF-8 as lone surrogates (surrogateescape): such
    a value can be neither hashed nor looked up, so it is malformed, not a server error."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


_PARAMETER = re.compile(r'[ \t,]*([A-Za-z0-9-]+)[ \t]*=[ \t]*(?:"((?:[^"\\]|\\.)*)"|([^ \t,"]*))[ \t]*(?:,|$)')
_ESCAPE = re.compile(r"\\(.)")
_SEPARATORS_TO_END = re.compile(r"[ \t,]*\Z")


def _parameters(text: str) -> dict[str, str]:
    """auth-param list of RFC 7235: token=token or token=quoted-string, comma-separated."""
    params: dict[str, str] = {}
    position, end = 0, len(text)
    while position < end and not _SEPARATORS_TO_END.match(text, position):
        match = _PARAMETER.match(text, position)
        if match is None:
            raise MalformedCredentials(_what_is_wrong(text[position:]))
        name, quoted, plain = match.groups()
        name = name.lower()
        if name in params:
            raise MalformedCredentials(f"parameter {name} is repeated")
        if quoted is not None and "\\" in quoted:
            quoted = _ESCAPE.sub(r"\1", quoted)
        params[name] = quoted if quoted is not None else plain
        position = match.end()
    return params


def _what_is_wrong(rest: str) -> str:
    name, equals, value = rest.lstrip(" \t,").partition("=")
    if not equals:
        return "a parameter has no value"
    if not re.fullmatch(r"[A-Za-z0-9-]+", name.strip()):
        return "a parameter name is not a token"
    if value.lstrip().startswith('"'):
        return "an unterminated quoted string"
    return "a malformed parameter value"


def digest_response(algorithm: str, ha1: str, nonce: str, method: str, uri: str,
                    qop: str = "", nc: str = "", cnonce: str = "") -> str:
    """RFC 7616 §3.4.1 (and RFC 2069 when the phone sends no qop)."""
    h = ALGORITHMS[algorithm]
    ha2 = h(f"{method}:{uri}".encode("utf-8")).hexdigest()
    if qop:
        text = f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}"
    else:
        text = f"{ha1}:{nonce}:{ha2}"
    return h(text.encode("utf-8")).hexdigest()


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class DigestAuthority:
    """Issues challenges and checks credentials; the clock is injected (task.Clock in tests)."""

    def __init__(self, clock, secret: bytes, *, nonce_lifetime: int = 300,
                 tracked_nonces: int = 100_000, offered: tuple[str, ...] = OFFERED,
                 md5_user_agents: tuple[str, ...] = MD5_USER_AGENTS):
        if len(secret) < 16:
            raise ValueError("the nonce secret must be at least 16 bytes")
        self.clock = clock
        self.secret = secret
        self.nonce_lifetime = nonce_lifetime
        self.offered = offered
        self._md5_agents = tuple(agent.lower() for agent in md5_user_agents)
        self._md5_offer = ("MD5",) if "MD5" in offered else offered
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._tracked_limit = tracked_nonces
        self._floor = -1
        self._dummy_ha1 = {name: h(secrets.token_bytes(16)).hexdigest()
                           for name, h in ALGORITHMS.items()}
        # The salt only has to make nonces unique, so it counts from a random start rather
        # than asking the kernel for randomness on every challenge.
        self._salts = itertools.count(int.from_bytes(secrets.token_bytes(_SALT_SIZE), "big"))

    def _mac(self, issued: bytes, realm: str) -> bytes:
        """hmac.digest is OpenSSL's one-shot HMAC: no Python HMAC object per nonce."""
        return hmac.digest(self.secret, issued + realm.lower().encode("utf-8"), "sha256")[:_MAC_SIZE]

    def new_nonce(self, realm: str) -> str:
        salt = (next(self._salts) % (1 << 8 * _SALT_SIZE)).to_bytes(_SALT_SIZE, "big")
        head = struct.pack(">Q", int(self.clock.seconds())) + salt
        return base64.urlsafe_b64encode(head + self._mac(head, realm)).decode("ascii")

    def nonce_issued(self, nonce: str, realm: str) -> int | None:
        """When the nonce was made, if we (or a node sharing our secret) made it for realm."""
        try:
            raw = base64.urlsafe_b64decode(nonce.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            return None
        if len(raw) != _HEAD + _MAC_SIZE or not hmac.compare_digest(raw[_HEAD:], self._mac(raw[:_HEAD], realm)):
            return None
        return struct.unpack(">Q", raw[:8])[0]

    def offer(self, user_agent: str = "") -> tuple[str, ...]:
        """The algorithms to challenge a phone with: MD5 alone for the stacks that need it."""
        if user_agent and self._md5_agents:
            agent = user_agent.lower()
            if any(known in agent for known in self._md5_agents):
                return self._md5_offer
        return self.offered

    def challenges(self, realm: str, *, stale: bool = False, user_agent: str = "") -> list[str]:
        """One WWW-Authenticate / Proxy-Authenticate value per algorithm, strongest first."""
        nonce = self.new_nonce(realm)
        tail = ", stale=true" if stale else ""
        return [f"Digest realm={_quote(realm)}, nonce={_quote(nonce)}, algorithm={name}, "
                f'qop="auth"{tail}' for name in self.offer(user_agent)]

    def check(self, credentials: Credentials, method: str, user) -> Verdict:
        """`user` has `ha1_md5` and `ha1_sha256` (a subscriber), or is None for an unknown user."""
        stored = getattr(user, HA1_COLUMN[credentials.algorithm], None) if user is not None else None
        known = bool(stored)
        ha1 = stored if known else self._dummy_ha1[credentials.algorithm]
        expected = digest_response(credentials.algorithm, ha1, credentials.nonce, method,
                                   credentials.uri, credentials.qop, credentials.nc,
                                   credentials.cnonce)
        matches = hmac.compare_digest(expected, credentials.response)
        issued = self.nonce_issued(credentials.nonce, credentials.realm)
        if not (matches and known):
            return Verdict.BAD
        now = int(self.clock.seconds())
        if issued is None or issued > now + 5 or now - issued > self.nonce_lifetime:
            return Verdict.STALE
        count = int(credentials.nc, 16) if credentials.qop else 0
        return self._advance(credentials.nonce, issued, count)

    def _advance(self, nonce: str, issued: int, count: int) -> Verdict:
        last = self._counts.get(nonce)
        if last is None:
            if issued <= self._floor:
                return Verdict.STALE
            last = -1
        if count <= last:
            return Verdict.REPLAY
        self._counts[nonce] = count
        self._counts.move_to_end(nonce)
        if len(self._counts) > self._tracked_limit:
            dropped, _ = self._counts.popitem(last=False)
            self._floor = max(self._floor, self.nonce_issued_unchecked(dropped))
        return Verdict.OK

    @staticmethod
    def nonce_issued_unchecked(nonce: str) -> int:
        """Only for nonces already checked once, as every tracked one was."""
        return struct.unpack(">Q", base64.urlsafe_b64decode(nonce.encode("ascii"))[:8])[0]

    def prune(self) -> int:
        """Drop the counts of expired nonces (they are stale now); run from a timer."""
        cutoff = int(self.clock.seconds()) - self.nonce_lifetime
        expired = [nonce for nonce in self._counts if self.nonce_issued_unchecked(nonce) < cutoff]
        for nonce in expired:
            del self._counts[nonce]
        return len(expired)

    def tracked(self) -> int:
        return len(self._counts)
