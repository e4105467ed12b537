"""
Coarse timers for the many long, imprecise waits of a busy server.

Every finished non-INVITE server transaction over UDP waits Timer J (32 s) to absorb
retransmissions: at a few thousand REGISTERs a second that is a hundred thousand waits.
One reactor DelayedCall each costs memory and a heap operation per start and stop; here
they share one DelayedCall per `resolution`-wide slot and fire up to `resolution` late,
which no SIP timer of that length minds. Short delays go straight to the clock.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from twisted.internet.interfaces import IReactorTime


class _Timer:
    __slots__ = ("function", "args", "cancelled", "called")

    def __init__(self, function: Callable[..., Any], args: tuple):
        self.function = function
        self.args = args
        self.cancelled = False
        self.called = False

    def active(self) -> bool:
        return not (self.cancelled or self.called)

    def cancel(self) -> None:
        """Also lets go of the function, so a cancelled timer holds no transaction."""
        self.cancelled = True
        self.function, self.args = None, ()


class TimerWheel:
    """The callLater of an IReactorTime, for the timer machines; coarse for long delays."""

    def __init__(self, clock: IReactorTime, resolution: float = 1.0):
        self.clock = clock
        self.resolution = resolution
        self._slots: dict[int, list[_Timer]] = {}

    def seconds(self) -> float:
        return self.clock.seconds()

    def callLater(self, delay: float, function: Callable[..., Any], *args: Any):  # noqa: N802 (IReactorTime's name)
        if delay < 2 * self.resolution:
            return self.clock.callLater(delay, function, *args)
        timer = _Timer(function, args)
        slot = math.ceil((self.clock.seconds() + delay) / self.resolution)
        timers = self._slots.get(slot)
        if timers is None:
            timers = self._slots[slot] = []
            self.clock.callLater(slot * self.resolution - self.clock.seconds(), self._fire, slot)
        timers.append(timer)
        return timer

    def _fire(self, slot: int) -> None:
        for timer in self._slots.pop(slot, ()):
            if not timer.cancelled:
                timer.called = True
                timer.function(*timer.args)

    def pending(self) -> int:
        return sum(1 for timers in self._slots.values() for timer in timers if timer.active())
