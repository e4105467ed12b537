"""
SIP over WebSocket (RFC 7118): the HTTP upgrade and the frames, with wsproto, bounded.

Each WebSocket message is one whole SIP message, so it is bounded like one: a frame
whose header announces more than `max_message` bytes, or a fragmented message whose
frames add up to more, closes the connection with 1009 (Message Too Big) as soon as the
header is read, before any of its payload is kept and before anyone is authenticated.
(Twisted's own `twisted.web.websocket` buffers a message of any announced size: one frame
announced as 2 GiB grew a node by 380 MB and kept its CPU busy.) A message in more than
`MAX_FRAGMENTS` frames is refused with 1008. The upgrade request is
parsed by wsproto's h11, which refuses a request head over 16 KiB; it must arrive, with
the TLS handshake for WSS, within the set-up time of the connection's `Lifetime`; and
RFC 7118 §4.1's `sip` subprotocol must be offered, else the answer is 400.
"""

from __future__ import annotations

from twisted.internet import interfaces, protocol
from twisted.logger import Logger
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (AcceptConnection, BytesMessage, CloseConnection, Ping, Request, TextMessage)
from wsproto.extensions import Extension
from wsproto.frame_protocol import CloseReason, Opcode, RsvBits
from wsproto.utilities import LocalProtocolError, RemoteProtocolError
from zope.interface import implementer

from wevoip.sip.flow import Flow, FlowTable
from wevoip.sip.lifetime import Lifetime, Lifetimes
from wevoip.sip.message import MAX_MESSAGE_BYTES
from wevoip.sip.transport import Receiver, deliver

log = Logger(namespace="wevoip.sip.transport_ws")

SUBPROTOCOL = "sip"
# After our close frame, how long the peer has to close before the connection is cut.
CLOSE_GRACE_SECONDS = 2.0
NO_RSV = RsvBits(False, False, False)
MAX_FRAGMENTS = 256


class MessageSizeLimit(Extension):
    """Not an extension any peer negotiates: wsproto's hook that sees every frame header
    (opcode and announced length) before the payload is read. It also bounds the frames of
    one message: endless empty fragments would cost CPU for nothing (clients send a SIP
    message as one frame, or a few)."""

    name = "x-wevoip-message-size-limit"

    def __init__(self, limit: int, max_fragments: int = MAX_FRAGMENTS):
        self.limit = limit
        self.max_fragments = max_fragments
        self._message = 0
        self._fragments = 0

    def enabled(self) -> bool:
        return True

    def offer(self) -> bool:
        return False

    def frame_inbound_header(self, proto, opcode: Opcode, rsv: RsvBits, payload_length: int) -> CloseReason | RsvBits:
        if opcode.iscontrol():
            return NO_RSV
        if opcode is not Opcode.CONTINUATION:
            self._message = 0
            self._fragments = 0
        self._message += payload_length
        self._fragments += 1
        if self._message > self.limit:
            return CloseReason.MESSAGE_TOO_BIG
        if self._fragments > self.max_fragments:
            return CloseReason.POLICY_VIOLATION
        return NO_RSV


def _http_refusal(status: int, reason: str, text: str) -> bytes:
    body = text.encode()
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n").encode() + body


