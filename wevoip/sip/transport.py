"""
UDP, TCP and TLS: thin protocol classes between sockets and the SIP core.

They only frame and hand over: a datagram is one message; a stream goes through the
sans-IO `StreamFramer`, whose RFC 5626 pings are answered here with a pong. Whatever a
peer sends, nothing raises out of these classes: a framing error closes that connection
and is counted, and anything unexpected is logged and counted. An accepted connection is
watched by a `Lifetime` (sip/lifetime.py): its TLS handshake must end in time, and it is
closed once idle with nothing through it; connections the node opens itself are not.
"""

from __future__ import annotations

import socket

from typing import Protocol as TypingProtocol

from twisted.internet import defer, interfaces, protocol, ssl
from twisted.logger import Logger
from zope.interface import implementer

from wevoip.sip.flow import Flow, FlowTable
from wevoip.sip.framing import PING, PONG, FramingError, StreamFramer
from wevoip.sip.lifetime import Lifetime, Lifetimes

log = Logger(namespace="wevoip.sip.transport")


class Receiver(TypingProtocol):
    """What transports hand messages to (the SIP core)."""

    stats: dict

    def receive(self, data: bytes, flow: Flow) -> None: ...


def deliver(receiver: Receiver, data: bytes, flow: Flow) -> None:
    """The one place a transport calls the core; a bug there must not kill the socket."""
    try:
        receiver.receive(data, flow)
    except Exception:
        receiver.stats["internal_errors"] += 1
        log.failure("SIP core failed on a message from {flow!r}", flow=flow)


RECEIVE_BUFFER = 4 << 20


class SipDatagramProtocol(protocol.DatagramProtocol):
    def __init__(self, receiver: Receiver, flows: FlowTable):
        self.receiver = receiver
        self.flows = flows
        self._local: tuple[str, int] = ("", 0)

    def startProtocol(self) -> None:  # noqa: N802 (Twisted's name)
        # A burst (every phone re-registering after an outage, a load test) must wait in the
        # kernel while the reactor is busy, not be dropped; the kernel caps this at rmem_max.
        self.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        address = self.transport.getHost()
        self._local = (address.host, address.port)
        family = 6 if ":" in address.host else 4
        self.flows.add_datagram_socket(family, self._local, self._write)

    def _write(self, data: bytes, remote: tuple[str, int]) -> None:
        if self.transport is None:
            # The port closed (shutdown) while a response was still on its way out.
            self.receiver.stats["send_errors"] += 1
            return
        try:
            self.transport.write(data, remote)
        except OSError as error:
            self.receiver.stats["send_errors"] += 1
            log.debug("UDP send to {remote} failed: {error}", remote=remote, error=error)

    def datagramReceived(self, data: bytes, address) -> None:  # noqa: N802 (Twisted's name)
        if not data.strip(b"\r\n\x00"):
            return
        remote = (address[0], address[1])
        deliver(self.receiver, data, Flow("udp", remote, self._local, lambda out: self._write(out, remote)))


@implementer(interfaces.IHandshakeListener)
class SipStreamProtocol(protocol.Protocol):
    def __init__(self, receiver: Receiver, flows: FlowTable, transport_name: str,
                 on_connected: defer.Deferred | None = None, lifetimes: Lifetimes | None = None):
        self.receiver = receiver
        self.flows = flows
        self.transport_name = transport_name
        self.on_connected = on_connected
        self.lifetimes = lifetimes
        self.framer = StreamFramer()
        self.flow: Flow | None = None
        self.lifetime: Lifetime | None = None

    def connectionMade(self) -> None:  # noqa: N802 (Twisted's name)
        peer, host = self.transport.getPeer(), self.transport.getHost()
        self.flow = Flow(self.transport_name, (peer.host, peer.port), (host.host, host.port),
                         self.transport.write, self.transport.loseConnection)
        self.flows.add(self.flow)
        if self.lifetimes is not None:
            self.lifetime = self.lifetimes.watch(self._expire)
            self.lifetime.flow = self.flow
            if self.transport_name == "tls":
                self.lifetime.await_setup("handshake")
        if self.on_connected is not None:
            self.on_connected.callback(self.flow)

    def handshakeCompleted(self) -> None:  # noqa: N802 (Twisted's name)
        if self.lifetime is not None:
            self.lifetime.done("handshake")

    def _expire(self, reason: str) -> None:
        """Cut at once: nothing is waiting to be sent on an idle connection, and a TLS close
        would wait for the peer's close_notify, which an attacker never sends."""
        log.debug("closing {flow!r}: {reason}", flow=self.flow, reason=reason)
        self.flow.closed = True
        self.transport.abortConnection()

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted's name)
        if self.lifetime is not None:
            self.lifetime.received()
        try:
            items = self.framer.feed(data)
        except FramingError as error:
            self.receiver.stats["framing_errors"] += 1
            log.info("closing {flow!r}: {reason}", flow=self.flow, reason=error.reason)
            self.flow.close()
            return
        for item in items:
            if item == PING:
                self.transport.write(PONG)
            else:
                deliver(self.receiver, item, self.flow)

    def connectionLost(self, reason) -> None:  # noqa: N802 (Twisted's name)
        if self.lifetime is not None:
            self.lifetime.stop()
        if self.flow is not None:
            self.flow.closed = True
            self.flows.remove(self.flow)


class SipStreamFactory(protocol.ClientFactory):
    """Builds the protocol for accepted connections (watched by `lifetimes`), or for one
    outgoing connection when `connected` is given (it fires with the flow, or fails with
    the reason)."""

    def __init__(self, receiver: Receiver, flows: FlowTable, transport_name: str,
                 connected: defer.Deferred | None = None, lifetimes: Lifetimes | None = None):
        self.receiver = receiver
        self.flows = flows
        self.transport_name = transport_name
        self.connected = connected
        self.lifetimes = lifetimes

    def buildProtocol(self, addr) -> SipStreamProtocol:  # noqa: N802 (Twisted's name)
        built = SipStreamProtocol(self.receiver, self.flows, self.transport_name, self.connected, self.lifetimes)
        built.factory = self
        return built

    def clientConnectionFailed(self, connector, reason) -> None:  # noqa: N802 (Twisted's name)
        if self.connected is not None and not self.connected.called:
            self.connected.errback(reason)


async def connect(reactor, receiver: Receiver, flows: FlowTable, transport: str, host: str, port: int,
                  *, server_name: str | None = None, timeout: float = 10.0) -> Flow:
    """A flow to (transport, host, port): the live connection if there is one, else a new
    TCP or TLS connection, kept in the flow table like an incoming one.

    TLS verifies the peer's certificate against the system trust store and `server_name`
    (the carrier's host name, RFC 5922) through service-identity; a peer that fails the
    check is disconnected before any SIP is written to it."""
    existing = flows.find(transport, host, port)
    if existing is not None:
        return existing
    connected: defer.Deferred = defer.Deferred()
    factory = SipStreamFactory(receiver, flows, transport, connected)
    if transport == "tls":
        reactor.connectSSL(host, port, factory, ssl.optionsForClientTLS(server_name or host), timeout=timeout)
    elif transport == "tcp":
        reactor.connectTCP(host, port, factory, timeout=timeout)
    else:
        raise ValueError(f"cannot open a {transport} connection")
    return await connected
