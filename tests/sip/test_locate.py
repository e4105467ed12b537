"""RFC 3263 server location against a real DNS server of our own on loopback."""

import random

import pytest
import pytest_twisted
from twisted.names import dns

from tests.dnsserver import LoopbackDNS
from wevoip.sip.locate import Locator, Target

ZONE = {
    "carrier.example": [
        dns.Record_NAPTR(10, 50, b"s", b"SIP+D2T", b"", b"_sip._tcp.carrier.example"),
        dns.Record_NAPTR(20, 50, b"s", b"SIP+D2U", b"", b"_sip._udp.carrier.example"),
        dns.Record_NAPTR(5, 50, b"u", b"E2U+sip", b"!^.*$!sip:x@y!", b""),
    ],
    "_sip._tcp.carrier.example": [
        dns.Record_SRV(10, 0, 5070, b"sbc2.carrier.example"),
        dns.Record_SRV(5, 0, 5080, b"sbc1.carrier.example"),
    ],
    "_sip._udp.carrier.example": [dns.Record_SRV(10, 0, 5060, b"sbc1.carrier.example")],
    "sbc1.carrier.example": [dns.Record_A("192.0.2.1"), dns.Record_AAAA("2001:db8::1")],
    "sbc2.carrier.example": [dns.Record_A("192.0.2.2")],
    "srvonly.example": [],
    "_sips._tcp.srvonly.example": [dns.Record_SRV(0, 0, 5061, b"tls.srvonly.example")],
    "_sip._udp.srvonly.example": [dns.Record_SRV(0, 0, 5062, b"udp.srvonly.example")],
    "tls.srvonly.example": [dns.Record_A("198.51.100.5")],
    "udp.srvonly.example": [dns.Record_A("198.51.100.6")],
    "plain.example": [dns.Record_A("203.0.113.9")],
    "weighted.example": [],
    "_sip._udp.weighted.example": [dns.Record_SRV(1, 90, 5060, b"heavy.example"),
                                   dns.Record_SRV(1, 10, 5060, b"light.example")],
    "heavy.example": [dns.Record_A("203.0.113.1")],
    "light.example": [dns.Record_A("203.0.113.2")],
}


@pytest.fixture
def dns_server():
    server = LoopbackDNS("example", ZONE)
    yield server
    server.close()


@pytest_twisted.ensureDeferred
async def test_naptr_orders_services_then_srv_orders_targets(dns_server):
    targets = await Locator(dns_server.resolver()).locate("carrier.example")
    assert targets == [Target("192.0.2.1", 5080, "tcp"), Target("2001:db8::1", 5080, "tcp"),
                       Target("192.0.2.2", 5070, "tcp"), Target("192.0.2.1", 5060, "udp"),
                       Target("2001:db8::1", 5060, "udp")]


@pytest_twisted.ensureDeferred
async def test_a_transport_in_the_uri_narrows_the_naptr_choice(dns_server):
    targets = await Locator(dns_server.resolver(), ipv6=False).locate("carrier.example", transport="udp")
    assert targets == [Target("192.0.2.1", 5060, "udp")]


@pytest_twisted.ensureDeferred
async def test_without_naptr_srv_is_tried_per_transport_and_sips_wants_tls(dns_server):
    locator = Locator(dns_server.resolver())
    assert await locator.locate("srvonly.example") == [Target("198.51.100.5", 5061, "tls"),
                                                         Target("198.51.100.6", 5062, "udp")]
    assert await locator.locate("srvonly.example", secure=True) == [Target("198.51.100.5", 5061, "tls")]


@pytest_twisted.ensureDeferred
async def test_without_srv_the_address_record_and_default_port(dns_server):
    locator = Locator(dns_server.resolver())
    assert await locator.locate("plain.example") == [Target("203.0.113.9", 5060, "udp")]
    assert await locator.locate("plain.example", port=5099, transport="tcp") == [Target("203.0.113.9", 5099, "tcp")]
    assert await locator.locate("missing.example") == []


@pytest_twisted.ensureDeferred
async def test_ip_addresses_need_no_dns(dns_server):
    locator = Locator(dns_server.resolver())
    assert await locator.locate("192.0.2.77") == [Target("192.0.2.77", 5060, "udp")]
    assert await locator.locate("[2001:db8::5]", secure=True) == [Target("2001:db8::5", 5061, "tls")]


@pytest_twisted.ensureDeferred
async def test_srv_weights_share_the_first_place(dns_server):
    locator = Locator(dns_server.resolver(), random.Random(7), ipv6=False)
    firsts = [(await locator.locate("weighted.example"))[0].address for _ in range(60)]
    heavy = firsts.count("203.0.113.1")
    assert 40 <= heavy <= 60 and firsts.count("203.0.113.2") == 60 - heavy > 0
