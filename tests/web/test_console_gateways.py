"""The ISP console's carrier page with a gateway given by DNS name: no port needed (SRV
finds it), and the page says what the gateway is trusted from and when that was resolved
(by the gateway resolver, against the fixture's DNS server on loopback)."""

import pytest_twisted
from twisted.internet.task import Clock
from twisted.names import dns

from tests.web.consolepeople import people_of
from wevoip.sip.gatewaydns import GatewayResolver
from wevoip.sip.locate import Locator


@pytest_twisted.ensureDeferred
async def test_a_gateway_by_name_shows_what_it_is_trusted_from_and_since_when(console):
    people = await people_of(console, "gwpage.example.net")
    isp = people.isp_admin
    page = await isp.submit("/isp/carriers", "/isp/carriers", {"name": "Flagon", "max_concurrent_calls": ""})
    carrier_path = page.url[len(console.base):]
    page = await isp.post(f"{carrier_path}/gateways", {
        "host": "sbc.example.org", "port": "", "transport": "udp", "strip_digits": "0", "prefix": "",
        "source_ips": "", "priority": "5"})
    assert page.code == 200 and "SRV" in page and "nothing yet (not resolved yet)" in page

    console.dns_server.add("sbc.example.org", dns.Record_A("127.0.0.5", ttl=300))
    resolver = GatewayResolver(Clock(), lambda: None, Locator(console.dns_server.resolver(), ipv6=False), floor=30,
                               ceiling=3600)
    resolver.running, resolver.database = True, console.database
    await resolver.wake()
    page = await isp.get(carrier_path)
    assert "127.0.0.5/32 (resolved 20" in page and "UTC)" in page
