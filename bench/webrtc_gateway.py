"""
Concurrent browser-to-phone calls through the WebRTC gateway, on real loopback sockets.

Each call is allocated on a `WebRtcGateway` around a running `InProcessRelay` (forwarder in
a child process, as in the node); the "browser" is the tests' far browser (ICE check,
DTLS, SRTP from this package's pieces) on its own UDP socket, the "phone" a plain UDP
socket. Once every call is keyed, the sockets are handed to `--senders` load-generator
processes (forked, so they share nothing with the reactor but the sockets and the SRTP
keys): each sends, for `--seconds`, 50 packets/s each way per call (an SRTP G.711 packet
from the browser, an RTP packet from the phone, spread evenly over each 20 ms), a consent
check from each browser every 2.5 s, and counts what arrives. Then the loss each way and
the CPU of the reactor process (the gateway) and of the forwarder are reported per call;
the generators' own CPU is reported apart and is not in the per-call figure. Steps go up
until the first with loss.

    .venv/bin/python -m bench.webrtc_gateway --calls 50,100,150,200 --seconds 10 --senders 2
        (from the checkout's root)
"""

import argparse
import json
import math
import multiprocessing
import resource
import select
import socket
import struct
import time

from twisted.internet import defer, reactor, task, threads
from twisted.internet.protocol import DatagramProtocol

from bench.relay import PACKET_INTERVAL, PAYLOAD, SLOTS, cpu_seconds, phone as plain_socket
from tests.media.webrtc_support import BROWSER_ADDRESS, BROWSER_PRINT, CHROMIUM_OFFER, FarBrowser
from wevoip.config import MediaConfig
from wevoip.media.relay import InProcessRelay
from wevoip.media.sdp import parse
from wevoip.media.webrtc.dtls import Certificate
from wevoip.media.webrtc.gateway import WebRtcGateway
from wevoip.media.webrtc.srtp import SrtpSession

CONSENT_INTERVAL = 2.5     # how often Chromium checks a working pair
DRAIN = 1.0                # seconds to keep receiving after the last packet
HEADER = struct.Struct("!BBHII")


class Handshake(DatagramProtocol):
    """The far browser's socket while ICE and DTLS run, on the reactor."""

    def __init__(self, far):
        self.far = far

    def datagramReceived(self, data, address):  # noqa: N802
        self.far.network(data, BROWSER_ADDRESS)


class Wire:
    """The far browser's `leg`: what it sends goes to the gateway's port."""

    def __init__(self, port, destination):
        self.port, self.destination = port, destination

    def datagram_received(self, data, source):
        self.port.write(data, self.destination)


class Call:
    """One call's two ends, as the generator drives them."""

    def __init__(self, session, far, browser, phone, to_gateway, to_relay):
        self.session, self.far = session, far
        self.browser, self.phone = browser, phone
        self.to_gateway, self.to_relay = to_gateway, to_relay


def lost(reason):
    if reason != "the media relay stopped":
        print("lost", reason, flush=True)


async def one_call(gateway, index, certificate):
    session = await gateway.allocate(f"bench-{index}", lost)
    offer = CHROMIUM_OFFER.replace(f"sha-256 {BROWSER_PRINT}".encode(), str(certificate.fingerprint).encode())
    to_phone = parse(await session.offer("a", offer))
    phone = plain_socket()
    answer = (f"v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
              f"m=audio {phone.getsockname()[1]} RTP/AVP 0\r\n").encode()
    await session.answer("b", answer)
    local = session.browsers["a"].local
    to_gateway = ("127.0.0.1", local.port)
    browser = plain_socket()
    far = FarBrowser(reactor, certificate, gateway.certificate.fingerprint, local.ice_ufrag, local.ice_pwd)
    # The reactor reads a duplicate of the browser's socket for the handshake; the
    # generator keeps the original, so the address ICE validated is the one media uses.
    port = reactor.adoptDatagramPort(browser.fileno(), socket.AF_INET, Handshake(far))
    far.leg = Wire(port, to_gateway)
    far.check()
    for _ in range(300):
        if far.keys is not None:
            break
        await task.deferLater(reactor, 0.01, lambda: None)
    await port.stopListening()
    assert far.keys is not None, "no DTLS"
    return Call(session, far, browser, phone, to_gateway, ("127.0.0.1", to_phone.media[0].port))


