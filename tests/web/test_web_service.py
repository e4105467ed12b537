"""The web listener's own bounds, on an in-memory transport and a task.Clock: a request body
announced or grown past the limit is answered 413 (JSON) before it is stored, an idle
connection is closed after web_idle_seconds, and a request header that does not come whole
within web_header_seconds is answered 408 (JSON) and its connection closed."""

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

    def render_GET(self, request):  # noqa: N802
        return b"{}"


def channel(clock, resource):
    gate = ConnectionGate(clock, "web", total=10, per_source=10, ceiling=1_000_000)
    service = web_service(clock, (), resource, Listeners(), gate=gate, idle_seconds=60, header_seconds=20)
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
    protocol.dataReceived(b"GET /api HTTP/1.1\r\nHost: x\r\n\r\n")
    clock.advance(59)
    assert not transport.disconnecting
    clock.advance(1)
    assert transport.disconnecting


def test_a_header_trickled_a_byte_at_a_time_is_cut_at_web_header_seconds():
    """Each byte restarts the idle timer; the header's deadline does not move."""
    clock = Clock()
    protocol, transport = channel(clock, Counted())
    for byte in b"GET /api HTTP/1.1\r\nHost: x\r\nX-Slow: 1234567":
        if clock.seconds() >= 19.5:
            break
        protocol.dataReceived(bytes([byte]))
        clock.advance(0.5)
    assert not transport.disconnecting
    clock.advance(20 - clock.seconds())
    status, body = answer(transport)
    assert status == b"HTTP/1.1 408 Request Timeout" and json.loads(body)["error"] == "request_timeout"
    assert b"Connection: close" in transport.value() and transport.disconnecting


def test_a_connection_that_never_sends_is_cut_at_web_header_seconds():
    clock = Clock()
    protocol, transport = channel(clock, Counted())
    clock.advance(19.9)
    assert not transport.disconnecting
    clock.advance(0.1)
    assert answer(transport)[0] == b"HTTP/1.1 408 Request Timeout" and transport.disconnecting


def test_a_kept_alive_connection_waits_idle_between_requests_and_times_each_header_from_its_first_byte():
    clock = Clock()
    resource = Counted()
    protocol, transport = channel(clock, resource)
    clock.advance(19)
    protocol.dataReceived(b"GET /api HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer(transport)[0] == b"HTTP/1.1 200 OK"
    transport.clear()
    clock.advance(45)                   # past the header's deadline, within the idle timeout
    assert not transport.disconnecting and transport.value() == b""
    protocol.dataReceived(b"POST /api HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n")
    clock.advance(25)                   # a slow body is the idle timer's, not the header's
    assert not transport.disconnecting
    protocol.dataReceived(b"{}")
    assert answer(transport)[0] == b"HTTP/1.1 200 OK" and resource.bodies == [b"{}"]
    transport.clear()
    protocol.dataReceived(b"G")
    clock.advance(19.9)
    protocol.dataReceived(b"ET /api")
    assert not transport.disconnecting
    clock.advance(0.1)
    assert answer(transport)[0] == b"HTTP/1.1 408 Request Timeout" and transport.disconnecting