@implementer(interfaces.IHandshakeListener)
class SipWebSocketProtocol(protocol.Protocol):
    """One browser's or softphone's connection, from the upgrade request to the close."""

    def __init__(self, receiver: Receiver, flows: FlowTable, transport_name: str, lifetimes: Lifetimes,
                 max_message: int):
        self.receiver = receiver
        self.flows = flows
        self.transport_name = transport_name
        self.lifetimes = lifetimes
        self.max_message = max_message
        self.ws = WSConnection(ConnectionType.SERVER)
        self.flow: Flow | None = None
        self.lifetime: Lifetime | None = None
        self.closing = False
        self._message = bytearray()
        self._cut = None

    def connectionMade(self) -> None:  # noqa: N802 (Twisted's name)
        self.lifetime = self.lifetimes.watch(self._expire)
        if self.transport_name == "wss":
            self.lifetime.await_setup("handshake")
        self.lifetime.await_setup("upgrade")

    def handshakeCompleted(self) -> None:  # noqa: N802 (Twisted's name)
        self.lifetime.done("handshake")

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted's name)
        if self.closing:
            return
        self.lifetime.received()
        try:
            self.ws.receive_data(data)
            for event in self.ws.events():
                self._event(event)
                if self.closing:
                    return
        except RemoteProtocolError as error:
            self._refuse_upgrade(f"not a WebSocket upgrade ({error})")

    def _event(self, event) -> None:
        if isinstance(event, (TextMessage, BytesMessage)):
            # One buffer of at most max_message bytes, however many (even empty) fragments.
            data = event.data
            self._message += data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
            if event.message_finished:
                message, self._message = bytes(self._message), bytearray()
                deliver(self.receiver, message, self.flow)
        elif isinstance(event, Ping):
            self.transport.write(self.ws.send(event.response()))
        elif isinstance(event, Request):
            self._upgrade(event)
        elif isinstance(event, CloseConnection):
            self._closed_by(event)

    def _upgrade(self, request: Request) -> None:
        if SUBPROTOCOL not in request.subprotocols:
            self._refuse_upgrade("the client did not offer the sip subprotocol")
            return
        self.transport.write(self.ws.send(AcceptConnection(
            subprotocol=SUBPROTOCOL, extensions=[MessageSizeLimit(self.max_message)])))
        self.lifetime.done("upgrade")
        peer, host = self.transport.getPeer(), self.transport.getHost()
        self.flow = Flow(self.transport_name, (peer.host, peer.port), (host.host, host.port), self._send, self._close)
        self.lifetime.flow = self.flow
        self.flows.add(self.flow)

    def _refuse_upgrade(self, why: str) -> None:
        self.closing = True
        self.transport.write(_http_refusal(
            400, "Bad Request", f"a SIP WebSocket needs an upgrade offering the 'sip' subprotocol ({why})"))
        self._close_then_cut()

    def _closed_by(self, event: CloseConnection) -> None:
        """The peer closed, or what it sent broke the protocol (wsproto says so with a close
        event of its own code: 1009 for a message over the limit)."""
        if self.ws.state is ConnectionState.OPEN:
            self.receiver.stats["framing_errors"] += 1
            log.info("closing {flow!r}: {code} {reason}", flow=self.flow, code=int(event.code), reason=event.reason)
        if self.ws.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            self.transport.write(self.ws.send(event.response()))
        self.closing = True
        self._close_then_cut()

    def _send(self, data: bytes) -> None:
        """Text frames for SIP (RFC 7118 §5.1 lets either be used; browsers expect text)."""
        if self.ws.state is not ConnectionState.OPEN:
            self.receiver.stats["send_errors"] += 1
            return
        try:
            message = TextMessage(data=data.decode("utf-8"))
        except UnicodeDecodeError:
            message = BytesMessage(data=data)
        self.transport.write(self.ws.send(message))

    def _close(self, code: int = CloseReason.NORMAL_CLOSURE) -> None:
        if self.closing:
            return
        self.closing = True
        try:
            self.transport.write(self.ws.send(CloseConnection(code=code)))
        except LocalProtocolError:
            pass
        self._close_then_cut()

    def _expire(self, reason: str) -> None:
        """An idle connection is told it is going away; one that never finished its set-up,
        or that makes room for another, is cut at once (its descriptor is needed now)."""
        log.debug("closing WebSocket {flow!r}: {reason}", flow=self.flow, reason=reason)
        if self.flow is not None:
            self.flow.closed = True
        if reason == "idle" and self.ws.state is ConnectionState.OPEN:
            self._close(CloseReason.GOING_AWAY)
        else:
            self.closing = True
            self.transport.abortConnection()

    def _close_then_cut(self) -> None:
        self.transport.loseConnection()
        if self._cut is None:
            self._cut = self.lifetimes.clock.callLater(CLOSE_GRACE_SECONDS, self.transport.abortConnection)

    def connectionLost(self, reason) -> None:  # noqa: N802 (Twisted's name)
        self.closing = True
        self._message = bytearray()
        if self._cut is not None and self._cut.active():
            self._cut.cancel()
        if self.lifetime is not None:
            self.lifetime.stop()
        if self.flow is not None:
            self.flow.closed = True
            self.flows.remove(self.flow)


@implementer(interfaces.IProtocolNegotiationFactory)
class SipWebSocketFactory(protocol.Factory):
    """Over TLS it names HTTP/1.1 for ALPN: browsers offer it for a `wss:` URL, and Twisted's
    TLS refuses the handshake (alert 80) when its factory names no protocol in common."""

    def __init__(self, receiver: Receiver, flows: FlowTable, transport_name: str, lifetimes: Lifetimes,
                 max_message: int = MAX_MESSAGE_BYTES):
        self.receiver = receiver
        self.flows = flows
        self.transport_name = transport_name
        self.lifetimes = lifetimes
        self.max_message = max_message

    def acceptableProtocols(self) -> list[bytes]:  # noqa: N802 (Twisted's name)
        return [b"http/1.1"]

    def buildProtocol(self, addr) -> SipWebSocketProtocol:  # noqa: N802 (Twisted's name)
        built = SipWebSocketProtocol(self.receiver, self.flows, self.transport_name, self.lifetimes,
                                     self.max_message)
        built.factory = self
        return built
