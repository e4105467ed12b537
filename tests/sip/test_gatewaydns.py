"""
Carrier gateways given by DNS name (issue 12 point 8), on the real store and a real DNS
server on loopback (tests/dnsserver.py): the gateway resolver looks the name up through
the RFC 3263 locator (SRV, then A/AAAA), trust follows the answer, a new answer after the
TTL moves it, a DNS server that stops answering leaves the last good addresses trusted
(and says so), and the gateway as read says what it trusts and since when. The loop's
timer runs on a Clock; the TTLs are real seconds, as PostgreSQL's now() is.
"""

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.task import Clock, deferLater
from twisted.names import dns

from tests.dnsserver import LoopbackDNS
from tests.store.builders import build_tree
from wevoip.sip.directory import Directory
from wevoip.sip.gatewaydns import GatewayResolver, refresh_after
from wevoip.sip.locate import Locator
from wevoip.store import carriers

ZONE = "carrier.test"


def test_the_next_look_up_follows_the_ttl_within_the_floor_and_the_ceiling():
    assert refresh_after(300, 30, 3600) == 300
    assert refresh_after(0, 30, 3600) == 30
    assert refresh_after(86400 * 7, 30, 3600) == 3600
    assert refresh_after(None, 30, 3600) == 30     # nothing resolved: try again soon


@pytest.fixture
def dns_server():
    server = LoopbackDNS(ZONE, {
        f"_sip._udp.sbc.{ZONE}": [dns.Record_SRV(10, 0, 5070, f"edge1.{ZONE}", ttl=300)],
        f"edge1.{ZONE}": [dns.Record_A("127.0.0.5", ttl=1)],
        f"fixed.{ZONE}": [dns.Record_A("127.0.0.7", ttl=600), dns.Record_A("127.0.0.8", ttl=600)],
    })
    yield server
    pytest_twisted.blockon(defer.maybeDeferred(server.close))


async def _world(database):
    tree = await build_tree(database, "gwdns.example.net")
    isp_id = tree.isp["id"]

    async def gateways(tx):
        by_srv = await carriers.create_gateway(tx, isp_id, tree.carrier["id"], host=f"sbc.{ZONE}")
        by_a = await carriers.create_gateway(tx, isp_id, tree.carrier["id"], host=f"fixed.{ZONE}", port=5080)
        return by_srv, by_a
    return tree, *await database.transact(gateways)


def _resolver(database, server, floor=1):
    resolver = GatewayResolver(Clock(), lambda: None, Locator(server.resolver(), ipv6=False), floor=floor,
                               ceiling=3600)
    resolver.running = True
    resolver.database = database
    return resolver


async def _sleep(seconds):
    await deferLater(reactor, seconds, lambda: None)


@pytest_twisted.ensureDeferred
async def test_a_gateway_by_name_is_trusted_from_what_its_name_resolves_to(database, dns_server):
    tree, by_srv, by_a = await _world(database)
    assert by_srv["port"] is None and by_srv["trusted_sources"] == [] and by_a["port"] == 5080
    await _resolver(database, dns_server).wake()

    isp_id = tree.isp["id"]
    srv = await database.transact(carriers.get_gateway, isp_id, by_srv["id"])
    assert srv["trusted_sources"] == ["127.0.0.5/32"] and srv["resolve_error"] is None
    assert srv["resolved_at"] is not None
    fixed = await database.transact(carriers.get_gateway, isp_id, by_a["id"])
    assert fixed["trusted_sources"] == ["127.0.0.7/32", "127.0.0.8/32"]
    # the shortest TTL of the records used (the SRV's 300, its target's 1) is held up to the floor;
    # the A records' 600 stands
    rows = await database.fetch("select gateway_id, extract(epoch from next_at - resolved_at)::int as held "
                                "from gateway_addresses order by gateway_id")
    assert [(row["gateway_id"], row["held"]) for row in rows] == [(by_srv["id"], 1), (by_a["id"], 600)]

    directory = Directory(database, b"s" * 32)
    trunk = await directory.trunk("127.0.0.5")
    assert trunk is not None and trunk.isp_id == isp_id
    assert await directory.trunk("127.0.0.6") is None
    listed = await database.transact(carriers.list_gateways, isp_id, tree.carrier["id"])
    assert {row["host"]: row["trusted_sources"] for row in listed}[f"sbc.{ZONE}"] == ["127.0.0.5/32"]


@pytest_twisted.ensureDeferred
async def test_a_new_answer_after_the_ttl_moves_the_trust(database, dns_server):
    tree, by_srv, _ = await _world(database)
    resolver = _resolver(database, dns_server)
    await resolver.wake()
    dns_server.zone.records[f"edge1.{ZONE}".encode()] = [dns.Record_A("127.0.0.6", ttl=1)]
    await resolver.wake()           # not due yet: the answer of a second ago stands
    assert await database.transact(carriers.gateways_for_source, "127.0.0.5")
    await _sleep(1.2)
    await resolver.wake()
    assert await database.transact(carriers.gateways_for_source, "127.0.0.5") == []
    [row] = await database.transact(carriers.gateways_for_source, "127.0.0.6")
    assert row["id"] == by_srv["id"]


@pytest_twisted.ensureDeferred
async def test_dns_that_stops_answering_keeps_the_last_good_addresses_and_says_why(database, dns_server):
    tree, by_srv, _ = await _world(database)
    resolver = _resolver(database, dns_server)
    await resolver.wake()
    first = await database.transact(carriers.get_gateway, tree.isp["id"], by_srv["id"])
    await dns_server.close()
    await _sleep(1.2)
    await resolver.wake()
    after = await database.transact(carriers.get_gateway, tree.isp["id"], by_srv["id"])
    assert after["trusted_sources"] == ["127.0.0.5/32"] and after["resolved_at"] == first["resolved_at"]
    assert after["resolve_error"].startswith("no answer from DNS for")
    assert await database.transact(carriers.gateways_for_source, "127.0.0.5")


@pytest_twisted.ensureDeferred
async def test_a_name_that_no_longer_exists_is_trusted_nowhere(database, dns_server):
    tree, by_srv, _ = await _world(database)
    resolver = _resolver(database, dns_server)
    await resolver.wake()
    del dns_server.zone.records[f"edge1.{ZONE}".encode()]
    del dns_server.zone.records[f"_sip._udp.sbc.{ZONE}".encode()]
    await _sleep(1.2)
    await resolver.wake()
    gateway = await database.transact(carriers.get_gateway, tree.isp["id"], by_srv["id"])
    assert gateway["trusted_sources"] == [] and gateway["resolve_error"] is None
    assert await database.transact(carriers.gateways_for_source, "127.0.0.5") == []


@pytest_twisted.ensureDeferred
async def test_source_ips_given_or_a_changed_host_replace_what_the_name_resolved_to(database, dns_server):
    tree, by_srv, _ = await _world(database)
    resolver = _resolver(database, dns_server)
    await resolver.wake()
    isp_id = tree.isp["id"]
    changed = await database.transact(carriers.update_gateway, isp_id, by_srv["id"], source_ips=["192.0.2.9"])
    assert changed["trusted_sources"] == ["192.0.2.9/32"]
    assert await database.transact(carriers.gateways_for_source, "127.0.0.5") == []
    await resolver.wake()
    assert await database.fetch("select * from gateway_addresses where gateway_id = %s", (by_srv["id"],)) == []
    moved = await database.transact(carriers.update_gateway, isp_id, by_srv["id"], source_ips=[], host="127.0.0.9")
    assert moved["port"] == 5060 and moved["trusted_sources"] == []    # source_ips emptied on purpose
