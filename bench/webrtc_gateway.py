"""
Concurrent browser-to-phone calls through the WebRTC gateway, on real loopback sockets.

Each call is allocated on a `WebRtcGateway` around a running `InProcessRelay` (forwarder in
a child process, as in the node); the "browser" is the tests' far browser (ICE check,
DTLS, SRTP from this package's pieces) on its own UDP socket, the "phone" a plain UDP
socket. Every 20 ms each browser sends one SRTP G.711 packet and each phone one RTP
packet, for `--seconds`; then the packets each side received are counted (loss) and the
CPU the reactor process and the forwarder used is divided by the calls.

    .venv/bin/python -m bench.webrtc_gateway --calls 50 --seconds 10    (from the checkout's root)
"""

import argparse
import resource
import struct
from pathlib import Path

from twisted.internet import defer, reactor, task
from twisted.internet.protocol import DatagramProtocol

from tests.media.webrtc_support import BROWSER_ADDRESS, BROWSER_PRINT, CHROMIUM_OFFER, FarBrowser
from wevoip.config import MediaConfig
from wevoip.media.relay import InProcessRelay
from wevoip.media.sdp import parse
from wevoip.media.webrtc.dtls import Certificate
from wevoip.media.webrtc.gateway import WebRtcGateway
from wevoip.media.webrtc.srtp import SrtpSession


class Socket(DatagramProtocol):
    def __init__(self, on_datagram):
        self.on_datagram = on_datagram
        self.received = 0

    def datagramReceived(self, data, address):  # noqa: N802
        self.received += 1
        self.on_datagram(data)


class Wire:
    """The far browser's `leg`: what it sends goes to the gateway's port."""

    def __init__(self, port, destination):
        self.port, self.destination = port, destination

    def datagram_received(self, data, source):
        self.port.write(data, self.destination)


async def one_call(gateway, index, certificate):
    session = await gateway.allocate(f"bench-{index}", lambda reason: print("lost", reason))
    offer = CHROMIUM_OFFER.replace(f"sha-256 {BROWSER_PRINT}".encode(), str(certificate.fingerprint).encode())
    to_phone = parse(await session.offer("a", offer))
    phone = Socket(lambda data: None)
    phone_port = reactor.listenUDP(0, phone, interface="127.0.0.1")
    answer = (f"v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
              f"m=audio {phone_port.getHost().port} RTP/AVP 0\r\n").encode()
    await session.answer("b", answer)
    local = session.browsers["a"].local
    browser_protocol = Socket(lambda data: far.network(data, BROWSER_ADDRESS))
    browser_port = reactor.listenUDP(0, browser_protocol, interface="127.0.0.1")
    far = FarBrowser(reactor, certificate, gateway.certificate.fingerprint, local.ice_ufrag, local.ice_pwd)
    far.leg = Wire(browser_port, ("127.0.0.1", local.port))
    far.check()
    for _ in range(200):
        if far.keys is not None:
            break
        await task.deferLater(reactor, 0.01, lambda: None)
    assert far.keys is not None, "no DTLS"
    return session, far, browser_protocol, browser_port, phone, phone_port, to_phone.media[0].port


def cpu(pid=None):
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100


async def run(calls, seconds):
    config = MediaConfig(rtp_address="127.0.0.1", rtp_port_min=50000, rtp_port_max=50000 + 8 * calls + 8)
    relay = InProcessRelay(reactor, config)
    relay.startService()
    await relay.ready
    gateway = WebRtcGateway(reactor, relay)
    certificate = Certificate.generate()
    made = [await one_call(gateway, index, certificate) for index in range(calls)]
    senders = [SrtpSession(far.keys) for _, far, *_ in made]
    for _, far, browser, *_ in made:
        far.inbox.clear()
    sequence = [0]

    def tick():
        sequence[0] += 1
        n = sequence[0]
        for (session, far, _, browser_port, _, phone_port, relay_port), sender in zip(made, senders):
            header = struct.pack("!BBHII", 0x80, 0, n & 0xFFFF, n * 160, 0x1234)
            browser_port.write(sender.protect(header + b"\xd5" * 160), ("127.0.0.1", session.browsers["a"].local.port))
            phone_port.write(struct.pack("!BBHII", 0x80, 0, n & 0xFFFF, n * 160, 0x5678) + b"\xd5" * 160,
                             ("127.0.0.1", relay_port))
    ticks = int(seconds * 50)
    cpu_before, forwarder_before = cpu(), cpu(relay.forwarder_pid)
    loop = task.LoopingCall(tick)
    done = loop.start(0.02)
    await task.deferLater(reactor, seconds, lambda: None)
    loop.stop()
    await done
    await task.deferLater(reactor, 0.5, lambda: None)
    used = cpu() - cpu_before
    forwarder = cpu(relay.forwarder_pid) - forwarder_before
    sent = sequence[0]
    to_phone = sum(phone.received for *_, phone, _, _ in made)
    to_browser = sum(len(far.inbox) for _, far, *_ in made)
    print(f"{calls} calls, {seconds} s, {sent} packets each way per call (asked {ticks}): "
          f"browser->phone {to_phone}/{sent * calls} ({100 * (1 - to_phone / (sent * calls)):.2f}% lost), "
          f"phone->browser {to_browser}/{sent * calls} ({100 * (1 - to_browser / (sent * calls)):.2f}% lost); "
          f"CPU reactor {100 * used / seconds:.1f}% + forwarder {100 * forwarder / seconds:.1f}% of a core, "
          f"{100 * (used + forwarder) / seconds / calls:.2f}% per call (the bench's own senders included)")
    for session, *_ in made:
        await session.release()
    for _, _, _, browser_port, _, phone_port, _ in made:
        await browser_port.stopListening()
        await phone_port.stopListening()
    assert relay.pool.available == relay.pool.size, "ports leaked"
    await relay.stopService()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    arguments = parser.parse_args()
    task.react(lambda _: defer.ensureDeferred(run(arguments.calls, arguments.seconds)))


if __name__ == "__main__":
    main()
