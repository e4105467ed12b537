"""
The web listeners, serving the Klein apps the node is built with.

Connections come through a `ConnectionGate` (caps per source and in total, the descriptor
ceiling; wevoip/connections.py) and are closed after `idle_seconds` without a request.
A request body is bounded as it arrives: one announced or grown beyond `MAX_BODY` (the
API's and the consoles' own limit) is answered 413 with a JSON body and the connection
closed, where twisted.web would have spooled any size to a temporary file first.
"""

from __future__ import annotations

import json

from twisted.web.server import Request, Site

from wevoip.config import Listen
from wevoip.connections import ConnectionGate, GatedFactory
from wevoip.listeners import Listeners
from wevoip.netservice import StreamListenService
from wevoip.web.api.jsonio import MAX_BODY

TOO_LARGE = json.dumps({"error": "too_large", "message": f"the body is over {MAX_BODY} bytes"}).encode()


class BoundedRequest(Request):
    max_body = MAX_BODY
    _received = 0
    _refused = False

    def gotLength(self, length) -> None:  # noqa: N802 (Twisted's name)
        if length is not None and length > self.max_body:
            self._too_large()
            length = 0
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:  # noqa: N802 (Twisted's name)
        if self._refused:
            return
        self._received += len(data)
        if self._received > self.max_body:
            self._too_large()
            return
        super().handleContentChunk(data)

    def process(self) -> None:
        """A refused request is not served: its answer has gone and its body is not whole."""
        if not self._refused:
            super().process()

    def _too_large(self) -> None:
        self._refused = True
        self.channel.transport.write(
            b"HTTP/1.1 413 Content Too Large\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(TOO_LARGE), TOO_LARGE))
        self.channel.loseConnection()


def web_service(reactor, listens: tuple[Listen, ...], resource, listeners: Listeners, *,
                gate: ConnectionGate, idle_seconds: int) -> StreamListenService:
    site = Site(resource, timeout=idle_seconds, reactor=reactor)
    site.requestFactory = BoundedRequest
    site.displayTracebacks = False
    return StreamListenService(reactor, "web", "http", "web.http", listens, GatedFactory(site, gate, "http"),
                               listeners)
