"""
What routing reads on every call, kept on the node: a subscriber's number and extension,
who holds a number, the ISP's gateways, and which ISPs a trunk address belongs to.

Operators change these rarely and calls read them all the time, so each node keeps them,
per ISP, and forgets an ISP's whole share when any node (or anything else writing the
tables) changes one of its subscribers, DIDs, gateways or carriers: migration 0051's
triggers publish the ISP's id on `call_routing` when that change commits. A value read
while a notification arrived is used but not kept, as it may predate the change.
Until it is attached to the node's notifier the cache keeps nothing, so routing without
one (tests, tools) reads through to the store.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from wevoip.store import carriers, routing
from wevoip.store.database import Row, Tx
from wevoip.store.notify import InvalidatedCache, Notifier

_MISSING = object()
SOURCES = "sources"


class RoutingCache:
    def __init__(self, limit: int = 100_000):
        """`limit`: entries kept per ISP (numbers asked for that nobody holds are kept too,
        and a carrier may ask for any)."""
        self.spaces = InvalidatedCache(routing.CHANNEL)
        self.limit = limit
        self._attached = False

    async def attach(self, notifier: Notifier) -> None:
        await self.spaces.attach(notifier)
        self._attached = True

    async def _read(self, space: str, key: Any, read: Callable[[], Awaitable[Any]]) -> Any:
        """Callers must not change what they get: it is shared with every later call."""
        kept = self.spaces.get(space)
        if kept is not None:
            value = kept.get(key, _MISSING)
            if value is not _MISSING:
                return value
        read_at = self.spaces.generation
        value = await read()
        if self._attached and self.spaces.generation == read_at:
            kept = self.spaces.get(space)
            if kept is None:
                kept = {}
                self.spaces.put(space, kept, read_at=read_at)
            if len(kept) >= self.limit:
                del kept[next(iter(kept))]
            kept[key] = value
        return value

    async def caller_identity(self, tx: Tx, isp_id: int, subscriber_id: int) -> Row | None:
        return await self._read(str(isp_id), ("origin", subscriber_id),
                                lambda: routing.caller_identity(tx, isp_id, subscriber_id))

    async def subscriber_by_extension(self, tx: Tx, isp_id: int, tenant_id: int, extension: str) -> Row | None:
        return await self._read(str(isp_id), ("extension", tenant_id, extension),
                                lambda: routing.subscriber_by_extension(tx, isp_id, tenant_id, extension))

    async def local_number(self, tx: Tx, isp_id: int, e164: str) -> Row | None:
        return await self._read(str(isp_id), ("number", e164), lambda: routing.local_number(tx, isp_id, e164))

    async def outbound_gateways(self, tx: Tx, isp_id: int) -> list[Row]:
        return await self._read(str(isp_id), "gateways", lambda: routing.outbound_gateways(tx, isp_id))

    async def trunk_isps(self, tx: Tx, address: str) -> list[int]:
        """The ISPs with a trunk at this address, lowest id first."""
        async def read():
            return sorted({row["isp_id"] for row in await carriers.gateways_for_source(tx, address)})
        return await self._read(SOURCES, address, read)
