"""
OPTIONS pings to phones registered over UDP (off unless `registrar.options_ping_interval`).

A UDP phone behind NAT is reachable only while its NAT keeps the pinhole, often 30 to 120
seconds; a phone that does not send its own keep-alives loses incoming calls. The pinger
sends each such binding an OPTIONS every `interval` seconds, from the socket it registered
to. Pings are spread: each one-second tick serves the AORs whose id falls in that second's
slot, so 100,000 phones are 100,000/interval packets a second, not one burst. Answers are
not needed (the packet itself refreshes the NAT); they reach the core and are dropped
there as strays.
"""

from __future__ import annotations

import secrets
from typing import Callable

from twisted.internet import task

from wevoip.sip.message import Headers, Request, serialise
from wevoip.sip.registrar import Binding, Registrar
from wevoip.sip.uri import parse_uri


def options_ping(binding: Binding) -> bytes:
    local = binding.local or "0.0.0.0:5060"
    headers = Headers([
        ("Via", f"SIP/2.0/UDP {local};branch=z9hG4bK{secrets.token_hex(8)};rport"),
        ("Max-Forwards", "70"),
        ("From", f"<sip:keepalive@{local}>;tag={secrets.token_hex(4)}"),
        ("To", f"<{binding.contact}>"),
        ("Call-ID", f"{secrets.token_hex(12)}@{local}"),
        ("CSeq", "1 OPTIONS"),
    ])
    return serialise(Request("OPTIONS", parse_uri(binding.contact), headers))


class OptionsPinger:
    def __init__(self, clock, registrar: Registrar, send: Callable[[Binding, bytes], None],
                 interval: int):
        self.registrar = registrar
        self.send = send
        self.interval = interval
        self._tick = 0
        self._loop = task.LoopingCall(self._ping)
        self._loop.clock = clock
        self.sent = 0

    def start(self) -> None:
        self._loop.start(1, now=False)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def _ping(self) -> None:
        slot = self._tick % self.interval
        self._tick += 1
        for subscriber_id, binding in self.registrar.all_bindings():
            if subscriber_id % self.interval == slot and binding.transport == "udp" \
                    and binding.node == self.registrar.node:
                self.send(binding, options_ping(binding))
                self.sent += 1
