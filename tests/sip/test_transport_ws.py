"""SIP over WebSocket, on an in-memory transport with wsproto as the client: a frame
announced over the SIP message limit is refused from its header (1009) before its payload
is kept, so are fragments adding up past it; the `sip` subprotocol is required; the upgrade
must come in time (task.Clock); and a normal message still gets through."""

import struct
from collections import Counter

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage
from wsproto.frame_protocol import CloseReason

from wevoip.sip.flow import FlowTable
from wevoip.sip.lifetime import Lifetimes, Timeouts
from wevoip.sip.message import MAX_MESSAGE_BYTES
from wevoip.sip.transport_ws import MAX_FRAGMENTS, SipWebSocketFactory

OPTIONS = ("OPTIONS sip:ping@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/WS x.invalid;branch=z9hG4bK1\r\n"
           "From: <sip:t@x.invalid>;tag=1\r\nTo: <sip:ping@127.0.0.1>\r\nCall-ID: ws1\r\n"
           "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")


class Core:
    """What the transport hands messages to: here it keeps them."""

    def __init__(self):
        self.stats = Counter()
        self.received = []

    def receive(self, data, flow):
        self.received.append((data, flow))


class Peer:
    def __init__(self, clock=None, transport_name="ws"):
        self.clock = clock or Clock()
        self.core = Core()
        self.flows = FlowTable()
        self.lifetimes = Lifetimes(self.clock, Timeouts(idle=100, tls_handshake=5, ws_upgrade=8))
        factory = SipWebSocketFactory(self.core, self.flows, transport_name, self.lifetimes)
        self.protocol = factory.buildProtocol(None)
        self.transport = StringTransport(peerAddress=_Address("192.0.2.7", 40000),
                                         hostAddress=_Address("127.0.0.1", 8080))
        self.protocol.makeConnection(self.transport)
        self.client = WSConnection(ConnectionType.CLIENT)

    def upgrade(self, subprotocols=("sip",)):
        self.protocol.dataReceived(self.client.send(Request(host="x.invalid", target="/",
                                                            subprotocols=list(subprotocols))))
        return self.answer()

    def answer(self):
        data = self.transport.value()
        self.transport.clear()
        if data.startswith(b"HTTP/1.1 400"):
            return data
        self.client.receive_data(data)
        return list(self.client.events())


class _Address:
    def __init__(self, host, port):
        self.host, self.port = host, port


def frame_header(opcode: int, length: int, fin: bool = True) -> bytes:
    """A client frame's header (masked, key zero so the payload goes as it is)."""
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        head = struct.pack("!BB", first, 0x80 | length)
    elif length < 65536:
        head = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, length)
    return head + b"\0\0\0\0"


def test_a_sip_message_goes_both_ways():
    peer = Peer()
    [accepted] = peer.upgrade()
    assert isinstance(accepted, AcceptConnection) and accepted.subprotocol == "sip"
    peer.protocol.dataReceived(peer.client.send(TextMessage(data=OPTIONS)))
    [(data, flow)] = peer.core.received
    assert data == OPTIONS.encode() and flow.transport == "ws" and flow.remote == ("192.0.2.7", 40000)
    assert peer.flows.find("ws", "192.0.2.7", 40000) is flow
    flow.send(b"SIP/2.0 200 OK\r\n\r\n")
    [reply] = peer.answer()
    assert reply.data == "SIP/2.0 200 OK\r\n\r\n"


def test_a_frame_announced_as_two_gib_is_refused_from_its_header():
    peer = Peer()
    peer.upgrade()
    peer.protocol.dataReceived(frame_header(0x1, 2 << 30) + b"x" * 65536)
    [closed] = peer.answer()
    assert isinstance(closed, CloseConnection) and closed.code == CloseReason.MESSAGE_TOO_BIG
    assert peer.transport.disconnecting and peer.core.stats["framing_errors"] == 1
    for _ in range(100):  # what keeps coming is dropped, not kept
        peer.protocol.dataReceived(b"x" * 65536)
    assert peer.transport.value() == b"" and peer.core.received == []
    peer.clock.advance(2)
    assert peer.protocol.closing


def test_fragments_adding_up_past_the_limit_are_refused():
    peer = Peer()
    peer.upgrade()
    half = MAX_MESSAGE_BYTES // 2 + 1
    peer.protocol.dataReceived(frame_header(0x1, half, fin=False) + b"a" * half)
    assert peer.answer() == [] and not peer.transport.disconnecting
    peer.protocol.dataReceived(frame_header(0x0, half, fin=True))
    [closed] = peer.answer()
    assert closed.code == CloseReason.MESSAGE_TOO_BIG and peer.core.received == []


def test_empty_fragments_keep_nothing_and_endless_ones_are_refused():
    peer = Peer()
    peer.upgrade()
    peer.protocol.dataReceived(frame_header(0x1, 0, fin=False) + frame_header(0x0, 0, fin=False) * 200)
    assert len(peer.protocol._message) == 0 and not peer.transport.disconnecting
    peer.protocol.dataReceived(frame_header(0x0, len(OPTIONS)) + OPTIONS.encode())
    assert [data for data, _ in peer.core.received] == [OPTIONS.encode()]
    peer.protocol.dataReceived(frame_header(0x1, 0, fin=False) + frame_header(0x0, 0, fin=False) * MAX_FRAGMENTS)
    [closed] = peer.answer()
    assert closed.code == CloseReason.POLICY_VIOLATION and peer.transport.disconnecting


def test_a_message_of_exactly_the_limit_in_fragments_passes():
    peer = Peer()
    peer.upgrade()
    body = "a" * (MAX_MESSAGE_BYTES - 10)
    peer.protocol.dataReceived(frame_header(0x1, 5, fin=False) + body[:5].encode()
                               + frame_header(0x0, len(body) - 5) + body[5:].encode())
    assert [data for data, _ in peer.core.received] == [body.encode()]


def test_an_upgrade_without_the_sip_subprotocol_gets_400():
    peer = Peer()
    answer = peer.upgrade(subprotocols=("chat",))
    assert answer.startswith(b"HTTP/1.1 400") and b"'sip' subprotocol" in answer
    assert peer.transport.disconnecting and len(peer.flows) == 0


def test_a_request_that_is_not_an_upgrade_gets_400():
    peer = Peer()
    peer.protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert peer.transport.value().startswith(b"HTTP/1.1 400") and peer.transport.disconnecting


def test_an_oversized_upgrade_request_is_refused():
    peer = Peer()
    peer.protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"p" * 20000 + b"\r\n")
    assert peer.transport.value().startswith(b"HTTP/1.1 400") and peer.transport.disconnecting


def test_an_upgrade_that_does_not_come_in_time_ends_the_connection():
    slow = Peer()
    slow.protocol.dataReceived(b"GET / HTTP/1.1\r\n")
    slow.clock.advance(8)
    assert slow.protocol.closing and slow.lifetimes.closed["upgrade"] == 1
    quick = Peer()
    quick.upgrade()
    quick.clock.advance(50)
    assert not quick.protocol.closing


def test_a_secure_websocket_must_also_finish_its_tls_handshake_in_time():
    peer = Peer(transport_name="wss")
    peer.clock.advance(5)
    assert peer.protocol.closing and peer.lifetimes.closed["handshake"] == 1


def test_an_idle_websocket_is_told_it_is_going_away():
    peer = Peer()
    peer.upgrade()
    peer.clock.advance(100)
    [closed] = peer.answer()
    assert closed.code == CloseReason.GOING_AWAY and peer.transport.disconnecting
    assert peer.lifetimes.closed["idle"] == 1 and peer.flows.connections()[0].closed
