"""
Slow-loris against a real node: clients from several loopback addresses fill their
per-source web caps with requests whose header comes a byte at a time (each byte would
restart the idle timer). /healthz keeps answering from another address meanwhile, and every
slow connection is answered 408 and closed at connections.web_header_seconds, which gives
its source its places back.
"""

import shutil
import textwrap

import pytest_twisted
from twisted.internet import defer, protocol, reactor, task
from twisted.internet.task import deferLater

from tests.node import Node
from tests.pg import reachable_tmpdir

SOURCES = [f"127.0.0.{n}" for n in range(2, 6)]
PER_SOURCE = 4
SETTINGS = textwrap.dedent(f"""
    [connections]
    web_max = 64
    web_max_per_source = {PER_SOURCE}
    web_header_seconds = 2
""")


class SlowClient(protocol.Protocol):
    """Sends a request line, then one header byte every 0.2 s, never the blank line."""

    def __init__(self):
        self.received = b""
        self.made = defer.Deferred()
        self.lost = defer.Deferred()
        self._trickle = None

    def connectionMade(self):  # noqa: N802
        self.transport.write(b"GET /healthz HTTP/1.1\r\nHost: node\r\nX-Padding: ")
        self._trickle = task.LoopingCall(self.transport.write, b"a")
        self._trickle.start(0.2, now=False)
        self.made.callback(self)

    def dataReceived(self, data):  # noqa: N802
        self.received += data

    def connectionLost(self, reason):  # noqa: N802
        if self._trickle is not None and self._trickle.running:
            self._trickle.stop()
        if not self.made.called:
            self.made.callback(self)
        self.lost.callback(self.received)


class SlowFactory(protocol.ClientFactory):
    def __init__(self):
        self.client = SlowClient()

    def buildProtocol(self, addr):  # noqa: N802
        return self.client

    def clientConnectionFailed(self, connector, reason):  # noqa: N802
        self.client.made.errback(reason)


class _Fetch(protocol.Protocol):
    def __init__(self):
        self.received = b""
        self.done = defer.Deferred()

    def connectionMade(self):  # noqa: N802
        self.transport.write(b"GET /healthz HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n")

    def dataReceived(self, data):  # noqa: N802
        self.received += data

    def connectionLost(self, reason):  # noqa: N802
        self.done.callback(self.received)


async def fetch(port: int, source: str) -> bytes:
    """GET /healthz from `source`, whole at once: the answer."""
    client = _Fetch()
    connected = await protocol.ClientCreator(reactor, lambda: client).connectTCP(
        "127.0.0.1", port, timeout=5, bindAddress=(source, 0))
    assert connected is client
    return await client.done.addTimeout(10, reactor)


def slow_client(port: int, source: str) -> SlowClient:
    factory = SlowFactory()
    reactor.connectTCP("127.0.0.1", port, factory, timeout=5, bindAddress=(source, 0))
    return factory.client


@pytest_twisted.ensureDeferred
async def test_slow_headers_fill_the_per_source_caps_and_are_cut_while_healthz_answers():
    folder = reachable_tmpdir("wevoip-test-slowloris-")
    node = Node(folder)
    node.config_path.write_text(node.config_path.read_text() + SETTINGS)
    try:
        await node.start_ready()
        port = node.web_port
        slow = [slow_client(port, source) for source in SOURCES for _ in range(PER_SOURCE)]
        await defer.gatherResults([client.made for client in slow])
        await deferLater(reactor, 0.3, lambda: None)
        refused = slow_client(port, SOURCES[0])         # one more than its source's cap
        assert await refused.lost.addTimeout(5, reactor) == b"", "the gate closes it before any answer"
        code, health = await node.health()              # from 127.0.0.1, while the slow ones hold theirs
        assert code == 200
        web = health["connections"]["web"]
        assert web["open"] >= len(slow) and web["refused"].get("per_source", 0) >= 1
        assert not [client for client in slow if client.lost.called], "held so far"

        answers = await defer.gatherResults([client.lost.addTimeout(30, reactor) for client in slow])
        assert all(answer.startswith(b"HTTP/1.1 408 Request Timeout") for answer in answers), answers[:2]
        answers = await defer.gatherResults([defer.ensureDeferred(fetch(port, source)) for source in SOURCES])
        assert all(answer.startswith(b"HTTP/1.1 200") for answer in answers), "their places are back"
        code, health = await node.health()
        assert code == 200 and health["connections"]["web"]["open"] <= 1
    finally:
        await node.stop()
        shutil.rmtree(folder, ignore_errors=True)
