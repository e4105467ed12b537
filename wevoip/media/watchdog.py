"""
The no-media timer: a call whose relay has forwarded nothing for its timeout is reported.

A phone that crashed or lost its network never sends BYE; without this its call (and the
customer's money and concurrency slot) would run until the maximum duration. The relay
feeds `heard` from the forwarder's activity reports; one timer per call, moved forward
lazily when it fires rather than on every report, so reports cost a dictionary write.
"""

from __future__ import annotations

from typing import Any, Callable, Hashable


class Watchdog:
    def __init__(self, clock: Any, on_silent: Callable[[Hashable, float], None]):
        self._clock = clock
        self._on_silent = on_silent
        self._watched: dict[Hashable, list] = {}

    def watch(self, key: Hashable, timeout: float) -> None:
        """Start (or keep) watching `key`, silent after `timeout` seconds with nothing heard."""
        entry = self._watched.get(key)
        if entry is None:
            entry = self._watched[key] = [self._clock.seconds(), timeout, None]
        else:
            entry[2].cancel()
            entry[1] = timeout
        entry[2] = self._clock.callLater(max(0.0, entry[0] + timeout - self._clock.seconds()),
                                         self._check, key)

    def heard(self, key: Hashable) -> None:
        entry = self._watched.get(key)
        if entry is not None:
            entry[0] = self._clock.seconds()

    def forget(self, key: Hashable) -> None:
        entry = self._watched.pop(key, None)
        if entry is not None and entry[2].active():
            entry[2].cancel()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._watched

    def _check(self, key: Hashable) -> None:
        last, timeout, _ = entry = self._watched[key]
        silent_for = self._clock.seconds() - last
        if silent_for >= timeout:
            del self._watched[key]
            self._on_silent(key, silent_for)
        else:
            entry[2] = self._clock.callLater(timeout - silent_for, self._check, key)
