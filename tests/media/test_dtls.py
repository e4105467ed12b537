"""DTLS-SRTP between two of our endpoints: in memory, over loopback UDP, and refusals."""

import pytest
import pytest_twisted
from cryptography.hazmat.primitives.serialization import Encoding
from twisted.internet import defer, reactor
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import Clock

from wevoip.media.webrtc.dtls import (Certificate, DtlsEndpoint, DtlsState, Fingerprint,
                                      is_client_for_setup, pack_datagrams, split_records)
from wevoip.media.webrtc.srtp import SrtpSession


@pytest.fixture(scope="module")
def certificates():
    return Certificate.generate("browser"), Certificate.generate("wevoip")


class Recorder:
    """The owner side: collects what the endpoint sends and hears."""

    def __init__(self):
        self.sent, self.keys, self.failures = [], [], []
        self.deliver = None

    def send(self, datagram):
        self.sent.append(datagram)
        if self.deliver is not None:
            self.deliver(datagram)

    def established(self, keys):
        self.keys.append(keys)

    def failed(self, reason):
        self.failures.append(reason)


def in_memory_pair(certificates, clock, client_trusts=None, server_trusts=None):
    """`*_trusts`: a fingerprint, or a list of them, in place of the peer's own."""
    browser, node = certificates

    def listed(trusts, default):
        return [default] if trusts is None else list(trusts) if isinstance(trusts, list) else [trusts]
    client_owner, server_owner = Recorder(), Recorder()
    client = DtlsEndpoint(clock, browser, True, listed(client_trusts, node.fingerprint), client_owner)
    server = DtlsEndpoint(clock, node, False, listed(server_trusts, browser.fingerprint), server_owner)
    client_owner.deliver = server.receive
    server_owner.deliver = client.receive
    return client, server, client_owner, server_owner


def test_two_endpoints_handshake_in_memory_and_derive_the_same_keys(certificates):
    clock = Clock()
    client, server, client_owner, server_owner = in_memory_pair(certificates, clock)
    server.start()
    client.start()
    assert client.state is server.state is DtlsState.CONNECTED
    (client_keys,), (server_keys,) = client_owner.keys, server_owner.keys
    assert client_keys.profile == server_keys.profile
    assert client_keys.send_master == server_keys.receive_master
    assert client_keys.receive_master == server_keys.send_master
    assert client_keys.send_master != client_keys.receive_master
    # The keys work: what the client protects, the server reads.
    packet = bytes.fromhex("8000000100000000cafebabe") + b"tone" * 40
    assert SrtpSession(server_keys).unprotect(SrtpSession(client_keys).protect(packet)) == packet
    # Nothing is left ticking once both are up.
    assert clock.getDelayedCalls() == []


def test_a_wrong_fingerprint_is_refused_on_both_sides(certificates):
    clock = Clock()
    stranger = Certificate.generate("stranger").fingerprint
    client, server, client_owner, server_owner = in_memory_pair(certificates, clock, client_trusts=stranger)
    server.start()
    client.start()
    assert client.state is DtlsState.FAILED
    assert client_owner.failures == ["peer certificate does not match a=fingerprint"]
    assert client_owner.keys == [] and server_owner.keys == []
    # The client's alert ends the server's handshake too.
    assert server.state is DtlsState.FAILED
    assert clock.getDelayedCalls() == []


def test_the_server_refuses_a_client_whose_certificate_is_not_in_the_sdp(certificates):
    clock = Clock()
    stranger = Certificate.generate("stranger").fingerprint
    client, server, client_owner, server_owner = in_memory_pair(certificates, clock, server_trusts=stranger)
    server.start()
    client.start()
    assert server_owner.failures == ["peer certificate does not match a=fingerprint"]
    assert server_owner.keys == [] and client_owner.keys == []


def _der(certificate):
    return certificate.certificate.public_bytes(Encoding.DER)


def _wrong(algorithm):
    """A well-formed fingerprint of `algorithm` that matches no certificate here."""
    return Fingerprint.of(b"no certificate", algorithm)


@pytest.mark.parametrize("offered, connects", [
    # RFC 8122 §5: only the strongest hash function offered counts.
    (("sha-1", "sha-256"), True),
    (("sha-1", "sha-256!"), False),          # a weak hash that matches does not save a strong one that does not
    (("sha-256!", "sha-512"), True),
    (("sha-512!", "sha-256", "sha-384"), False),
    (("sha-384", "sha-256!"), True),         # the weaker wrong one is never looked at
    (("sha-512", "sha-512!"), True),         # two of the strongest (two certificates): one must match
    (("sha-1!",), False),
])
def test_several_fingerprints_are_checked_with_the_strongest_hash_only(certificates, offered, connects):
    clock = Clock()
    node = certificates[1]
    prints = [_wrong(name.rstrip("!")) if name.endswith("!") else Fingerprint.of(_der(node), name)
              for name in offered]
    client, server, client_owner, server_owner = in_memory_pair(certificates, clock, client_trusts=prints)
    server.start()
    client.start()
    if connects:
        assert client.state is server.state is DtlsState.CONNECTED
    else:
        assert client.state is DtlsState.FAILED
        assert client_owner.failures == ["peer certificate does not match a=fingerprint"]
        assert client_owner.keys == [] and server_owner.keys == []


