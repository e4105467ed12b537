"""
The relay side of bench/relay.py: a reactor running wevoip's InProcessRelay, driven by
JSON lines on stdin (one reply line on stdout each), as a B2BUA would drive it.

    {"cmd": "open", "calls": [[port_a, port_b], ...]}  -> {"ports": [[to_a, to_b], ...]}
    {"cmd": "close"}                                   -> {"closed": n}
    {"cmd": "pids"}                                    -> {"pids": [relay, forwarder or null]}

`--forwarder reactor` forwards with plain Twisted DatagramProtocols on the reactor instead
(no latching or checks), the baseline the forwarder is measured against.
"""

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twisted.internet import defer, protocol, reactor, stdio  # noqa: E402
from twisted.internet.error import CannotListenError  # noqa: E402
from twisted.protocols.basic import LineReceiver  # noqa: E402

from wevoip.config import MediaConfig  # noqa: E402
from wevoip.media.relay import InProcessRelay  # noqa: E402

OFFER = ("v=0\r\no=bench 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
         "m=audio {port} RTP/AVP 0\r\n")


class ReactorLeg(protocol.DatagramProtocol):
    def __init__(self, peer):
        self.peer = peer
        self.other = None

    def datagramReceived(self, data, source):
        self.other.transport.write(data, self.other.peer)


class Harness(LineReceiver):
    delimiter = b"\n"

    def __init__(self, relay, reactor_ports):
        self.relay = relay
        self.reactor_ports = reactor_ports
        self.sessions = []
        self.listening = []

    def lineReceived(self, line):
        reply = defer.Deferred.fromCoroutine(self.handle(json.loads(line)))
        reply.addErrback(lambda failure: {"error": failure.getErrorMessage()})
        reply.addCallback(lambda answer: self.sendLine(json.dumps(answer).encode()))

    async def handle(self, message):
        if message["cmd"] == "pids":
            return {"pids": [os.getpid(), self.relay.forwarder_pid if self.relay else None]}
        if message["cmd"] == "open":
            ports = []
            for port_a, port_b in message["calls"]:
                ports.append(await (self.open_reactor if self.relay is None else self.open)(port_a, port_b))
            return {"ports": ports}
        closed = len(self.sessions) + len(self.listening) // 2
        await defer.gatherResults([session.release() for session in self.sessions])
        await defer.gatherResults([defer.maybeDeferred(port.stopListening) for port in self.listening])
        self.reactor_ports[:0] = [port.getHost().port for port in self.listening]
        self.sessions, self.listening = [], []
        return {"closed": closed}

    async def open(self, port_a, port_b):
        session = await self.relay.allocate(f"bench-{port_a}", lambda reason: None)
        offer = await session.offer("a", OFFER.format(port=port_a).encode())
        answer = await session.answer("b", OFFER.format(port=port_b).encode())
        self.sessions.append(session)
        return [_port(answer), _port(offer)]

    async def open_reactor(self, port_a, port_b):
        leg_a, leg_b = ReactorLeg(("127.0.0.1", port_a)), ReactorLeg(("127.0.0.1", port_b))
        leg_a.other, leg_b.other = leg_b, leg_a
        listening = [self.listen(leg) for leg in (leg_a, leg_b)]
        self.listening += listening
        return [listening[0].getHost().port, listening[1].getHost().port]

    def listen(self, leg):
        while True:
            try:
                return reactor.listenUDP(self.reactor_ports.pop(), leg, interface="127.0.0.1")
            except CannotListenError:
                continue


def _port(sdp):
    return int(next(line for line in sdp.decode().split("\r\n") if line.startswith("m=")).split()[1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--forwarder", choices=["process", "thread", "reactor"], default="process")
    parser.add_argument("--ports", default="24000-31999")
    args = parser.parse_args()
    low, high = map(int, args.ports.split("-"))
    relay = None
    if args.forwarder != "reactor":
        relay = InProcessRelay(reactor, MediaConfig(rtp_address="127.0.0.1", rtp_port_min=low,
                                                    rtp_port_max=high, forwarder=args.forwarder,
                                                    no_media_timeout_ms=3_600_000))
        relay.startService()
    stdio.StandardIO(Harness(relay, list(range(high, low, -1))))
    reactor.run()


if __name__ == "__main__":
    main()
