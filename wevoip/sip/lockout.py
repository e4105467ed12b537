"""
Locking a SIP user under a distributed password guess (issue 12 point 13).

The defence bans a source after a few failures, and once a user has many failures, every
further failing source at once. That stops neither a guess spread one try per address
over a hundred addresses, nor the right answer from the hundred-and-first. So once the
failures against one user reach `ban_after_user_failures` within the window, the user is
*locked*: for `user_lock_seconds` a right answer counts only from an address the user's
own phones are registered from now, or registered from in the last `known_source_days`;
from anywhere else it is refused exactly as a wrong one would be (a fresh challenge and a
failure counted), so the attacker cannot tell which guess was right.

The lock is a row in PostgreSQL (`store/siplocks.py`): every node honours it, a restart
keeps it, and the ISP hears of it in the same transaction (webhook `sip.user_locked` and a
mail to its contact). Each node keeps the locks in memory, loaded at start and re-read on
the `sip_user_locks` notification, so the hot path asks only a dict; the store is asked
about an address only for a locked user, from an address none of its bindings has.

Lifted by time, by a new SIP password (API, console: the remedy for a guessed one), or at
once from the manhole (`sip_access.unlock(subscriber_id)`). A user roaming to a new
address meanwhile (a mobile phone on a new network, the browser phone on another
connection) is refused until then: that is the price of not being able to tell it from
the attacker that has the password.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Iterable

from twisted.internet import defer
from twisted.logger import Logger

from wevoip.store import siplocks
from wevoip.store.errors import quiet_when_unavailable
from wevoip.store.notify import EVERYTHING

log = Logger(namespace="wevoip.sip.lockout")

# A phone registering from an address is written down at most once per this many seconds
# per node: a refresh every minute must not cost a write every minute.
NOTE_EVERY = 3600
_NOTED_LIMIT = 100_000


class UserLocks:
    def __init__(self, clock, database, *, lock_seconds: int, known_days: int,
                 sources_of: Callable[[int], Iterable[str]]):
        self.clock = clock
        self.database = database
        self.lock_seconds = lock_seconds
        self.known_seconds = known_days * 86400
        self.sources_of = sources_of          # the source addresses of a user's live bindings
        self._until: dict[int, float] = {}
        self._noted: OrderedDict[tuple[int, str], float] = OrderedDict()

    async def attach(self, notifier) -> None:
        await notifier.subscribe(siplocks.CHANNEL, self._notified)

    def _notified(self, payload: str) -> None:
        """One user's lock changed, or (EVERYTHING, after the store reconnected and
        notifications may have been missed) any may have: then all are read again."""
        work = self.load() if payload == EVERYTHING or not (payload.isascii() and payload.isdigit()) else self._reload(int(payload))
        defer.Deferred.fromCoroutine(work).addErrback(
            quiet_when_unavailable(log, "re-reading SIP locks ({id}) failed", id=payload))

    async def _reload(self, subscriber_id: int) -> None:
        row = await self.database.transact(siplocks.lock_of, subscriber_id)
        if row is None:
            self._until.pop(subscriber_id, None)
        else:
            self._until[subscriber_id] = row["locked_until"].timestamp()

    async def load(self) -> int:
        rows = await self.database.transact(siplocks.active_locks, self.clock.seconds())
        self._until = {row["subscriber_id"]: row["locked_until"].timestamp() for row in rows}
        return len(rows)

    def locked(self, subscriber_id: int) -> bool:
        until = self._until.get(subscriber_id)
        if until is None:
            return False
        if until <= self.clock.seconds():
            del self._until[subscriber_id]
            return False
        return True

    def remaining(self, subscriber_id: int) -> float:
        return max(0.0, self._until.get(subscriber_id, 0.0) - self.clock.seconds())

    async def admits(self, subscriber_id: int, address: str) -> bool:
        """Whether a right answer for this user from `address` counts."""
        if not self.locked(subscriber_id):
            return True
        if any(source.rpartition(":")[0].strip("[]") == address for source in self.sources_of(subscriber_id)):
            return True
        return await self.database.transact(siplocks.known_source, subscriber_id, address,
                                            self.clock.seconds() - self.known_seconds)

    async def lock(self, user, domain: str, failures: int, sources: list[str]) -> None:
        """Lock `user` (a directory SipUser), or extend a lock the guessing outlasts."""
        if self.lock_seconds <= 0:
            return
        if self.locked(user.subscriber_id) and self.remaining(user.subscriber_id) > self.lock_seconds / 2:
            return
        now = self.clock.seconds()
        row = await self.database.transact(
            siplocks.lock_user, isp_id=user.isp_id, tenant_id=user.tenant_id, subscriber_id=user.subscriber_id,
            username=user.username, domain=domain, now=now, seconds=self.lock_seconds, failures=failures,
            sources=sources)
        self._until[user.subscriber_id] = now + self.lock_seconds
        if row is not None:
            log.warn("SIP user {user}@{domain} locked to its known addresses for {seconds} s: {failures} failed"
                     " answers from {count} addresses", user=user.username, domain=domain,
                     seconds=self.lock_seconds, failures=failures, count=len(sources))

    def registered(self, subscriber_id: int, address: str) -> None:
        """Remember that the user registered from `address` (written at most hourly per node)."""
        now = self.clock.seconds()
        key = (subscriber_id, address)
        if now - self._noted.get(key, -NOTE_EVERY) < NOTE_EVERY:
            return
        self._noted[key] = now
        self._noted.move_to_end(key)
        if len(self._noted) > _NOTED_LIMIT:
            self._noted.popitem(last=False)
        defer.Deferred.fromCoroutine(
            self.database.transact(siplocks.note_source, subscriber_id, address, now)).addErrback(
            lambda failure: log.failure("noting where SIP user {id} registered from failed", failure,
                                        id=subscriber_id))

    async def unlock(self, subscriber_id: int) -> bool:
        lifted = await self.database.transact(siplocks.unlock_user, subscriber_id)
        self._until.pop(subscriber_id, None)
        return lifted

    async def forget(self) -> int:
        """Housekeeping: addresses unused for `known_source_days` are nobody's any more."""
        return await self.database.transact(siplocks.forget_sources, self.clock.seconds() - self.known_seconds)

    def locks(self) -> list[dict]:
        """The live locks this node knows, for the manhole."""
        return [{"subscriber_id": sid, "seconds_left": int(self.remaining(sid))}
                for sid in sorted(self._until) if self.locked(sid)]
