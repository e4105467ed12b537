"""
The other nodes on the same database, as the edge proxy needs them: where to send a call for
a phone another node holds, and which source addresses are nodes (the only ones allowed to
use a flow token). Read from the `nodes` table at start and again whenever a node announces
itself (NOTIFY on `nodes`).
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger

from wevoip.sip.flow import normalise_host
from wevoip.store import nodes
from wevoip.store.errors import quiet_when_unavailable

log = Logger(namespace="wevoip.sip.nodes")


class Nodes:
    def __init__(self, database):
        self.database = database
        self._addresses: dict[str, tuple[str, int]] = {}
        self._hosts: frozenset[str] = frozenset()

    async def announce(self, name: str, address: tuple[str, int]) -> None:
        await self.database.transact(nodes.announce_node, name, *address)
        await self.load()

    async def attach(self, notifier) -> None:
        await notifier.subscribe(nodes.CHANNEL, self._notified)

    async def load(self) -> None:
        rows = await self.database.transact(nodes.list_nodes)
        self._addresses = {row["name"]: (normalise_host(row["sip_host"]), row["sip_port"]) for row in rows}
        self._hosts = frozenset(host for host, _ in self._addresses.values())

    def _notified(self, payload: str) -> None:
        defer.Deferred.fromCoroutine(self.load()).addErrback(quiet_when_unavailable(log, "reading the nodes failed"))

    def address(self, name: str) -> tuple[str, int] | None:
        return self._addresses.get(name)

    def hosts(self) -> frozenset[str]:
        return self._hosts
