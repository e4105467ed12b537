"""
A service that listens on stream sockets, binding while start-up may still fail loudly.

Binding happens in `privilegedStartService`, before the reactor runs, so a port that is
taken stops twistd with a message naming the configuration key instead of a node that
runs with a listener missing.
"""

from __future__ import annotations

from typing import Callable

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.error import CannotListenError

from wevoip.config import ConfigError, Listen
from wevoip.listeners import Listeners


class StreamListenService(Service):
    """Binds `factory` with listenTCP on each address, or calls `bind(listen)` when given
    (TLS, UDP and WebSocket listeners bind differently but fail the same way)."""

    def __init__(self, reactor, name: str, transport: str, key: str,
                 listens: tuple[Listen, ...], factory, listeners: Listeners,
                 *, bind: Callable[[Listen], object] | None = None):
        self.reactor = reactor
        self.name = name
        self.label = name
        self.transport = transport
        self.key = key
        self.listens = listens
        self.factory = factory
        self.listeners = listeners
        self.bind = bind or self._listen_tcp
        self._ports: list = []
        self._bound = False

    def privilegedStartService(self) -> None:  # noqa: N802 (Twisted's name)
        super().privilegedStartService()
        self._bound = True
        for index, listen in enumerate(self.listens):
            try:
                port = self.bind(listen)
            except CannotListenError as error:
                for bound in self._ports:
                    bound.stopListening()
                    self.listeners.remove(bound)
                self._ports = []
                self._bound = False
                raise ConfigError(f"{self.key}[{index}]",
                                  f"cannot listen on {listen}: {error.socketError}") from None
            self._ports.append(port)
            self.listeners.add(self.label, self.transport, port)

    def _listen_tcp(self, listen: Listen):
        return self.reactor.listenTCP(listen.port, self.factory, interface=listen.host)

    def startService(self) -> None:  # noqa: N802 (Twisted's name)
        if not self._bound:
            self.privilegedStartService()
        super().startService()

    def stopService(self):  # noqa: N802 (Twisted's name)
        super().stopService()
        ports, self._ports = self._ports, []
        self._bound = False
        for port in ports:
            self.listeners.remove(port)
        return defer.gatherResults([defer.maybeDeferred(port.stopListening) for port in ports])
