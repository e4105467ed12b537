"""
Keeping the addresses of carrier gateways given by DNS name, which IP authentication trusts.

A carrier that hands out `sipa.carrier.example` expects its calls from whatever that name
resolves to, and it moves SBCs by changing DNS. So every node looks the names up through
the RFC 3263 locator (SRV and A/AAAA, as a call out to the gateway does) and stores the
answer in `gateway_addresses`, each gateway leased to one node at a time, looked up again
when the records' TTL ends (held between `floor` and `ceiling` seconds, so a TTL of 0 does
not mean a look-up per tick nor one of a week a week of stale trust). A look-up that gets
no answer keeps the last good addresses, records why, and tries again after `floor`;
an answer of no such name empties them (the carrier withdrew it). The store's trigger
tells the SIP stack's caches when the addresses change.
"""

from __future__ import annotations

from typing import Callable

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.logger import Logger

from wevoip.sip.locate import Locator
from wevoip.store import carriers
from wevoip.store.database import Database
from wevoip.store.errors import quiet_when_unavailable

log = Logger(namespace="wevoip.sip.gatewaydns")


def refresh_after(ttl: int | None, floor: float, ceiling: float) -> float:
    """Seconds until the next look-up: the answer's TTL, within [floor, ceiling]."""
    if ttl is None:
        return floor
    return float(min(ceiling, max(floor, ttl)))


class GatewayResolver(Service):
    name = "gateway-dns"

    def __init__(self, clock, when_ready: Callable[[], defer.Deferred[Database]], locator: Locator, *,
                 floor: float, ceiling: float, lease: float = 60.0):
        self.clock = clock
        self.when_ready = when_ready
        self.locator = locator
        self.floor = floor
        self.ceiling = ceiling
        self.lease = lease
        self.database: Database | None = None
        self._loop: task.LoopingCall | None = None
        self._running: defer.Deferred | None = None
        self._again = False

    def startService(self) -> None:  # noqa: N802 (Twisted's name)
        super().startService()
        self.when_ready().addCallback(self._ready).addErrback(lambda _: None)   # the store logs its failure

    def _ready(self, database: Database) -> None:
        if not self.running:
            return
        self.database = database
        self._loop = task.LoopingCall(self.wake)
        self._loop.clock = self.clock
        # the shortest time a record is kept is the longest a due name waits for its look-up
        self._loop.start(self.floor, now=True)

    def stopService(self):  # noqa: N802 (Twisted's name)
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        running, self._running = self._running, None
        return running if running is not None else defer.succeed(None)

    def on_notify(self, _payload: str) -> None:
        """A gateway was added or changed (or notifications were missed): look now."""
        if self.database is not None and self.running:
            self.wake()

    def wake(self) -> defer.Deferred:
        if self._running is not None:
            self._again = True
            return self._running
        self._running = defer.Deferred.fromCoroutine(self._pass())
        self._running.addErrback(quiet_when_unavailable(log, "resolving gateway names failed"))
        self._running.addBoth(self._done)
        return self._running

    def _done(self, _) -> None:
        self._running = None
        if self._again and self.running:
            self._again = False
            self.wake()

    async def _pass(self) -> None:
        due = await self.database.transact(carriers.claim_names_due, self.lease)
        for row in due:
            await self._resolve(row)

    async def _resolve(self, row: dict) -> None:
        located = await self.locator.resolve(row["host"], row["port"], row["transport"])
        addresses = sorted({target.address for target in located.targets})
        before = sorted(str(network.network_address) for network in row["addresses"])
        if located.failure is not None and not addresses:
            await self.database.transact(carriers.record_failure, row["gateway_id"], located.failure, self.floor)
            log.warn("gateway {id} ({host}): {why}; still trusting {kept} (resolved {at})", id=row["gateway_id"],
                     host=row["host"], why=located.failure, kept=", ".join(before) or "nothing",
                     at=row["resolved_at"].isoformat() if row["resolved_at"] else "never")
            return
        next_in = refresh_after(located.ttl, self.floor, self.ceiling)
        await self.database.transact(carriers.record_addresses, row["gateway_id"], addresses, next_in)
        if addresses != before:
            log.info("gateway {id} ({host}) is trusted from {addresses} (next look-up in {next:.0f} s)",
                     id=row["gateway_id"], host=row["host"], addresses=", ".join(addresses) or "nowhere (no such name)",
                     next=next_in)
