"""
Floods against a real node (`twistd wevoip`) whose open-file limit is low (RLIMIT_NOFILE
400) and whose connection caps are set low, asserting that legitimate users keep being
served while they last:

- idle TCP connections and TLS connections that never handshake, from 30 loopback
  addresses, beyond the per-source cap and past the descriptor reserve: /healthz and the
  API answer, a phone from another address registers over TLS, the half-open TLS ones go
  after the handshake timeout and the idle ones after the idle timeout, while the
  registered phone's connection stays;
- one WebSocket frame announced as 2 GiB, followed by megabytes: closed with 1009 at its
  header, the node's memory (VmRSS) grows by a few MB at most, and a phone registers over
  WebSocket afterwards;
- an API request body far over the limit is answered 413 before it is stored.

The longer flood is bench/connection_flood.py.
"""

import json
import re
import shutil
import socket
import ssl
import struct
import textwrap
import time
import uuid

import pytest
import pytest_twisted
import treq
from twisted.internet import defer, reactor, threads
from twisted.internet.task import deferLater
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Request as WSRequest, TextMessage

from tests.node import Node
from tests.pg import reachable_tmpdir
from tests.store.builders import build_tree
from wevoip.connections import EVICTION_SLACK
from wevoip.credentials import sip_ha1s
from wevoip.sip.digest import digest_response
from wevoip.sip.message import Response, parse
from wevoip.store.admins import create_api_token
from wevoip.store.database import Database

NAMESPACE = "flood.example.net"
DOMAIN = f"acme.{NAMESPACE}"
PASSWORD = "correct-horse-9"
TOKEN = "f" * 40
NOFILE = 400
SOURCES = 30
PER_SOURCE = 10
SETTINGS = textwrap.dedent(f"""
    [connections]
    sip_max = 1000
    sip_max_per_source = {PER_SOURCE}
    web_max = 64
    web_max_per_source = 32
    reserved_descriptors = 128
    idle_seconds = 10
    tls_handshake_seconds = 3
    ws_upgrade_seconds = 3
    [sip_security]
    requests_per_second = 500
    request_burst = 2000
""")


class Running:
    def __init__(self, node, health, database, folder):
        self.node, self.health, self.database, self.folder = node, health, database, folder
        self.port = {t: Node.sip_port(health, t) for t in ("tcp", "tls", "ws")}
        self.cafile = str(folder / "data" / "sip-self-signed.pem")


async def _start():
    folder = reachable_tmpdir("wevoip-test-flood-")
    node = Node(folder, sip=True, nofile=NOFILE)
    node.config_path.write_text(node.config_path.read_text() + SETTINGS)
    health = await node.start_ready()
    database = Database(reactor, node.dsn, size=1)
    await database.connect()
    await build_tree(database, NAMESPACE)
    await database.transact(lambda tx: create_api_token(tx, TOKEN, name="platform"))
    return Running(node, health, database, folder)


@pytest.fixture(scope="module")
def running():
    running = pytest_twisted.blockon(defer.ensureDeferred(_start()))
    yield running
    pytest_twisted.blockon(defer.ensureDeferred(running.database.close()))
    pytest_twisted.blockon(defer.ensureDeferred(running.node.stop()))
    shutil.rmtree(running.folder, ignore_errors=True)


def register_request(transport: str, local: tuple[str, int], cseq: int, call_id: str,
                     authorization: str = "") -> bytes:
    """`local` is the address in Via and Contact."""
    host, port = local
    lines = [f"REGISTER sip:{DOMAIN} SIP/2.0",
             f"Via: SIP/2.0/{transport} {host}:{port};branch=z9hG4bK{uuid.uuid4().hex};rport",
             "Max-Forwards: 70", f"From: <sip:alice@{DOMAIN}>;tag=f{cseq}", f"To: <sip:alice@{DOMAIN}>",
             f"Call-ID: {call_id}", f"CSeq: {cseq} REGISTER",
             f"Contact: <sip:alice@{host}:{port};transport={transport.lower()}>", "Expires: 600"]
    if authorization:
        lines.append(f"Authorization: {authorization}")
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()


