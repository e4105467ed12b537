"""A real DNS server on loopback, serving one zone from a dict, for tests that resolve."""

from __future__ import annotations

from twisted.internet import reactor
from twisted.names import authority, client, dns, server


class _Zone(authority.FileAuthority):
    def __init__(self, origin: str, records: dict[str, list]):
        self._given = (origin, records)
        super().__init__(origin)

    def loadFile(self, filename):  # noqa: N802 (Twisted's name)
        origin, records = self._given
        soa = dns.Record_SOA(mname=f"ns.{origin}", rname=f"hostmaster.{origin}", serial=1,
                             refresh=60, retry=60, expire=60, minimum=60, ttl=60)
        self.soa = (origin.encode(), soa)
        self.records = {origin.encode(): [soa]}
        for name, entries in records.items():
            self.records.setdefault(name.lower().encode(), []).extend(entries)


class LoopbackDNS:
    def __init__(self, origin: str, records: dict[str, list]):
        self.zone = _Zone(origin, records)
        factory = server.DNSServerFactory(authorities=[self.zone])
        self.port = reactor.listenUDP(0, dns.DNSDatagramProtocol(factory), interface="127.0.0.1")
        self.address = ("127.0.0.1", self.port.getHost().port)

    def add(self, name: str, record) -> None:
        """Publish one more record, as an operator does while the server runs."""
        self.zone.records.setdefault(name.lower().encode(), []).append(record)

    def resolver(self) -> client.Resolver:
        return client.Resolver(servers=[self.address], reactor=reactor, timeout=(2,))

    def close(self):
        return self.port.stopListening()
