"""The SIP service's real listeners on loopback (IPv4 and IPv6): UDP, TCP with RFC 5626
keep-alives, TLS with the self-signed certificate, WebSocket subprotocol negotiation,
connection reuse through the flow table, and outgoing TLS verified by service-identity."""

import socket

import pytest
import pytest_twisted
import treq
from twisted.internet import defer, protocol, reactor, ssl
from twisted.internet.endpoints import SSL4ClientEndpoint, TCP4ClientEndpoint
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.task import deferLater

from wevoip.config import ConfigError, parse_config
from wevoip.listeners import Listeners
from wevoip.sip.message import Headers, Request, parse
from wevoip.sip.service import SipService
from wevoip.sip.transport import connect
from wevoip.sip.uri import parse_uri


def options(transport="UDP", host="127.0.0.1", branch="z9hG4bKt1"):
    return (f"OPTIONS sip:ping@{host} SIP/2.0\r\nVia: SIP/2.0/{transport} {host}:9;branch={branch};rport\r\n"
            f"From: <sip:t@{host}>;tag=1\r\nTo: <sip:ping@{host}>\r\nCall-ID: {branch}\r\n"
            f"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()


def has_ipv6():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.fixture
def sip(tmp_path):
    v6 = ', "[::1]:0"' if has_ipv6() else ""
    config = parse_config(f'[node]\ndata_dir = "data"\n[sip]\nudp = ["127.0.0.1:0"{v6}]\ntcp = ["127.0.0.1:0"{v6}]\n'
                          f'tls = ["127.0.0.1:0"]\nws = ["127.0.0.1:0"]\nwss = ["127.0.0.1:0"]\n', tmp_path)
    listeners = Listeners()
    service = SipService(reactor, config, listeners)
    service.privilegedStartService()
    service.startService()
    yield service, listeners
    pytest_twisted.blockon(defer.maybeDeferred(service.stopService))


def port_of(listeners, transport, host="127.0.0.1"):
    return next(b.port for b in listeners.all() if b.transport == transport and b.host == host)


class Datagrams(protocol.DatagramProtocol):
    def __init__(self):
        self.received = defer.DeferredQueue()

    def datagramReceived(self, data, address):  # noqa: N802
        self.received.put((data, address))


@pytest_twisted.ensureDeferred
async def test_udp_on_ipv4_and_ipv6(sip):
    service, listeners = sip
    hosts = ["127.0.0.1"] + (["::1"] if has_ipv6() else [])
    for host in hosts:
        client = Datagrams()
        port = reactor.listenUDP(0, client, interface=host)
        try:
            literal = f"[{host}]" if ":" in host else host
            port.write(options(host=literal), (host, port_of(listeners, "udp", host)))
            data, _ = await client.received.get()
            response = parse(data)
            assert response.status == 200 and response.top_via.rport == port.getHost().port
        finally:
            await port.stopListening()
    assert service.core.stats["options"] == len(hosts)


class Stream(protocol.Protocol):
    def __init__(self):
        self.data = b""
        self.arrived = defer.DeferredQueue()
        self.lost = defer.Deferred()

    def dataReceived(self, data):  # noqa: N802
        self.data += data
        self.arrived.put(data)

    def connectionLost(self, reason):  # noqa: N802
        self.lost.callback(reason.value)

    async def until(self, predicate):
        while not predicate(self.data):
            await self.arrived.get()


async def stream_client(port, tls_options=None):
    client = Stream()
    factory = protocol.Factory.forProtocol(lambda: client)
    endpoint = (SSL4ClientEndpoint(reactor, "127.0.0.1", port, tls_options) if tls_options
                else TCP4ClientEndpoint(reactor, "127.0.0.1", port))
    await endpoint.connect(factory)
    return client


@pytest_twisted.ensureDeferred
async def test_tcp_answers_pings_frames_split_messages_and_reuses_the_connection(sip):
    service, listeners = sip
    client = await stream_client(port_of(listeners, "tcp"))
    client.transport.write(b"\r\n\r\n")
    await client.until(lambda data: data == b"\r\n")
    message = options("TCP")
    client.transport.write(message[:30])
    client.transport.write(message[30:] + options("TCP", branch="z9hG4bKt2"))
    await client.until(lambda data: data.count(b"SIP/2.0 200 OK") == 2)
    client_port = client.transport.getHost().port
    flow = service.flows.find("tcp", "127.0.0.1", client_port)
    assert flow is not None and flow.reliable
    request = Request("MESSAGE", parse_uri("sip:t@127.0.0.1"), Headers([
        ("From", "<sip:server@127.0.0.1>;tag=s"), ("To", "<sip:t@127.0.0.1>"), ("Call-ID", "m"),
        ("CSeq", "1 MESSAGE")]), b"hello")
    service.core.request(request, flow)
    await client.until(lambda data: b"MESSAGE sip:t@127.0.0.1" in data)
    assert client.data.endswith(b"\r\n\r\nhello") and b"Via: SIP/2.0/TCP 127.0.0.1:" in client.data
    client.transport.write(b"OPTIONS sip:x SIP/2.0\r\nContent-Length: nope\r\n\r\n")
    reason = await client.lost
    assert isinstance(reason, (ConnectionDone, ConnectionLost)) and service.core.stats["framing_errors"] == 1
    assert service.flows.find("tcp", "127.0.0.1", client_port) is None


@pytest_twisted.ensureDeferred
async def test_tls_with_the_self_signed_certificate_and_verified_outgoing_tls(sip, tmp_path):
    service, listeners = sip
    pem = (tmp_path / "data" / "sip-self-signed.pem").read_bytes()
    trust = ssl.Certificate.loadPEM(pem)
    port = port_of(listeners, "tls")
    client = await stream_client(port, ssl.optionsForClientTLS("localhost", trustRoot=trust))
    client.transport.write(options("TLS"))
    await client.until(lambda data: b"\r\n\r\n" in data)
    assert parse(client.data).status == 200
    client.transport.loseConnection()

    flow = await connect(reactor, service.core, service.flows, "tls", "127.0.0.1", port, server_name="localhost")
    assert flow.secure and service.flows.find("tls", "127.0.0.1", port) is flow
    flow.close()
    answered = service.core.stats["options"]
    bad = await connect(reactor, service.core, service.flows, "tls", "127.0.0.1", port,
                        server_name="carrier.example.net")
    bad.send(options("TLS", branch="z9hG4bKunverified"))
    for _ in range(200):
        if bad.closed:
            break
        await deferLater(reactor, 0.02, lambda: None)
    assert bad.closed, "a peer whose certificate does not verify for the name is cut off"
    assert service.core.stats["options"] == answered, "and nothing was written to it"


@pytest_twisted.ensureDeferred
async def test_websocket_upgrade_needs_the_sip_subprotocol(sip):
    service, listeners = sip
    url = f"http://127.0.0.1:{port_of(listeners, 'ws')}/"
    plain = await treq.get(url, headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                         "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                                         "Sec-WebSocket-Version": "13"})
    assert plain.code == 400 and b"'sip' subprotocol" in await plain.content()


@pytest_twisted.ensureDeferred
async def test_a_secure_websocket_takes_a_browser_that_offers_alpn(sip, tmp_path):
    """Chromium offers ALPN `http/1.1` for a wss: URL; with no protocol in common Twisted's
    TLS ends the handshake with an alert, and the browser phone never registers."""
    service, listeners = sip
    trust = ssl.Certificate.loadPEM((tmp_path / "data" / "sip-self-signed.pem").read_bytes())
    client = await stream_client(port_of(listeners, "wss"), ssl.optionsForClientTLS(
        "localhost", trustRoot=trust, acceptableProtocols=[b"h2", b"http/1.1"]))
    client.transport.write(b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                           b"Sec-WebSocket-Protocol: sip\r\n\r\n")
    await client.until(lambda data: b"\r\n\r\n" in data)
    assert client.data.startswith(b"HTTP/1.1 101 ") and b"Sec-WebSocket-Protocol: sip" in client.data
    assert client.transport.negotiatedProtocol == b"http/1.1"
    client.transport.loseConnection()


def test_a_taken_port_is_a_config_error_naming_the_key(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        config = parse_config(f'[sip]\nudp = ["127.0.0.1:0", "127.0.0.1:{port}"]\ntcp = []\ntls = []\nwss = []\n',
                              tmp_path)
        listeners = Listeners()
        service = SipService(reactor, config, listeners)
        with pytest.raises(ConfigError) as caught:
            service.privilegedStartService()
    assert caught.value.key == "sip.udp[1]" and listeners.all() == []


@pytest_twisted.ensureDeferred
async def test_an_answer_leaving_after_the_udp_port_closed_is_counted_not_raised(tmp_path):
    """At shutdown a response can still be on its way out when the port has gone."""
    config = parse_config('[node]\ndata_dir = "data"\n[sip]\nudp = ["127.0.0.1:0"]\ntcp = []\ntls = []\n'
                          'ws = []\nwss = []\n', tmp_path)
    service = SipService(reactor, config, Listeners())
    service.privilegedStartService()
    service.startService()
    flow = service.core.flows.datagram("127.0.0.1", 9)
    await defer.maybeDeferred(service.stopService)
    before = service.core.stats["send_errors"]
    flow.send(b"SIP/2.0 200 OK\r\n\r\n")
    assert service.core.stats["send_errors"] == before + 1
