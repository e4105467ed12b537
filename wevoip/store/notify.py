"""
LISTEN/NOTIFY between nodes, and a cache that forgets what another node changed.

Nodes keep small in-memory indexes (domains, registrations) in front of PostgreSQL. When a
node writes, it publishes the key it changed on a channel, in the same transaction as the
write, so every node (itself included) drops that key exactly when the change is visible.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any, Callable

from twisted.logger import Logger

from wevoip.store.database import Tx, open_connection

log = Logger(namespace="wevoip.store.notify")

_CHANNEL = re.compile(r"[a-z][a-z0-9_]{0,62}")
EVERYTHING = "*"


def _checked(channel: str) -> str:
    if not _CHANNEL.fullmatch(channel):
        raise ValueError(f"channel {channel!r} is not a lower-case identifier")
    return channel


async def publish(tx: Tx, channel: str, payload: str) -> None:
    """Delivered when `tx` commits, never if it rolls back."""
    await tx.execute("select pg_notify(%s, %s)", (_checked(channel), payload))


class Notifier:
    """One listening connection per node, fanning notifications out to callbacks.

    When that connection is lost (`on_lost` hears it), what was published meanwhile is
    never delivered: `restart` listens again on every channel and then tells every
    callback EVERYTHING, so each cache forgets what it holds rather than serve stale rows."""

    def __init__(self, reactor, dsn: str):
        self.reactor = reactor
        self.dsn = dsn
        self._connection = None
        self._callbacks: dict[str, list[Callable[[str], Any]]] = defaultdict(list)
        self.on_lost: Callable[[str], None] | None = None

    async def start(self) -> None:
        self._connection = await open_connection(self.reactor, self.dsn, self._lost)
        self._connection.addNotifyObserver(self._dispatch)

    def _lost(self, reason: str) -> None:
        if self.on_lost is not None:
            self.on_lost(reason)

    def stop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def restart(self) -> None:
        self.stop()
        await self.start()
        for channel in [channel for channel, callbacks in self._callbacks.items() if callbacks]:
            await self._connection.runOperation(f'listen "{channel}"')
        for channel in list(self._callbacks):
            self._dispatch(_Missed(channel))

    async def subscribe(self, channel: str, callback: Callable[[str], Any]) -> None:
        if not self._callbacks[_checked(channel)] and self._connection is not None:
            await self._connection.runOperation(f'listen "{channel}"')
        self._callbacks[channel].append(callback)

    def _dispatch(self, notification) -> None:
        for callback in list(self._callbacks.get(notification.channel, ())):
            try:
                callback(notification.payload)
            except Exception:
                log.failure("notification handler for {channel} failed",
                            channel=notification.channel)


class _Missed:
    """A notification of everything on `channel`, for what was published while deaf."""

    def __init__(self, channel: str):
        self.channel = channel
        self.payload = EVERYTHING


class InvalidatedCache:
    """
    A dict whose keys are dropped when any node publishes them on `channel` (or a trigger
    does, for tables any code may write). With a
    `limit`, the oldest entry goes when it is full: caches that answer the network (the
    SIP stack's look-ups of domains and users) must not grow with what strangers ask.
    """

    def __init__(self, channel: str, limit: int | None = None):
        self.channel = _checked(channel)
        self.limit = limit
        self.generation = 0
        self._items: dict[str, Any] = {}

    async def attach(self, notifier: Notifier) -> None:
        await notifier.subscribe(self.channel, self._forget)

    def _forget(self, key: str) -> None:
        self.generation += 1
        if key == EVERYTHING:
            self._items.clear()
        else:
            self._items.pop(key, None)

    def get(self, key: str, default: Any = None) -> Any:
        return self._items.get(key, default)

    def put(self, key: str, value: Any, *, read_at: int | None = None) -> None:
        """`read_at`: the generation when the value was read; if a notification came since,
        the value may be older than it, and is not kept."""
        if read_at is not None and read_at != self.generation:
            return
        self._items[key] = value
        if self.limit is not None and len(self._items) > self.limit:
            del self._items[next(iter(self._items))]

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)
