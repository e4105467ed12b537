"""
The node's DNS client (twisted.names) and the TXT look-up that verifies an ISP's domain.

The resolver asks the configured servers, or those in /etc/resolv.conf; it keeps no cache
of its own, so a record an operator has just published is seen on the next try.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.names import client, dns, error

from wevoip.config import DnsConfig

RESOLV_CONF = "/etc/resolv.conf"


class LookupFailed(Exception):
    """No answer from DNS (a timeout or a server failure), as opposed to no such record."""


def make_resolver(reactor, config: DnsConfig) -> client.Resolver:
    timeout = (config.timeout_seconds,)
    if config.servers:
        return client.Resolver(servers=[(server.host, server.port) for server in config.servers],
                                reactor=reactor, timeout=timeout)
    return client.Resolver(resolv=RESOLV_CONF, reactor=reactor, timeout=timeout)


async def txt_values(resolver, name: str) -> list[str]:
    """Every TXT string published at `name`; none when the name or the record does not exist."""
    try:
        answers, _, _ = await resolver.lookupText(name)
    except (error.DNSNameError, error.DomainError, error.AuthoritativeDomainError):
        return []
    except (defer.TimeoutError, error.DNSQueryTimeoutError, error.DNSServerError,
            error.DNSQueryRefusedError, error.DNSFormatError, error.DNSNotImplementedError) as failure:
        raise LookupFailed(f"DNS did not answer for {name} ({type(failure).__name__})") from None
    return [b"".join(record.payload.data).decode("utf-8", "replace")
            for record in answers if record.type == dns.TXT and record.name.name.decode().lower() == name.lower()]