def test_a_handshake_that_never_finishes_fails_at_the_deadline(certificates):
    clock = Clock()
    owner = Recorder()
    client = DtlsEndpoint(clock, certificates[0], True, [certificates[1].fingerprint], owner,
                          handshake_timeout=10)
    client.start()
    assert len(owner.sent) == 1 and owner.sent[0][0] == 22   # a handshake record
    clock.advance(9.9)
    assert client.state is DtlsState.CONNECTING
    clock.advance(0.2)
    assert client.state is DtlsState.FAILED and owner.failures == ["handshake timed out"]
    assert clock.getDelayedCalls() == []


def test_junk_during_the_handshake_is_dropped(certificates):
    clock = Clock()
    owner = Recorder()
    server = DtlsEndpoint(clock, certificates[1], False, [certificates[0].fingerprint], owner)
    server.start()
    for junk in (b"\x16\xfe\xfd" + b"\x00" * 10, b"\x17" * 60, b"\x16\xfe\xfd\x00\x00" + b"\xff" * 40):
        server.receive(junk)
    assert server.state is DtlsState.CONNECTING and owner.failures == []


def test_close_sends_close_notify_and_the_peer_closes(certificates):
    clock = Clock()
    client, server, client_owner, _ = in_memory_pair(certificates, clock)
    server.start()
    client.start()
    client.close()
    assert client.state is DtlsState.CLOSED and server.state is DtlsState.CLOSED
    assert client_owner.sent[-1][0] == 21   # an alert record


def test_an_endpoint_needs_a_fingerprint(certificates):
    with pytest.raises(ValueError, match="a=fingerprint"):
        DtlsEndpoint(Clock(), certificates[0], True, [], Recorder())


def test_certificate_fingerprint_is_sha256_of_its_der(certificates):
    certificate = certificates[1]
    der = certificate.certificate.public_bytes(Encoding.DER)
    assert Fingerprint.parse(str(certificate.fingerprint)) == certificate.fingerprint
    assert certificate.fingerprint.matches(der)
    assert str(certificate.fingerprint).startswith("sha-256 ")
    assert len(str(certificate.fingerprint).split()[1].split(":")) == 32


@pytest.mark.parametrize("text, reason", [
    ("md5 AA:BB", "is not one of"),
    ("sha-256 AA:ZZ", "colon-separated hex"),
    ("sha-256 AA:BB", "not a sha-256 digest"),
    ("", "is not one of"),
])
def test_bad_fingerprints_are_refused_with_a_reason(text, reason):
    with pytest.raises(ValueError, match=reason):
        Fingerprint.parse(text)


def test_setup_roles():
    assert is_client_for_setup("active") and not is_client_for_setup("passive")
    with pytest.raises(ValueError, match="actpass"):
        is_client_for_setup("actpass")


def test_records_are_split_and_packed_whole():
    records = [bytes([22, 0xFE, 0xFD]) + bytes(8) + len(body).to_bytes(2, "big") + body
               for body in (b"a" * 500, b"b" * 600, b"c" * 100, b"d" * 1500)]
    assert split_records(b"".join(records)) == records
    datagrams = pack_datagrams(records, mtu=1200)
    assert datagrams == [records[0] + records[1], records[2], records[3]]


class UdpEnd(DatagramProtocol):
    """A DTLS endpoint on a loopback socket; `drop` datagrams are thrown away on sending."""

    def __init__(self, make_endpoint, drop=0):
        self.make_endpoint, self.drop, self.peer = make_endpoint, drop, None
        self.done = defer.Deferred()
        self.endpoint = None

    def startProtocol(self):
        self.endpoint = self.make_endpoint(self)

    def datagramReceived(self, data, address):
        self.endpoint.receive(data)

    def send(self, datagram):
        if self.drop:
            self.drop -= 1
            return
        self.transport.write(datagram, self.peer)

    def established(self, keys):
        self.done.callback(keys)

    def failed(self, reason):
        self.done.errback(RuntimeError(reason))


@pytest_twisted.inlineCallbacks
def test_handshake_over_loopback_udp_with_a_lost_client_hello(certificates):
    """The first ClientHello is lost; OpenSSL's 1 s retransmission, timed on the reactor, recovers."""
    browser, node = certificates
    client = UdpEnd(lambda owner: DtlsEndpoint(reactor, browser, True, [node.fingerprint], owner), drop=1)
    server = UdpEnd(lambda owner: DtlsEndpoint(reactor, node, False, [browser.fingerprint], owner))
    client_port = reactor.listenUDP(0, client, interface="127.0.0.1")
    server_port = reactor.listenUDP(0, server, interface="127.0.0.1")
    try:
        client.peer = ("127.0.0.1", server_port.getHost().port)
        server.peer = ("127.0.0.1", client_port.getHost().port)
        server.endpoint.start()
        client.endpoint.start()
        client_keys, server_keys = yield defer.gatherResults([client.done, server.done])
        assert client_keys.send_master == server_keys.receive_master
        assert client_keys.receive_master == server_keys.send_master
    finally:
        client.endpoint.close()
        server.endpoint.close()
        yield client_port.stopListening()
        yield server_port.stopListening()


def test_retransmission_and_deadline_are_timed_on_the_injected_clock(certificates):
    """After the ClientHello the clock holds two calls: OpenSSL's retransmission (its 1 s
    first timeout, as it reports it) and our 30 s deadline; both go when the handshake ends."""
    clock = Clock()
    lone = DtlsEndpoint(clock, certificates[0], True, [certificates[1].fingerprint], Recorder())
    lone.start()
    waits = sorted(call.getTime() for call in clock.getDelayedCalls())
    assert len(waits) == 2 and 0.9 <= waits[0] <= 1.0 and waits[1] == 30
    lone.close()
    assert clock.getDelayedCalls() == [] and lone.state is DtlsState.CLOSED
