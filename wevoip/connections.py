"""
How many connections the node accepts, from whom, and the file descriptors it keeps back.

Idle connections from a few hundred addresses once filled the process's open-file limit,
and then nothing could open a descriptor: not the web, not the store, not a phone's TLS
connection. So every stream listener (SIP over TCP, TLS, WS, WSS; the web) accepts through
a `GatedFactory`, which asks its `ConnectionGate` before anything is built for the
connection (no TLS state, no HTTP parser):

- a cap per source address (an IPv6 source counts by its /64, which one host commonly
  holds whole), except for the networks the operator trusts;
- a total cap; when it is reached the gate may ask `make_room` to close a connection that
  carries nothing (the SIP side closes its least recently active one), else it refuses;
- a descriptor ceiling: an accepted socket whose descriptor number reaches it is closed at
  once (unless room is made as above). Linux hands out the lowest free number, so a number
  that high means every lower one is taken, whatever took them (media ports, the store,
  files).

The ceilings come from RLIMIT_NOFILE, read (and raised to the hard limit) at start:
SIP stops `reserved_descriptors + web_max` below the limit, the web `reserved_descriptors`
below it, so a SIP flood leaves room for the consoles, the API and /healthz, and the
reserve is what the store, the media relay and log files open meanwhile.
"""

from __future__ import annotations

import ipaddress
import os
import resource
from collections import Counter
from typing import Callable

from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory

log = Logger(namespace="wevoip.connections")

REFUSAL_LOG_SECONDS = 60
EVICTION_SLACK = 32
# What an unlimited RLIMIT_NOFILE counts as (Linux itself stops at fs.nr_open, 2**20).
UNLIMITED_DESCRIPTORS = 1 << 20


def source_key(host: str) -> str:
    """The unit a per-source cap counts: the address, or for IPv6 its /64."""
    if ":" not in host:
        return host
    try:
        address = ipaddress.IPv6Address(host.partition("%")[0])
    except ValueError:
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network(f"{address}/64", strict=False))


def descriptor_limit() -> int:
    """RLIMIT_NOFILE, its soft limit first raised to the hard one (as servers do: the soft
    default of 1024 is for interactive programs, not for a switch holding connections)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return UNLIMITED_DESCRIPTORS
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def open_descriptors() -> int | None:
    """Descriptors open in this process now (for /healthz; it reads /proc, not for every
    accept)."""
    try:
        return len(os.listdir("/proc/self/fd")) - 1
    except OSError:
        return None


class ConnectionGate:
    """The caps of one group of listeners (all SIP stream transports, or the web)."""

    def __init__(self, clock, name: str, *, total: int, per_source: int, ceiling: int,
                 exempt: tuple[str, ...] = (), make_room: Callable[[], bool] | None = None):
        self.clock = clock
        self.name = name
        self.total = total
        self.per_source = per_source
        self.ceiling = ceiling
        self.exempt = tuple(ipaddress.ip_network(network) for network in exempt)
        self.make_room = make_room
        self.open = 0
        self.by_source: Counter[str] = Counter()
        self.by_kind: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.evicted = 0
        self._logged: dict[str, float] = {}

    def _exempt(self, host: str) -> bool:
        if not self.exempt:
            return False
        try:
            address = ipaddress.ip_address(host.partition("%")[0])
        except ValueError:
            return False
        return any(address in network for network in self.exempt)

    def admit(self, host: str, kind: str) -> bool:
        key = source_key(host)
        if self.by_source[key] >= self.per_source and not self._exempt(host):
            return self._refuse("per_source", host)
        if self.open >= self.total:
            if self.make_room is None or not self.make_room():
                return self._refuse("total", host)
            self.evicted += 1
        self.open += 1
        self.by_source[key] += 1
        self.by_kind[kind] += 1
        return True

    def release(self, host: str, kind: str) -> None:
        key = source_key(host)
        self.open -= 1
        self.by_kind[kind] -= 1
        self.by_source[key] -= 1
        if self.by_source[key] <= 0:
            del self.by_source[key]

    def within_descriptors(self, fileno: int, host: str) -> bool:
        """Whether an accepted socket's descriptor lies below the ceiling; at it, room made
        by closing an idle connection lets this one in. The closed one's descriptor is only
        freed on the next turn of the reactor, so within one burst of accepts at most
        `EVICTION_SLACK` descriptors past the ceiling are taken from the reserve this way."""
        if fileno < self.ceiling:
            return True
        if fileno < self.ceiling + EVICTION_SLACK and self.make_room is not None and self.make_room():
            self.evicted += 1
            return True
        return self._refuse("descriptors", host)

    def _refuse(self, reason: str, host: str) -> bool:
        self.refused[reason] += 1
        now = self.clock.seconds()
        if now - self._logged.get(reason, -REFUSAL_LOG_SECONDS) >= REFUSAL_LOG_SECONDS:
            self._logged[reason] = now
            log.warn("{gate} connection from {host} refused ({reason}); {count} refused so far "
                     "for that reason", gate=self.name, host=host, reason=_REASONS[reason],
                     count=self.refused[reason])
        return False

    def report(self) -> dict:
        return {"open": self.open, "by_transport": {k: n for k, n in sorted(self.by_kind.items()) if n},
                "sources": len(self.by_source), "limit": self.total, "per_source_limit": self.per_source,
                "descriptor_ceiling": self.ceiling, "refused": dict(sorted(self.refused.items())),
                "evicted": self.evicted}


_REASONS = {"per_source": "the source's cap reached", "total": "the total cap reached",
            "descriptors": "the descriptor reserve reached"}


class GatedProtocol(ProtocolWrapper):
    """Counts its connection in and out of the gate; one refused by its descriptor number is
    aborted before the protocol inside ever sees it."""

    source = ""
    refused = False

    def makeConnection(self, transport) -> None:  # noqa: N802 (Twisted's name)
        if not self.factory.gate.within_descriptors(transport.getHandle().fileno(), self.source):
            self.refused = True
            self.transport = transport
            transport.abortConnection()
            return
        super().makeConnection(transport)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted's name)
        if not self.refused:
            self.wrappedProtocol.dataReceived(data)

    def connectionLost(self, reason) -> None:  # noqa: N802 (Twisted's name)
        if self.refused:
            self.factory.unregisterProtocol(self)
            self.wrappedProtocol = None
            return
        super().connectionLost(reason)


class GatedFactory(WrappingFactory):
    """Wraps a listener's factory (for TLS, the TLS factory, so a refused connection costs
    no TLS state)."""

    protocol = GatedProtocol

    def __init__(self, wrapped, gate: ConnectionGate, kind: str):
        super().__init__(wrapped)
        self.gate = gate
        self.kind = kind

    def buildProtocol(self, addr):  # noqa: N802 (Twisted's name)
        host = getattr(addr, "host", "")
        if not self.gate.admit(host, self.kind):
            return None
        try:
            inner = self.wrappedFactory.buildProtocol(addr)
        except Exception:
            self.gate.release(host, self.kind)
            raise
        if inner is None:
            self.gate.release(host, self.kind)
            return None
        built = self.protocol(self, inner)
        built.source = host
        return built

    def registerProtocol(self, p) -> None:  # noqa: N802 (Twisted's name)
        """The gate counts; no set of protocols is kept."""

    def unregisterProtocol(self, p) -> None:  # noqa: N802 (Twisted's name)
        self.gate.release(p.source, self.kind)