def answer_challenge(challenge: Response, uri: str) -> str:
    offered = [value for value in challenge.headers.get_all("WWW-Authenticate") if "SHA-256" in value]
    params = dict(re.findall(r'(\w+)="?([^",]+)"?', offered[0]))
    ha1 = sip_ha1s("alice", params["realm"], PASSWORD)["ha1_sha256"]
    response = digest_response("SHA-256", ha1, params["nonce"], "REGISTER", uri, "auth", "00000001", "c0ffee")
    return (f'Digest username="alice", realm="{params["realm"]}", nonce="{params["nonce"]}", uri="{uri}", '
            f'response="{response}", algorithm=SHA-256, qop=auth, nc=00000001, cnonce="c0ffee", '
            f'opaque="{params.get("opaque", "")}"')


def register(send, receive, transport: str, local: tuple[str, int]) -> int:
    """Digest REGISTER (challenge, then credentials) over a connection; the final status."""
    call_id = uuid.uuid4().hex
    send(register_request(transport, local, 1, call_id))
    challenge = parse(receive())
    assert challenge.status == 401, challenge
    send(register_request(transport, local, 2, call_id, answer_challenge(challenge, f"sip:{DOMAIN}")))
    return parse(receive()).status


def read_message(stream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = stream.recv(65536)
        assert chunk, "closed before an answer"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?im)^content-length:\s*(\d+)", head).group(1))
    while len(body) < length:
        body += stream.recv(65536)
    return head + b"\r\n\r\n" + body


def flood(port: int, first: int, count: int, per_source: int) -> list[socket.socket]:
    """Idle connections, `per_source` from each of `count` loopback addresses."""
    opened = []
    for source in range(first, first + count):
        for _ in range(per_source):
            client = socket.socket()
            client.bind((f"127.0.0.{source}", 0))
            client.settimeout(5)
            client.connect(("127.0.0.1", port))
            opened.append(client)
    return opened


def tls_register_from(address: str, port: int, cafile: str,
                      contact: tuple[str, int] | None = None) -> tuple[int, ssl.SSLSocket]:
    """`contact`: the same one each time (a phone re-registering), else the socket's."""
    context = ssl.create_default_context(cafile=cafile)
    raw = socket.socket()
    raw.bind((address, 0))
    raw.settimeout(10)
    raw.connect(("127.0.0.1", port))
    client = context.wrap_socket(raw, server_hostname="localhost")
    status = register(client.sendall, lambda: read_message(client), "TLS", contact or client.getsockname())
    return status, client


def phone_registers(address: str, port: int, cafile: str, attempts: int = 5) -> tuple[int, ssl.SSLSocket]:
    """As a phone does (RFC 5626 §4.5): a connection reset while the node sheds the flood at
    its descriptor ceiling is tried again after a pause, a few times."""
    for attempt in range(attempts):
        try:
            return tls_register_from(address, port, cafile)
        except (ConnectionResetError, ssl.SSLError):
            if attempt == attempts - 1:
                raise
            time.sleep(1)


def still_open(client) -> bool:
    client.settimeout(0.2)
    try:
        return client.recv(1) != b""
    except (TimeoutError, ssl.SSLWantReadError):
        return True
    except OSError:
        return False


