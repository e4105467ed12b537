"""The real node (`twistd wevoip`) answers OPTIONS on every SIP transport: from plain
sockets, from Debian's sipsak over UDP and TCP, over TLS with Python's ssl, and over
secure WebSocket with wsproto as the client."""

import re
import shutil
import socket
import ssl
import uuid

import pytest
import pytest_twisted
from twisted.internet import defer, threads
from twisted.internet.utils import getProcessOutputAndValue
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, BytesMessage, Request as WSRequest, TextMessage

from tests.node import Node
from tests.pg import reachable_tmpdir
from wevoip.sip.message import Response, parse


def options(transport: str, port: int) -> bytes:
    branch = "z9hG4bK" + uuid.uuid4().hex
    return (f"OPTIONS sip:ping@127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/{transport} 127.0.0.1:{port};branch={branch};rport\r\n"
            f"From: <sip:test@127.0.0.1>;tag=t1\r\nTo: <sip:ping@127.0.0.1>\r\nCall-ID: {branch}\r\n"
            f"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()


@pytest.fixture(scope="module")
def node():
    folder = reachable_tmpdir("wevoip-test-sip-node-")
    running = Node(folder, sip=True)
    running.start()
    try:
        health = pytest_twisted.blockon(defer.ensureDeferred(running.wait_ready()))
    except AssertionError:
        pytest_twisted.blockon(defer.ensureDeferred(running.stop()))
        raise
    yield running, health
    pytest_twisted.blockon(defer.ensureDeferred(running.stop()))
    shutil.rmtree(folder, ignore_errors=True)


def _udp(port: int) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(5)
        client.bind(("127.0.0.1", 0))
        client.sendto(options("UDP", client.getsockname()[1]), ("127.0.0.1", port))
        return client.recv(65535)


def _read_message(stream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = stream.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _tcp(port: int) -> tuple[bytes, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(b"\r\n\r\n")
        pong = client.recv(2)
        client.sendall(options("TCP", client.getsockname()[1]))
        return pong, _read_message(client)


def _tls(port: int, cafile: str) -> bytes:
    context = ssl.create_default_context(cafile=cafile)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as client:
        client.sendall(options("TLS", client.getsockname()[1]))
        return _read_message(client)


def _wss(port: int, cafile: str) -> tuple[str, bytes]:
    context = ssl.create_default_context(cafile=cafile)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as client:
        ws = WSConnection(ConnectionType.CLIENT)
        client.sendall(ws.send(WSRequest(host="localhost", target="/", subprotocols=["sip"])))
        accepted, reply = None, b""
        while not reply:
            ws.receive_data(client.recv(65535))
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    accepted = event.subprotocol
                    client.sendall(ws.send(TextMessage(options("WSS", 0).decode())))
                elif isinstance(event, (TextMessage, BytesMessage)):
                    reply = event.data.encode() if isinstance(event, TextMessage) else bytes(event.data)
        return accepted, reply


def ok(data: bytes) -> Response:
    response = parse(data)
    assert isinstance(response, Response) and response.status == 200, data
    assert "OPTIONS" in response.headers.get("Allow")
    return response


@pytest_twisted.ensureDeferred
async def test_options_over_udp_and_tcp_from_plain_sockets(node):
    running, health = node
    response = ok(await threads.deferToThread(_udp, Node.sip_port(health, "udp")))
    assert response.top_via.received == "127.0.0.1" and response.top_via.rport
    pong, data = await threads.deferToThread(_tcp, Node.sip_port(health, "tcp"))
    assert pong == b"\r\n"
    ok(data)


@pytest_twisted.ensureDeferred
async def test_sipsak_gets_200_over_udp_and_tcp(node):
    running, health = node
    for transport in ("udp", "tcp"):
        out, err, code = await getProcessOutputAndValue(
            "sipsak", ["-vv", "--transport", transport, "-s", f"sip:x@127.0.0.1:{Node.sip_port(health, transport)}"])
        assert code == 0, (out + err).decode()
        assert b"SIP/2.0 200 OK" in out and re.search(rb"Allow: [A-Z, ]*OPTIONS", out)


@pytest_twisted.ensureDeferred
async def test_options_over_tls_and_secure_websocket(node):
    running, health = node
    cafile = str(running.folder / "data" / "sip-self-signed.pem")
    ok(await threads.deferToThread(_tls, Node.sip_port(health, "tls"), cafile))
    subprotocol, data = await threads.deferToThread(_wss, Node.sip_port(health, "wss"), cafile)
    assert subprotocol == "sip"
    ok(data)
    assert all(Node.sip_port(health, name) for name in ("udp", "tcp", "tls", "ws", "wss"))
    assert "sip listening on udp://127.0.0.1:" in running.output.text
