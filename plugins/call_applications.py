"""
The first call applications: the echo test and a play-a-file announcement.

An operator's own announcement is one line in a module of a configured plugins folder:
`welcome = Announcement("welcome", "Our welcome", Path("/srv/prompts/welcome.wav"))`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from twisted.internet.defer import Deferred
from twisted.plugin import IPlugin
from zope.interface import implementer

from wevoip.interfaces import ICallApplication

BUNDLED = Path(__file__).resolve().parent / "announcement.wav"   # two 440 Hz beeps, 0.4 s


@implementer(IPlugin, ICallApplication)
@dataclass(frozen=True)
class Echo:
    """Sends the caller's audio back until the caller hangs up: a phone's and a network's
    quickest check of both directions of media."""

    name: str = "echo"
    description: str = "Echo test: you hear what you say"

    def answer(self, call) -> None:
        call.echo()


@implementer(IPlugin, ICallApplication)
@dataclass(frozen=True)
class Announcement:
    """Plays a WAV file (8 kHz mono 16-bit) and hangs up."""

    name: str = "announcement"
    description: str = "Plays a recorded announcement, then hangs up"
    path: Path = BUNDLED

    async def _play(self, call) -> None:
        await call.play(self.path)
        call.hang_up()

    def answer(self, call) -> Deferred:
        return Deferred.fromCoroutine(self._play(call))


echo = Echo()
announcement = Announcement()
