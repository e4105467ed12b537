"""
Locating SIP servers (RFC 3263 §4): from a URI's host, port and transport to an ordered
list of addresses to try, NAPTR then SRV then A/AAAA, through twisted.names.

The caller tries the targets in order and moves to the next on a timeout or a 503, which
is how a carrier with several SBCs behind one domain gets failover. `resolve` says as well
how long the answer may be kept (the least TTL of the records it used) and whether a
look-up failed (no answer, as opposed to no such record), so that a failed refresh can
keep what was resolved before.
"""

from __future__ import annotations

import ipaddress
import random
import socket
from dataclasses import dataclass

from twisted.internet import defer
from twisted.internet import error as internet_error
from twisted.names import dns, error

DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}
# NAPTR services (RFC 3263 §4.1) and the SRV prefixes (§4.2) for each transport.
NAPTR_SERVICES = {"SIP+D2U": "udp", "SIP+D2T": "tcp", "SIPS+D2T": "tls"}
SRV_PREFIXES = {"udp": "_sip._udp.", "tcp": "_sip._tcp.", "tls": "_sips._tcp."}
_NO_SUCH_RECORD = (error.DNSNameError, error.DomainError, error.AuthoritativeDomainError)
_NO_ANSWER = (error.DNSServerError, error.DNSQueryRefusedError, error.DNSNotImplementedError,
              error.DNSFormatError, defer.TimeoutError, error.DNSQueryTimeoutError, ConnectionRefusedError,
              internet_error.ConnectionRefusedError)


@dataclass(frozen=True)
class Target:
    address: str
    port: int
    transport: str


class _Trace:
    """What the look-ups of one `locate` met: the least TTL, and the first failure."""

    def __init__(self):
        self.ttl: int | None = None
        self.failure: str | None = None

    def answered(self, answers: list) -> None:
        for answer in answers:
            self.ttl = answer.ttl if self.ttl is None else min(self.ttl, answer.ttl)

    def failed(self, name: str, failure: Exception) -> None:
        if self.failure is None:
            self.failure = f"no answer from DNS for {name} ({type(failure).__name__})"


@dataclass(frozen=True)
class Located:
    targets: list[Target]
    ttl: int | None             # seconds the answer holds; None when no record was used
    failure: str | None         # a look-up got no answer: the targets may be incomplete


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


class Locator:
    def __init__(self, resolver, rng: random.Random | None = None, *, ipv6: bool = True):
        self.resolver = resolver
        self.rng = rng or random.SystemRandom()
        self.ipv6 = ipv6

    async def locate(self, host: str, port: int | None = None, transport: str | None = None,
                     *, secure: bool = False) -> list[Target]:
        return (await self.resolve(host, port, transport, secure=secure)).targets

    async def resolve(self, host: str, port: int | None = None, transport: str | None = None,
                      *, secure: bool = False) -> Located:
        trace = _Trace()
        targets = await self._locate(trace, host, port, transport, secure)
        return Located(targets, trace.ttl, trace.failure)

    async def _locate(self, trace: _Trace, host: str, port: int | None, transport: str | None,
                      secure: bool) -> list[Target]:
        if transport is None and secure:
            transport = "tls"
        if _is_ip(host):
            chosen = transport or "udp"
            return [Target(host.strip("[]"), port or DEFAULT_PORTS[chosen], chosen)]
        if port is not None:
            chosen = transport or "udp"
            return [Target(address, port, chosen) for address in await self._addresses(trace, host)]
        services = await self._naptr(trace, host, transport, secure)
        if not services:
            wanted = [transport] if transport else (["tls"] if secure else ["tls", "tcp", "udp"])
            services = [(SRV_PREFIXES[t] + host, t) for t in wanted]
        targets = []
        for name, chosen in services:
            targets += await self._srv(trace, name, chosen)
        if targets:
            return targets
        chosen = transport or ("tls" if secure else "udp")
        return [Target(address, DEFAULT_PORTS[chosen], chosen) for address in await self._addresses(trace, host)]

    async def _lookup(self, trace: _Trace, method, name: str) -> list:
        try:
            answers, _authority, _additional = await getattr(self.resolver, method)(name)
        except _NO_SUCH_RECORD:
            return []
        except _NO_ANSWER as failure:
            trace.failed(name, failure)
            return []
        trace.answered(answers)
        return answers

    async def _naptr(self, trace: _Trace, host: str, transport: str | None, secure: bool) -> list[tuple[str, str]]:
        records = [answer.payload for answer in await self._lookup(trace, "lookupNamingAuthorityPointer", host)
                   if answer.type == dns.NAPTR]
        records.sort(key=lambda record: (record.order, record.preference))
        services = []
        for record in records:
            chosen = NAPTR_SERVICES.get(record.service.string.decode("ascii", "replace").upper())
            if chosen is None or record.flags.string.lower() != b"s":
                continue
            if (transport and chosen != transport) or (secure and chosen != "tls"):
                continue
            services.append((record.replacement.name.decode(), chosen))
        return services

    async def _srv(self, trace: _Trace, name: str, transport: str) -> list[Target]:
        records = [answer.payload for answer in await self._lookup(trace, "lookupService", name)
                   if answer.type == dns.SRV]
        targets = []
        for record in self._srv_order(records):
            target = record.target.name.decode()
            if target in ("", "."):
                continue
            targets += [Target(address, record.port, transport) for address in await self._addresses(trace, target)]
        return targets

    def _srv_order(self, records: list) -> list:
        """RFC 2782: ascending priority; within one, a weighted random draw, without repeats."""
        ordered = []
        for priority in sorted({record.priority for record in records}):
            group = [record for record in records if record.priority == priority]
            while group:
                total = sum(record.weight for record in group)
                pick = self.rng.uniform(0, total) if total else 0
                running = 0
                for record in sorted(group, key=lambda r: r.weight):
                    running += record.weight
                    if running >= pick:
                        break
                ordered.append(record)
                group.remove(record)
        return ordered

    async def _addresses(self, trace: _Trace, host: str) -> list[str]:
        addresses = [answer.payload.dottedQuad() for answer in await self._lookup(trace, "lookupAddress", host)
                     if answer.type == dns.A]
        if self.ipv6:
            addresses += [socket.inet_ntop(socket.AF_INET6, answer.payload.address)
                          for answer in await self._lookup(trace, "lookupIPV6Address", host)
                          if answer.type == dns.AAAA]
        return addresses
