"""
Relay load: N calls of G.711 (172-byte RTP packets, 20 ms) both ways through the relay.

An independent load generator: it does not import wevoip. It starts bench/relay_harness.py
(the relay, its forwarder and a reactor driven over stdin), opens N relay sessions there,
and plays both phones of every call from its own sockets: 50 packets/s each way per call,
spread evenly over each 20 ms. Per step it reports packets lost, the relay's CPU (reactor
process plus forwarder) per call, and stops at the first step with loss.

    .venv/bin/python bench/relay.py --calls 100,200,300,400,500 --seconds 10
    .venv/bin/python bench/relay.py --forwarder reactor --calls 100,200,300

`--procs` splits the phones over several generator processes (the generator needs about
as much CPU as the relay, so on 2 cores one generator process is the fair setting).
"""

import argparse
import json
import multiprocessing
import os
import select
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

PACKET_INTERVAL = 0.020
SLOTS = 4
PAYLOAD = b"\xd5" * 160
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def phone():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def play(calls, seconds, results):
    """Send from both phones of every call for `seconds`, counting what arrives."""
    poller = select.epoll()
    received = {}
    for a, b, to_a, to_b in calls:
        for sock in (a, b):
            poller.register(sock.fileno(), select.EPOLLIN)
            received[sock.fileno()] = sock
    counts = dict.fromkeys(received, 0)
    slots = [calls[i::SLOTS] for i in range(SLOTS)]
    header = struct.Struct("!BBHII")
    sent = 0
    sequence = 0
    start = time.monotonic()
    next_slot = start
    slot = 0
    late = 0.0
    end = start + seconds
    while True:
        now = time.monotonic()
        if now >= next_slot and now < end:
            late = max(late, now - next_slot)
            if slot == 0:
                sequence += 1
            packet = header.pack(0x80, 0, sequence & 0xFFFF, sequence * 160, 1) + PAYLOAD
            for a, b, to_a, to_b in slots[slot]:
                a.sendto(packet, to_a)
                b.sendto(packet, to_b)
                sent += 2
            slot = (slot + 1) % SLOTS
            next_slot += PACKET_INTERVAL / SLOTS
        if now >= end + 1.0:
            break
        wait = max(0.0, min(next_slot, end + 1.0) - time.monotonic())
        for fd, _ in poller.poll(wait):
            sock = received[fd]
            while True:
                try:
                    sock.recv(2048)
                except BlockingIOError:
                    break
                counts[fd] += 1
    results.put({"sent": sent, "received": sum(counts.values()), "late_ms": round(late * 1000, 1)})


class Harness:
    def __init__(self, forwarder, ports):
        here = Path(__file__).resolve().parent
        self.process = subprocess.Popen(
            [sys.executable, str(here / "relay_harness.py"), "--forwarder", forwarder, "--ports", ports],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def ask(self, **message):
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()
        reply = json.loads(self.process.stdout.readline())
        if "error" in reply:
            raise RuntimeError(f"relay harness: {reply['error']}")
        return reply

    def stop(self):
        self.process.terminate()
        self.process.wait()


def step(harness, pids, count, seconds, procs):
    phones = [(phone(), phone()) for _ in range(count)]
    ports = harness.ask(cmd="open", calls=[[a.getsockname()[1], b.getsockname()[1]] for a, b in phones])["ports"]
    calls = [(a, b, ("127.0.0.1", to_a), ("127.0.0.1", to_b)) for (a, b), (to_a, to_b) in zip(phones, ports)]
    results = multiprocessing.get_context("fork").Queue()
    workers = [multiprocessing.get_context("fork").Process(target=play, args=(calls[i::procs], seconds, results))
               for i in range(procs)]
    cpu_before = [cpu_seconds(pid) for pid in pids]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    totals = [results.get() for _ in workers]
    elapsed = time.monotonic() - started - 1.0
    cpu = [cpu_seconds(pid) - before for pid, before in zip(pids, cpu_before)]
    for worker in workers:
        worker.join()
    harness.ask(cmd="close")
    for a, b in phones:
        a.close()
        b.close()
    sent = sum(t["sent"] for t in totals)
    received = sum(t["received"] for t in totals)
    relay_cpu = sum(cpu) / elapsed
    return {"calls": count, "sent": sent, "lost": sent - received,
            "loss_percent": round(100 * (sent - received) / sent, 3),
            "packets_per_second": round(sent / seconds),
            "relay_cpu_percent": round(100 * relay_cpu, 1),
            "reactor_cpu_percent": round(100 * cpu[0] / elapsed, 1),
            "forwarder_cpu_percent": round(100 * cpu[1] / elapsed, 1),
            "relay_cpu_percent_per_call": round(100 * relay_cpu / count, 3),
            "generator_late_ms": max(t["late_ms"] for t in totals)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", default="100,200,300,400,500", help="comma-separated steps")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--forwarder", choices=["process", "thread", "reactor"], default="process")
    parser.add_argument("--procs", type=int, default=1)
    parser.add_argument("--ports", default="24000-31999")
    args = parser.parse_args()
    harness = Harness(args.forwarder, args.ports)
    try:
        pids = harness.ask(cmd="pids")["pids"]
        best = 0
        for count in map(int, args.calls.split(",")):
            result = step(harness, pids, count, args.seconds, args.procs)
            print(json.dumps(result), flush=True)
            if result["lost"]:
                break
            best = count
        print(json.dumps({"forwarder": args.forwarder, "max_calls_without_loss": best}))
    finally:
        harness.stop()


if __name__ == "__main__":
    main()
