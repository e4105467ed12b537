"""
Every socket the node listens on, as the services bound it.

The health endpoint reports these and `twistd` logs them at start-up, so an operator sees
the real address of each listener, including a port the OS chose when the config said 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.logger import Logger

log = Logger(namespace="wevoip.listeners")


@dataclass(frozen=True)
class Bound:
    service: str
    transport: str
    host: str
    port: int

    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}://{host}:{self.port}"

    def as_json(self) -> dict:
        return {"service": self.service, "transport": self.transport, "host": self.host,
                "port": self.port, "url": self.url()}


class Listeners:
    def __init__(self):
        self._bound: list[tuple[Bound, object]] = []

    def add(self, service: str, transport: str, port) -> Bound:
        """`port` is the IListeningPort (or UDP port) the reactor returned."""
        address = port.getHost()
        bound = Bound(service, transport, address.host, address.port)
        self._bound.append((bound, port))
        log.info("{service} listening on {url}", service=service, url=bound.url())
        return bound

    def remove(self, port) -> None:
        self._bound = [(bound, p) for bound, p in self._bound if p is not port]

    def all(self) -> list[Bound]:
        return [bound for bound, _ in self._bound]

    def find(self, service: str, transport: str) -> Bound:
        for bound in self.all():
            if (bound.service, bound.transport) == (service, transport):
                return bound
        raise KeyError((service, transport))
