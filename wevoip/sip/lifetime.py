"""
How long a SIP connection (TCP, TLS, WS, WSS) is kept.

A connection must finish its set-up in time: the TLS handshake within `tls_handshake`
seconds and the WebSocket upgrade within `ws_upgrade` seconds, both counted from the
accept (a TLS connection that never handshakes used to be kept forever). After that it is
kept while it is used: anything received within `idle` seconds (a message, an RFC 5626
CRLF keep-alive, a WebSocket ping), a registration binding made through it that has not
expired (`Flow.held_until`), or anything a keeper says it carries (the B2BUA: a call's
dialog runs over it). A connection with none of these is closed, and its peer opens a new
one when it has something to say, as RFC 5923 §11 and RFC 5626 expect of it.

`Lifetimes` also keeps the connections in order of last activity, so that when the SIP
connection cap is reached a new connection can take the place of the one idle longest
that carries nothing (`make_room`): a flood of idle connections then cannot lock out a
phone that comes to register.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Callable

from wevoip.sip.flow import Flow

EVICTION_SCAN = 64


@dataclass(frozen=True)
class Timeouts:
    idle: float = 180.0
    tls_handshake: float = 10.0
    ws_upgrade: float = 10.0


class Lifetime:
    """The timers of one connection. `expire(reason)` closes it; `flow` is set once the
    connection has one (the set-up is done)."""

    __slots__ = ("owner", "expire", "flow", "last", "_idle", "_setup", "__weakref__")

    def __init__(self, owner: Lifetimes, expire: Callable[[str], None]):
        self.owner = owner
        self.expire = expire
        self.flow: Flow | None = None
        self.last = owner.clock.seconds()
        self._setup: dict[str, object] = {}
        self._idle = owner.clock.callLater(owner.timeouts.idle, self._check_idle)

    def await_setup(self, step: str) -> None:
        """`step` ("handshake" or "upgrade") must be done in time, or the connection goes."""
        seconds = self.owner.timeouts.tls_handshake if step == "handshake" else self.owner.timeouts.ws_upgrade
        self._setup[step] = self.owner.clock.callLater(seconds, self._too_slow, step)

    def done(self, step: str) -> None:
        call = self._setup.pop(step, None)
        if call is not None and call.active():
            call.cancel()

    def received(self) -> None:
        self.last = self.owner.clock.seconds()
        self.owner._recent.move_to_end(self)

    def stop(self) -> None:
        for call in [self._idle, *self._setup.values()]:
            if call is not None and call.active():
                call.cancel()
        self._setup.clear()
        self._idle = None
        self.owner._recent.pop(self, None)

    def _too_slow(self, step: str) -> None:
        self._setup.pop(step, None)
        self.owner.closed["handshake" if step == "handshake" else "upgrade"] += 1
        self._end("handshake" if step == "handshake" else "upgrade")

    def _check_idle(self) -> None:
        clock = self.owner.clock
        idle = self.owner.timeouts.idle
        due = self.last + idle
        now = clock.seconds()
        if now < due:
            self._idle = clock.callLater(due - now, self._check_idle)
            return
        if self.owner.busy(self.flow):
            self._idle = clock.callLater(idle, self._check_idle)
            return
        self._idle = None
        self.owner.closed["idle"] += 1
        self._end("idle")

    def _end(self, reason: str) -> None:
        self.stop()
        self.expire(reason)


class Lifetimes:
    def __init__(self, clock, timeouts: Timeouts):
        self.clock = clock
        self.timeouts = timeouts
        self.keepers: list[Callable[[Flow], bool]] = []
        self.closed: Counter[str] = Counter()
        self._recent: OrderedDict[Lifetime, None] = OrderedDict()

    def watch(self, expire: Callable[[str], None]) -> Lifetime:
        lifetime = Lifetime(self, expire)
        self._recent[lifetime] = None
        return lifetime

    def keep_while(self, keeper: Callable[[Flow], bool]) -> None:
        """`keeper(flow)` says whether something (a call) still needs the connection."""
        self.keepers.append(keeper)

    def busy(self, flow: Flow | None) -> bool:
        if flow is None or flow.closed:
            return False
        return flow.held_until > self.clock.seconds() or any(keeper(flow) for keeper in self.keepers)

    def make_room(self) -> bool:
        """Close the connection idle longest that carries nothing; False if none of the
        oldest `EVICTION_SCAN` is free (those that are busy move to the back)."""
        for _ in range(min(EVICTION_SCAN, len(self._recent))):
            lifetime = next(iter(self._recent))
            if self.busy(lifetime.flow):
                self._recent.move_to_end(lifetime)
                continue
            self.closed["evicted"] += 1
            lifetime._end("evicted")
            return True
        return False

    def __len__(self) -> int:
        return len(self._recent)

    def report(self) -> dict:
        return {"watched": len(self._recent), "closed": dict(sorted(self.closed.items()))}
