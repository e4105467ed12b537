"""The web listener's own bounds, on an in-memory transport and a task.Clock: a request body
announced or grown past the limit is answered 413 (JSON) before it is stored, and an idle
connection is closed after web_idle_seconds."""

import json

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web.resource import Resource

from wevoip.connections import ConnectionGate
from wevoip.listeners import Listeners
from wevoip.web.api.jsonio import MAX_BODY
from wevoip.web.service import web_service


class Counted(Resource):
    isLeaf = True

    def __init__(self):
        super().__init__()
        self.bodies = []

    def render_POST(self, request):  # noqa: N802
        self.bodies.append(request.content.read())
        return b"{}"


def channel(clock, resource):
    gate = ConnectionGate(clock, "web", total=10, per_source=10, ceiling=1_000_000)
    service = web_service(clock, (), resource, Listeners(), gate=gate, idle_seconds=60)
    site = service.factory.wrappedFactory
    protocol = site.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport


def answer(transport):
    head, _, body = transport.value().partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], body


def test_a_body_announced_over_the_limit_is_refused_before_it_arrives():
    resource = Counted()
    protocol, transport = channel(Clock(), resource)
    protocol.dataReceived(b"POST /api HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n{" % (MAX_BODY + 1))
    status, body = answer(transport)
    assert status == b"HTTP/1.1 413 Content Too Large" and json.loads(body)["error"] == "too_large"
    assert transport.disconnecting and resource.bodies == []


def test_a_chunked_body_growing_over_the_limit_is_refused():
    resource = Counted()
    protocol, transport = channel(Clock(), resource)
    protocol.dataReceived(b"POST /api HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"x" * 65536
    for _ in range(MAX_BODY // len(chunk) + 1):
        protocol.dataReceived(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    status, _ = answer(transport)
    assert status.startswith(b"HTTP/1.1 413") and transport.disconnecting and resource.bodies == []


def test_a_body_within_the_limit_is_served():
    resource = Counted()
    protocol, transport = channel(Clock(), resource)
    protocol.dataReceived(b"POST /api HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
    assert answer(transport)[0] == b"HTTP/1.1 200 OK" and resource.bodies == [b"{}"]


def test_an_idle_connection_is_closed_after_web_idle_seconds():
    clock = Clock()
    protocol, transport = channel(clock, Counted())
    clock.advance(59)
    assert not transport.disconnecting
    clock.advance(1)
    assert transport.disconnecting
