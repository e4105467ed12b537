"""The TXT look-up tells "no such record" from "DNS did not answer"."""

import socket

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.names import dns

from tests.dnsserver import LoopbackDNS
from wevoip.config import DnsConfig, Listen
from wevoip.resolver import LookupFailed, make_resolver, txt_values


@pytest_twisted.ensureDeferred
async def test_txt_values_joins_strings_and_sees_missing_names_as_empty():
    server = LoopbackDNS("example.org", {"pbx.example.org": [dns.Record_TXT(b"wevoip-", b"verify=1", ttl=5)]})
    try:
        resolver = make_resolver(reactor, DnsConfig(servers=(Listen(*server.address),), timeout_seconds=2))
        assert await txt_values(resolver, "pbx.example.org") == ["wevoip-verify=1"]
        assert await txt_values(resolver, "missing.example.org") == []
    finally:
        await server.close()


@pytest_twisted.ensureDeferred
async def test_a_silent_server_is_a_lookup_failure():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        resolver = make_resolver(reactor, DnsConfig(servers=(Listen(*silent.getsockname()),), timeout_seconds=1))
        with pytest.raises(LookupFailed):
            await txt_values(resolver, "pbx.example.org")