def generate(calls, start, seconds, results):
    """A generator process: both ends of `calls` for `seconds` from `start` (monotonic)."""
    poller = select.epoll()
    sockets = {}
    for call in calls:
        for sock, kind in ((call.browser, "to_browser"), (call.phone, "to_phone")):
            poller.register(sock.fileno(), select.EPOLLIN)
            sockets[sock.fileno()] = (sock, kind)
    counts = {"to_browser": 0, "to_phone": 0}
    senders = [SrtpSession(call.far.keys) for call in calls]
    slots = [list(zip(calls[i::SLOTS], senders[i::SLOTS])) for i in range(SLOTS)]
    sent = sequence = slot = 0
    late = 0.0
    next_slot, next_consent, end = start, start, start + seconds
    while True:
        now = time.monotonic()
        if next_slot <= now < end:
            late = max(late, now - next_slot)
            if slot == 0:
                sequence += 1
            header = HEADER.pack(0x80, 0, sequence & 0xFFFF, sequence * 160, 0x1234)
            for call, sender in slots[slot]:
                call.browser.sendto(sender.protect(header + PAYLOAD), call.to_gateway)
                call.phone.sendto(header + PAYLOAD, call.to_relay)
            sent += len(slots[slot])
            slot = (slot + 1) % SLOTS
            next_slot += PACKET_INTERVAL / SLOTS
        if next_consent <= now < end:
            for call in calls:
                call.browser.sendto(call.far.check_request(nominate=False), call.to_gateway)
            next_consent += CONSENT_INTERVAL
        if now >= end + DRAIN:
            break
        due = min(next_slot, next_consent) if now < end else end + DRAIN
        wait = max(0.0, due - time.monotonic())
        for fd, _ in poller.poll(wait):
            sock, kind = sockets[fd]
            while True:
                try:
                    data = sock.recv(2048)
                except BlockingIOError:
                    break
                if 128 <= data[0] < 192:      # media, not the consent checks' replies
                    counts[kind] += 1
    usage = resource.getrusage(resource.RUSAGE_SELF)
    results.put({"sent_each_way": sent, **counts, "late_ms": round(late * 1000, 1),
                 "cpu_seconds": usage.ru_utime + usage.ru_stime})


def cpu(pid=None):
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    return cpu_seconds(pid)


async def step(gateway, relay, count, seconds, senders):
    certificate = Certificate.generate()
    calls = [await one_call(gateway, index, certificate) for index in range(count)]
    results = multiprocessing.get_context("fork").Queue()
    start = time.monotonic() + 0.5
    workers = [multiprocessing.get_context("fork").Process(
        target=generate, args=(calls[i::senders], start, seconds, results)) for i in range(senders)]
    reactor_before, forwarder_before = cpu(), cpu(relay.forwarder_pid)
    for worker in workers:
        worker.start()
    totals = [await threads.deferToThread(results.get) for _ in workers]
    used, forwarder = cpu() - reactor_before, cpu(relay.forwarder_pid) - forwarder_before
    for worker in workers:
        worker.join()
    for call in calls:
        await call.session.release()
        call.browser.close()
        call.phone.close()
    assert relay.pool.available == relay.pool.size, "ports leaked"
    sent = sum(t["sent_each_way"] for t in totals)
    lost = {way: sent - sum(t[way] for t in totals) for way in ("to_phone", "to_browser")}
    return {"calls": count, "seconds": seconds, "senders": senders,
            "packets_per_second_each_way_per_call": round(sent / seconds / count, 1),
            "browser_to_phone_lost": lost["to_phone"], "phone_to_browser_lost": lost["to_browser"],
            "loss_percent": round(100 * sum(lost.values()) / (2 * sent), 3),
            "reactor_cpu_percent": round(100 * used / seconds, 1),
            "forwarder_cpu_percent": round(100 * forwarder / seconds, 1),
            "gateway_cpu_percent_per_call": round(100 * (used + forwarder) / seconds / count, 3),
            "generators_cpu_percent": round(100 * sum(t["cpu_seconds"] for t in totals) / seconds, 1),
            "generator_late_ms": max(t["late_ms"] for t in totals)}


async def run(steps, seconds, senders):
    most = max(steps)
    # Four port pairs a call (the relay's two, the browser leg's two), and room for ports
    # other programs on the machine hold in the range.
    config = MediaConfig(rtp_address="127.0.0.1", rtp_port_min=40000, rtp_port_max=min(65534, 40000 + 10 * most + 400))
    relay = InProcessRelay(reactor, config)
    relay.startService()
    await relay.ready
    gateway = WebRtcGateway(reactor, relay)
    best = 0
    try:
        for count in steps:
            result = await step(gateway, relay, count, seconds, senders or math.ceil(count / 100))
            print(json.dumps(result), flush=True)
            if result["browser_to_phone_lost"] or result["phone_to_browser_lost"]:
                break
            best = count
        print(json.dumps({"max_calls_without_loss": best}), flush=True)
    finally:
        await relay.stopService()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", default="50", help="comma-separated steps, e.g. 50,100,150,200")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--senders", type=int, default=0,
                        help="load-generator processes (default: one per 100 calls)")
    arguments = parser.parse_args()
    steps = [int(calls) for calls in arguments.calls.split(",")]
    task.react(lambda _: defer.ensureDeferred(run(steps, arguments.seconds, arguments.senders)))


if __name__ == "__main__":
    main()