async def api_isps(running) -> int:
    response = await treq.get(f"http://127.0.0.1:{running.node.web_port}/api/v1/isps",
                              headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    await response.content()
    return response.code


@pytest_twisted.ensureDeferred
async def test_a_flood_of_idle_connections_leaves_the_web_the_api_and_phones_served(running):
    half = SOURCES // 2
    idle_tcp, idle_tls = await defer.gatherResults([
        threads.deferToThread(flood, running.port["tcp"], 10, half, PER_SOURCE + 2),
        threads.deferToThread(flood, running.port["tls"], 10 + half, half, PER_SOURCE + 2)])
    await deferLater(reactor, 0.5, lambda: None)
    try:
        code, health = await running.node.health()
        assert code == 200, health
        connections = health["connections"]
        sip = connections["sip"]
        assert connections["descriptors"]["limit"] == NOFILE
        assert connections["descriptors"]["open"] < NOFILE - 64, "the reserve stays free"
        assert 0 < sip["refused"]["per_source"] <= SOURCES * 2, sip
        assert sip["evicted"] > 0, "the flood reached the descriptor ceiling, and old idle ones made room"
        assert connections["descriptors"]["open"] <= sip["descriptor_ceiling"] + EVICTION_SLACK
        assert await api_isps(running) == 200

        status, phone = await threads.deferToThread(phone_registers, "127.0.0.250", running.port["tls"],
                                                    running.cafile)
        assert status == 200, "a phone from another address registers over TLS during the flood"
        await deferLater(reactor, 4, lambda: None)
        code, health = await running.node.health()
        assert code == 200 and health["connections"]["sip"]["closed"].get("handshake", 0) > 0, health
        await deferLater(reactor, 10, lambda: None)
        code, health = await running.node.health()
        sip = health["connections"]["sip"]
        assert sip["closed"].get("idle", 0) > 0 and sip["open"] == 1, sip
        assert await threads.deferToThread(still_open, phone), "the registered phone's connection stays"
        phone.close()
        assert "Traceback" not in running.node.output.text, running.node.output.text[-5000:]
    finally:
        for client in idle_tcp + idle_tls:
            client.close()


def websocket_connect(port: int) -> tuple[socket.socket, WSConnection]:
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    ws = WSConnection(ConnectionType.CLIENT)
    client.sendall(ws.send(WSRequest(host="localhost", target="/", subprotocols=["sip"])))
    while True:
        ws.receive_data(client.recv(65536))
        if any(isinstance(event, AcceptConnection) for event in ws.events()):
            return client, ws


def huge_frame(port: int, megabytes: int) -> tuple[int | None, int, float]:
    """A text frame announced as 2 GiB, then `megabytes` of it (or less, if cut off first):
    the close code seen, the bytes sent, and the seconds until the node closed."""
    client, ws = websocket_connect(port)
    header = struct.pack("!BBQ", 0x81, 0x80 | 127, 2 << 30) + b"\0\0\0\0"
    started = time.monotonic()
    sent = 0
    chunk = b"A" * (1 << 20)
    try:
        client.sendall(header)
        for _ in range(megabytes):
            client.sendall(chunk)
            sent += len(chunk)
    except OSError:
        pass
    code = None
    client.settimeout(5)
    try:
        while True:
            data = client.recv(65536)
            if not data:
                break
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, CloseConnection):
                    code = event.code
    except OSError:
        pass
    client.close()
    return code, sent, time.monotonic() - started


def websocket_register(port: int) -> int:
    client, ws = websocket_connect(port)
    replies = []

    def receive() -> bytes:
        while not replies:
            ws.receive_data(client.recv(65536))
            replies.extend(event.data.encode() for event in ws.events() if isinstance(event, TextMessage))
        return replies.pop(0)

    try:
        return register(lambda data: client.sendall(ws.send(TextMessage(data.decode()))), receive, "WS",
                        ("df7jal23ls0d.invalid", 5060))
    finally:
        client.close()


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return int(re.search(r"VmRSS:\s+(\d+)", status.read()).group(1))


@pytest_twisted.ensureDeferred
async def test_one_huge_websocket_frame_is_refused_at_its_header(running):
    pid = running.node.transport.pid
    before = rss_kb(pid)
    code, sent, seconds = await threads.deferToThread(huge_frame, running.port["ws"], 64)
    after = rss_kb(pid)
    assert code == 1009, "Message Too Big"
    assert sent < 64 << 20, "the node stopped reading long before the megabytes were all sent"
    assert after - before < 16 * 1024, f"VmRSS grew by {after - before} kB"
    code, health = await running.node.health()
    assert code == 200 and health["connections"]["sip"]["open"] <= 1
    assert await threads.deferToThread(websocket_register, running.port["ws"]) == 200
    assert "Traceback" not in running.node.output.text, running.node.output.text[-5000:]


@pytest_twisted.ensureDeferred
async def test_an_api_body_over_the_limit_is_refused_before_it_is_stored(running):
    def post() -> bytes:
        with socket.create_connection(("127.0.0.1", running.node.web_port), timeout=10) as client:
            client.sendall(b"POST /api/v1/isps HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"Authorization: Bearer " + TOKEN.encode() + b"\r\nContent-Length: 1073741824\r\n\r\n")
            try:
                client.sendall(b"{" * (4 << 20))
            except OSError:
                pass
            data = b""
            try:
                while chunk := client.recv(65536):
                    data += chunk
            except ConnectionResetError:
                pass
            return data

    data = await threads.deferToThread(post)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413") and json.loads(body)["error"] == "too_large"
    assert await api_isps(running) == 200
