"""
The SIP stack's questions to the store, cached: which tenant serves this domain, what
are this user's digests, is this address a carrier's trunk.

Every answer is cached, unknowns too (a scanner asking for ten thousand names must not
cost ten thousand queries twice), in bounded caches that any node's change empties at
commit through LISTEN/NOTIFY (the store publishes on these channels when it writes).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from wevoip.store import carriers, subscribers, tenants
from wevoip.store.domains import DOMAINS_CHANNEL
from wevoip.store.notify import InvalidatedCache

_UNKNOWN = False


@dataclass(frozen=True, slots=True)
class Tenant:
    isp_id: int
    tenant_id: int
    domain: str


@dataclass(frozen=True, slots=True)
class SipUser:
    """What authentication needs of a subscriber, kept small: one per phone in the cache."""

    subscriber_id: int
    isp_id: int
    tenant_id: int
    username: str
    ha1_md5: str
    ha1_sha256: str


@dataclass(frozen=True, slots=True)
class Trunk:
    isp_id: int
    carrier_id: int
    gateway_id: int


class Directory:
    def __init__(self, database, secret: bytes, *, limit: int = 100_000):
        self.database = database
        self._secret = secret
        self._domains = InvalidatedCache(DOMAINS_CHANNEL, limit)
        self._credentials = InvalidatedCache(subscribers.CREDENTIALS_CHANNEL, limit)
        self._usernames = InvalidatedCache(subscribers.USERNAMES_CHANNEL, limit)
        self._trunks = InvalidatedCache(carriers.GATEWAYS_CHANNEL, limit)

    async def attach(self, notifier) -> None:
        for cache in (self._domains, self._credentials, self._usernames, self._trunks):
            await cache.attach(notifier)

    async def _cached(self, cache: InvalidatedCache, key: str, look_up):
        value = cache.get(key)
        if value is None:
            value = await self.database.transact(look_up)
            value = _UNKNOWN if value is None else value
            cache.put(key, value)
        return None if value is _UNKNOWN else value

    async def tenant(self, domain: str) -> Tenant | None:
        domain = domain.lower().rstrip(".")

        async def look_up(tx):
            row = await tenants.tenant_by_sip_domain(tx, domain)
            return None if row is None else Tenant(row["isp_id"], row["id"], row["sip_domain"])
        return await self._cached(self._domains, domain, look_up)

    async def credentials(self, domain: str, username: str) -> SipUser | None:
        key = subscribers.credentials_key(username, domain)

        async def look_up(tx):
            row = await subscribers.sip_credentials(tx, domain, username)
            return None if row is None else SipUser(row["id"], row["isp_id"], row["tenant_id"],
                                                    row["username"], row["ha1_md5"], row["ha1_sha256"])
        return await self._cached(self._credentials, key, look_up)

    async def bare_realm(self, username: str) -> str | None:
        """The realm to challenge a phone that sent a bare IP address; see realm_for_username."""
        pick = int.from_bytes(hmac.new(self._secret, username.encode("utf-8"), hashlib.sha256).digest()[:4],
                              "big")
        return await self._cached(self._usernames, username,
                                  lambda tx: subscribers.realm_for_username(tx, username, pick))

    async def trunk(self, address: str) -> Trunk | None:
        async def look_up(tx):
            rows = await carriers.gateways_for_source(tx, address)
            return Trunk(rows[0]["isp_id"], rows[0]["carrier_id"], rows[0]["id"]) if rows else None
        return await self._cached(self._trunks, address, look_up)
