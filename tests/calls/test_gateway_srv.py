"""
An outbound call to a carrier gateway given by DNS name without a port goes where RFC 3263
says: the SRV record's target and port (a real DNS server on loopback, tests/dnsserver.py),
with the name kept in the Request-URI; a name given with a port is looked up by A/AAAA only.
The B2BUA and its peers are those of test_b2bua.py (real core, digest and store).
"""

import pytest_twisted
from twisted.internet import defer
from twisted.names import dns

from tests.calls.test_b2bua import Peer, dial, make_world, until
from tests.dnsserver import LoopbackDNS
from wevoip.sip.locate import Locator
from wevoip.store import carriers

ZONE = "carrier.test"


async def _world(database, port):
    server = LoopbackDNS(ZONE, {
        f"_sip._udp.sbc.{ZONE}": [dns.Record_SRV(20, 0, 5090, f"edge2.{ZONE}", ttl=60),
                                  dns.Record_SRV(10, 0, 5070, f"edge1.{ZONE}", ttl=60)],
        f"edge1.{ZONE}": [dns.Record_A("127.0.0.4", ttl=60)],
        f"edge2.{ZONE}": [dns.Record_A("127.0.0.5", ttl=60)],
        f"sbc.{ZONE}": [dns.Record_A("127.0.0.6", ttl=60)],
    })
    world = await make_world(database, locator=Locator(server.resolver(), ipv6=False))

    async def by_name(tx):
        isp_id = world.tree.isp["id"]
        await carriers.update_gateway(tx, isp_id, world.tree.gateway["id"], host=f"sbc.{ZONE}", port=port)
        second = await tx.fetch_value("select id from gateways where host = '127.0.0.3'")
        await carriers.update_gateway(tx, isp_id, second, enabled=False)
    await database.transact(by_name)
    return world, server


@pytest_twisted.ensureDeferred
async def test_a_gateway_by_name_without_a_port_gets_the_call_at_its_srv_target(database):
    world, server = await _world(database, None)
    try:
        edge1 = Peer(world.core, world.wire, ("127.0.0.4", 5070), "edge1")
        await dial(world, "2125550100")
        await until(lambda: world.wire.sent.get(edge1.address), "the INVITE at the SRV target")
        [invite] = edge1.take()
        assert str(invite.uri) == f"sip:0012125550100@sbc.{ZONE}"      # the name, no port: RFC 3263 §4
        assert world.wire.sent.get(("127.0.0.6", 5060)) is None        # not the name's own A record
    finally:
        await defer.maybeDeferred(server.close)


@pytest_twisted.ensureDeferred
async def test_a_gateway_by_name_with_a_port_is_looked_up_by_address_only(database):
    world, server = await _world(database, 5080)
    try:
        gateway = Peer(world.core, world.wire, ("127.0.0.6", 5080), "sbc")
        await dial(world, "2125550100")
        await until(lambda: world.wire.sent.get(gateway.address), "the INVITE at the name's address")
        [invite] = gateway.take()
        assert str(invite.uri) == f"sip:0012125550100@sbc.{ZONE}:5080"
    finally:
        await defer.maybeDeferred(server.close)
