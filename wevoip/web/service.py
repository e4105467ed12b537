"""
The web listeners, serving the Klein apps the node is built with.

Connections come through a `ConnectionGate` (caps per source and in total, the descriptor
ceiling; wevoip/connections.py) and are closed after `idle_seconds` without a request.
The idle timer starts again with every byte, so a client that trickles a request's header
a byte at a time (slow-loris) would keep its connection, and its place under the caps,
for ever: a request's header must be whole within `header_seconds`, counted from the
accept for a connection's first request and from its first byte for the next ones on a
kept-alive connection (between them the idle timeout rules); else the client gets 408
and the connection is closed.
A request body is bounded as it arrives: one announced or grown beyond `MAX_BODY` (the
API's and the consoles' own limit) is answered 413 with a JSON body and the connection
closed, where twisted.web would have spooled any size to a temporary file first.
"""

from __future__ import annotations

import json

from twisted.logger import Logger
from twisted.web.http import HTTPChannel
from twisted.web.server import Request, Site

from wevoip.config import Listen
from wevoip.connections import ConnectionGate, GatedFactory
from wevoip.listeners import Listeners
from wevoip.netservice import StreamListenService
from wevoip.web.api.jsonio import MAX_BODY

log = Logger(namespace="wevoip.web")

TOO_SLOW = json.dumps({"error": "request_timeout", "message": "the request's header did not come in time"}).encode()
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


class HeaderDeadlineChannel(HTTPChannel):
    """HTTP/1.1 whose request headers must come whole within `header_seconds`."""

    header_seconds: float = 20.0
    _awaiting_header = True
    _header_deadline = None

    def connectionMade(self) -> None:  # noqa: N802 (Twisted's name)
        super().connectionMade()
        self._start_deadline()

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted's name)
        if self._awaiting_header and self._header_deadline is None:
            self._start_deadline()
        super().dataReceived(data)

    def allHeadersReceived(self) -> None:  # noqa: N802 (Twisted's name)
        self._awaiting_header = False
        self._stop_deadline()
        super().allHeadersReceived()

    def requestDone(self, request) -> None:  # noqa: N802 (Twisted's name)
        """The next request's header is awaited from its first byte (which may be buffered already)."""
        self._awaiting_header = True
        super().requestDone(request)

    def connectionLost(self, reason) -> None:  # noqa: N802 (Twisted's name)
        self._awaiting_header = False
        self._stop_deadline()
        super().connectionLost(reason)

    def _start_deadline(self) -> None:
        self._header_deadline = self.callLater(self.header_seconds, self._too_slow)

    def _stop_deadline(self) -> None:
        if self._header_deadline is not None and self._header_deadline.active():
            self._header_deadline.cancel()
        self._header_deadline = None

    def _too_slow(self) -> None:
        """408 (RFC 9110 15.5.9, with Connection: close), then the connection goes; one that
        does not read even that is aborted after `abortTimeout`, as an idle one is."""
        self._header_deadline = None
        self._awaiting_header = False
        log.info("web client {peer} cut: no whole request header within {seconds} s",
                 peer=str(self.transport.getPeer()), seconds=self.header_seconds)
        self.transport.write(
            b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(TOO_SLOW), TOO_SLOW))
        self._abortingCall = self.callLater(self.abortTimeout, self.forceAbortClient)
        self.loseConnection()


def web_service(reactor, listens: tuple[Listen, ...], resource, listeners: Listeners, *,
                gate: ConnectionGate, idle_seconds: int, header_seconds: int = 20) -> StreamListenService:
    site = Site(resource, timeout=idle_seconds, reactor=reactor)
    site.protocol = lambda: _channel(header_seconds)
    site.requestFactory = BoundedRequest
    site.displayTracebacks = False
    return StreamListenService(reactor, "web", "http", "web.http", listens, GatedFactory(site, gate, "http"),
                               listeners)


def _channel(header_seconds: float) -> HeaderDeadlineChannel:
    channel = HeaderDeadlineChannel()
    channel.header_seconds = header_seconds
    return channel
