"""The connection gate: caps per source (IPv6 by /64, trusted networks exempt) and in total
(with room made by the SIP side when it can), the descriptor ceiling, and the wrapping
factory that counts real loopback connections in and out."""

import resource
import socket

import pytest_twisted
from twisted.internet import protocol, reactor
from twisted.internet.task import Clock, deferLater

from wevoip.connections import (EVICTION_SLACK, ConnectionGate, GatedFactory, descriptor_limit, open_descriptors,
                                source_key)


def gate(**kw):
    settings = {"total": 5, "per_source": 2, "ceiling": 10_000, **kw}
    return ConnectionGate(Clock(), "SIP", **settings)


def test_the_per_source_cap_counts_ipv6_by_its_64_and_spares_trusted_networks():
    g = gate(exempt=("10.0.0.0/8",))
    assert g.admit("192.0.2.1", "tcp") and g.admit("192.0.2.1", "tls")
    assert not g.admit("192.0.2.1", "ws") and g.refused["per_source"] == 1
    assert g.admit("2001:db8::1", "tcp") and g.admit("2001:db8::ffff", "tcp")
    assert not g.admit("2001:db8::2", "tcp"), "one host holds a whole /64"
    assert source_key("::ffff:192.0.2.1") == "192.0.2.1"
    g.release("192.0.2.1", "tls")
    assert g.admit("192.0.2.1", "ws")
    assert g.report()["by_transport"] == {"tcp": 3, "ws": 1} and g.report()["sources"] == 2


def test_the_total_cap_refuses_unless_room_is_made():
    rooms = [True, False]
    g = gate(total=2, per_source=10, make_room=lambda: rooms.pop(0))
    assert g.admit("192.0.2.1", "tcp") and g.admit("192.0.2.2", "tcp")
    assert g.admit("192.0.2.3", "tcp") and g.evicted == 1
    assert not g.admit("192.0.2.4", "tcp") and g.refused["total"] == 1


def test_a_trusted_network_still_counts_towards_the_total():
    g = gate(total=3, per_source=1, exempt=("10.0.0.0/8",))
    assert all(g.admit("10.1.1.1", "tcp") for _ in range(3))
    assert not g.admit("10.1.1.1", "tcp") and g.refused["total"] == 1


def test_the_descriptor_ceiling_with_room_made_only_just_past_it():
    g = gate(ceiling=100)
    assert g.within_descriptors(99, "192.0.2.1")
    assert not g.within_descriptors(100, "192.0.2.1") and g.refused["descriptors"] == 1
    rooms = []
    g = gate(ceiling=100, make_room=lambda: rooms.append(1) or True)
    assert g.within_descriptors(100, "192.0.2.1") and g.evicted == 1
    assert not g.within_descriptors(100 + EVICTION_SLACK, "192.0.2.1"), "past the slack nothing is evicted"
    assert rooms == [1] and g.refused["descriptors"] == 1


class Echo(protocol.Protocol):
    def dataReceived(self, data):  # noqa: N802
        self.transport.write(data)


def _connect(port):
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def _closed(client) -> bool:
    """Closed by the server (FIN or RST), asked once the reactor has had its turn."""
    try:
        return client.recv(10) == b""
    except ConnectionResetError:
        return True


@pytest_twisted.ensureDeferred
async def test_the_factory_refuses_before_building_and_releases_on_close():
    g = ConnectionGate(reactor, "test", total=10, per_source=2, ceiling=1_000_000)
    port = reactor.listenTCP(0, GatedFactory(protocol.Factory.forProtocol(Echo), g, "tcp"), interface="127.0.0.1")
    try:
        number = port.getHost().port
        kept = [_connect(number), _connect(number)]
        third = _connect(number)
        await deferLater(reactor, 0.2, lambda: None)
        assert g.open == 2 and g.refused["per_source"] == 1
        assert _closed(third), "the third is closed at once"
        kept[0].sendall(b"hi")
        await deferLater(reactor, 0.1, lambda: None)
        assert kept[0].recv(10) == b"hi"
        for client in kept + [third]:
            client.close()
        await deferLater(reactor, 0.2, lambda: None)
        assert g.open == 0 and g.report()["sources"] == 0
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_descriptor_over_the_ceiling_is_cut_before_the_protocol_sees_it():
    made = []

    class Seen(protocol.Protocol):
        def connectionMade(self):  # noqa: N802
            made.append(self)

    g = ConnectionGate(reactor, "test", total=10, per_source=10, ceiling=3)
    port = reactor.listenTCP(0, GatedFactory(protocol.Factory.forProtocol(Seen), g, "tcp"), interface="127.0.0.1")
    try:
        client = _connect(port.getHost().port)
        await deferLater(reactor, 0.2, lambda: None)
        assert made == [] and g.refused["descriptors"] == 1
        assert _closed(client)
        client.close()
        await deferLater(reactor, 0.1, lambda: None)
        assert g.open == 0
    finally:
        await port.stopListening()


def test_the_open_file_limit_is_raised_to_the_hard_one_at_start():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(soft, 256)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        assert descriptor_limit() == hard == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert 0 < open_descriptors() < hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
