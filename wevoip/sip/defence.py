"""
Defences against scanners, password guessing and floods, inside the SIP stack.

Sans-IO: every decision takes an address string and reads an injected clock, so the whole
policy is tested with `task.Clock`. Everything it remembers is bounded, because the source
address of a UDP packet costs an attacker nothing to forge: per-source buckets and failure
counters live in LRU tables of `max_tracked` entries, the ban list in one of `max_bans`.
A forged flood can only push out old entries, which costs a real attacker a fresh bucket,
never the server its memory.

A banned source is ignored silently (no response): an answer would confirm that the
address is being heard, and costs us a packet per packet.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class DefencePolicy:
    trusted_networks: tuple[str, ...] = ()
    ban_after_failures: int = 5
    ban_after_user_failures: int = 20
    failure_window: int = 300
    ban_seconds: int = 1800
    requests_per_second: int = 50
    request_burst: int = 200
    drop_scanners: bool = True
    scanner_user_agents: tuple[str, ...] = ("friendly-scanner", "sipvicious", "sipcli",
                                            "VaxSIPUserAgent", "sundayddr", "iWar", "sip-scan",
                                            "SIPScan", "pplsip", "smap")
    max_tracked: int = 100_000
    max_bans: int = 100_000


@dataclass
class _Window:
    start: float
    count: int
    sources: list[str] | None = None    # for a user: the last few distinct failing sources


_USER_SOURCES = 20


@dataclass
class Ban:
    until: float
    reason: str


@dataclass
class Counters:
    banned_dropped: int = 0
    rate_dropped: int = 0
    scanner_dropped: int = 0
    failures: int = 0
    bans: int = 0


class _Lru(OrderedDict):
    """An OrderedDict that forgets its least recently touched entry beyond `limit`."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def touch(self, key, value) -> None:
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.limit:
            self.popitem(last=False)


class Defence:
    def __init__(self, clock, policy: DefencePolicy):
        self.clock = clock
        self.policy = policy
        self._trusted = tuple(ipaddress.ip_network(net, strict=False) for net in policy.trusted_networks)
        self._trusted_seen: _Lru = _Lru(4096)
        self._scanners = tuple(agent.lower() for agent in policy.scanner_user_agents)
        self._bans: dict[str, Ban] = {}
        self._buckets: _Lru = _Lru(policy.max_tracked)
        self._source_failures: _Lru = _Lru(policy.max_tracked)
        self._user_failures: _Lru = _Lru(policy.max_tracked)
        self.counters = Counters()

    def trusted(self, address: str) -> bool:
        if not self._trusted:
            return False
        known = self._trusted_seen.get(address)
        if known is None:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                return False
            known = any(ip in net for net in self._trusted)
            self._trusted_seen.touch(address, known)
        return known

    def admit(self, address: str, user_agent: str = "") -> bool:
        """Whether a request from `address` is looked at at all; False means drop silently."""
        if self.trusted(address):
            return True
        now = self.clock.seconds()
        ban = self._bans.get(address)
        if ban is not None:
            if ban.until > now:
                self.counters.banned_dropped += 1
                return False
            del self._bans[address]
        if self.policy.drop_scanners and user_agent:
            agent = user_agent.lower()
            if any(scanner in agent for scanner in self._scanners):
                self.counters.scanner_dropped += 1
                return False
        return self._take_token(address, now)

    def admit_response(self, address: str) -> bool:
        """Responses cost no token (we asked for them), but a banned source stays unheard."""
        ban = self._bans.get(address)
        return ban is None or ban.until <= self.clock.seconds() or self.trusted(address)

    def _take_token(self, address: str, now: float) -> bool:
        rate, burst = self.policy.requests_per_second, self.policy.request_burst
        bucket = self._buckets.get(address)
        if bucket is None:
            tokens = burst - 1.0
        else:
            tokens = min(burst, bucket[0] + (now - bucket[1]) * rate) - 1.0
        if tokens < 0:
            self._buckets.touch(address, (tokens + 1.0, now))
            self.counters.rate_dropped += 1
            return False
        self._buckets.touch(address, (tokens, now))
        return True

    def failed(self, address: str, user: str) -> bool:
        """Count a failed authentication; True when it got `address` banned."""
        self.counters.failures += 1
        if self.trusted(address):
            return False
        now = self.clock.seconds()
        by_source = self._count(self._source_failures, address, now)
        by_user = self._count(self._user_failures, user.lower(), now, address) if user else 0
        if by_source >= self.policy.ban_after_failures:
            self.ban(address, "failed authentication")
            return True
        if by_user >= self.policy.ban_after_user_failures:
            self.ban(address, f"guessing the password of {user[:64]}")
            return True
        return False

    def succeeded(self, address: str) -> None:
        """A phone that got its password right after a typo starts afresh."""
        self._source_failures.pop(address, None)

    def _count(self, table: _Lru, key: str, now: float, source: str = "") -> int:
        window = table.get(key)
        if window is None or now - window.start >= self.policy.failure_window:
            window = _Window(now, 0, [] if source else None)
        window.count += 1
        if source and source not in window.sources:
            window.sources.append(source)
            del window.sources[:-_USER_SOURCES]
        table.touch(key, window)
        return window.count

    def user_failures(self, user: str) -> tuple[int, list[str]]:
        """Failures against `user` in the current window, and the last distinct sources of them."""
        window = self._user_failures.get(user.lower())
        if window is None or self.clock.seconds() - window.start >= self.policy.failure_window:
            return 0, []
        return window.count, list(window.sources or ())

    def under_attack(self, user: str) -> bool:
        """As many failures against one user as `ban_after_user_failures`: a distributed guess."""
        return self.user_failures(user)[0] >= self.policy.ban_after_user_failures

    def ban(self, address: str, reason: str) -> None:
        if self.trusted(address):
            return
        now = self.clock.seconds()
        if address not in self._bans and len(self._bans) >= self.policy.max_bans:
            self._expire(now)
            if len(self._bans) >= self.policy.max_bans:
                del self._bans[min(self._bans, key=lambda a: self._bans[a].until)]
        self._bans[address] = Ban(now + self.policy.ban_seconds, reason)
        self._source_failures.pop(address, None)
        self.counters.bans += 1

    def _expire(self, now: float) -> None:
        for address in [a for a, ban in self._bans.items() if ban.until <= now]:
            del self._bans[address]

    def bans(self) -> list[dict]:
        """The live ban list, for the manhole: address, seconds left and why."""
        now = self.clock.seconds()
        self._expire(now)
        return sorted(({"address": address, "seconds_left": int(ban.until - now), "reason": ban.reason}
                       for address, ban in self._bans.items()), key=lambda b: b["address"])

    def unban(self, address: str) -> bool:
        self._source_failures.pop(address, None)
        return self._bans.pop(address, None) is not None

    def clear(self) -> int:
        count = len(self._bans)
        self._bans.clear()
        self._source_failures.clear()
        self._user_failures.clear()
        return count

    def tracked(self) -> int:
        return len(self._buckets) + len(self._source_failures) + len(self._user_failures) + len(self._bans)
