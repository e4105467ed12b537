"""
SIP over WebSocket (RFC 7118), on Twisted's own `twisted.web.websocket`.

Each WebSocket message is one whole SIP message, so no framer is needed. RFC 7118 §4.1
requires the `sip` subprotocol to be negotiated; Twisted's `WebSocketResource` accepts
without choosing one, so `SipWebSocketResource.render_GET` does the same upgrade with
`sip` selected and refuses a client that did not offer it.
"""

from __future__ import annotations

from twisted.web._websocket_impl import _WebSocketWireProtocol, serverBootstrap
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from twisted.web.websocket import WebSocketResource
from wsproto import ConnectionType
from wsproto.events import AcceptConnection
from wsproto.events import Request as UpgradeRequest
from wsproto.handshake import H11Handshake
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from wevoip.sip.flow import Flow, FlowTable
from wevoip.sip.transport import Receiver, deliver

SUBPROTOCOL = "sip"


class SipWebSocket:
    """One browser or softphone connection; implements Twisted's WebSocketProtocol."""

    def __init__(self, receiver: Receiver, flows: FlowTable, transport_name: str,
                 remote: tuple[str, int], local: tuple[str, int]):
        self.receiver = receiver
        self.flows = flows
        self.transport_name = transport_name
        self.remote = remote
        self.local = local
        self.flow: Flow | None = None
        self.socket = None

    def negotiationStarted(self, transport) -> None:  # noqa: N802 (Twisted's name)
        self.socket = transport
        self.flow = Flow(self.transport_name, self.remote, self.local, self._send, transport.loseConnection)

    def negotiationFinished(self) -> None:  # noqa: N802 (Twisted's name)
        self.flows.add(self.flow)

    def _send(self, data: bytes) -> None:
        """Text frames for SIP (RFC 7118 §5.1 lets either be used; browsers expect text)."""
        try:
            self.socket.sendTextMessage(data.decode("utf-8"))
        except UnicodeDecodeError:
            self.socket.sendBytesMessage(data)

    def textMessageReceived(self, message: str) -> None:  # noqa: N802 (Twisted's name)
        deliver(self.receiver, message.encode("utf-8", "surrogateescape"), self.flow)

    def bytesMessageReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted's name)
        deliver(self.receiver, bytes(data), self.flow)

    def pongReceived(self, payload: bytes) -> None:  # noqa: N802 (Twisted's name)
        pass

    def connectionLost(self, reason) -> None:  # noqa: N802 (Twisted's name)
        if self.flow is not None:
            self.flow.closed = True
            self.flows.remove(self.flow)


class SipWebSocketFactory:
    def __init__(self, receiver: Receiver, flows: FlowTable, transport_name: str):
        self.receiver = receiver
        self.flows = flows
        self.transport_name = transport_name

    def buildProtocol(self, request) -> SipWebSocket:  # noqa: N802 (Twisted's name)
        peer, host = request.transport.getPeer(), request.transport.getHost()
        return SipWebSocket(self.receiver, self.flows, self.transport_name,
                            (peer.host, peer.port), (host.host, host.port))


class SipWebSocketResource(WebSocketResource):
    isLeaf = True

    def render_GET(self, request) -> bytes | int:  # noqa: N802 (Twisted's name)
        handshake = H11Handshake(ConnectionType.SERVER)
        headers = [(name, value) for name, values in request.requestHeaders.getAllRawHeaders()
                   for value in values]
        try:
            handshake.initiate_upgrade_connection(headers, request.path)
            offered = [event for event in handshake.events() if isinstance(event, UpgradeRequest)]
            if not offered or SUBPROTOCOL not in offered[0].subprotocols:
                raise LocalProtocolError("the client did not offer the sip subprotocol")
            accept = handshake.send(AcceptConnection(subprotocol=SUBPROTOCOL))
        except (RemoteProtocolError, LocalProtocolError) as error:
            request.setResponseCode(400)
            request.setHeader("content-type", "text/plain")
            return f"a SIP WebSocket needs an upgrade offering the 'sip' subprotocol ({error})".encode()
        sip_socket = self.factory.buildProtocol(request)
        wire = _WebSocketWireProtocol(handshake.connection, serverBootstrap, sip_socket)
        request.channel._protocolUpgradeForWebsockets(wire)
        request.channel.transport.write(accept)
        sip_socket.negotiationFinished()
        return NOT_DONE_YET


def websocket_site(receiver: Receiver, flows: FlowTable, transport_name: str) -> Site:
    """Every path upgrades: phones use `/`, `/ws` or whatever their provisioning says."""
    root: Resource = SipWebSocketResource(SipWebSocketFactory(receiver, flows, transport_name))
    site = Site(root)
    site.displayTracebacks = False
    return site
