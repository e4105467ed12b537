#!/usr/bin/env python3
"""
A SIP load generator over UDP, independent of WeVoIP (raw sockets, standard library only),
measuring OPTIONS/s or authenticated REGISTER/s against a running server.

Each worker process keeps `--window` requests in flight on its own socket and sends a new
one for every answer; requests unanswered for a second are sent afresh (and counted as
lost). `register` runs full digest registrations: REGISTER, 401 with a challenge, REGISTER
with Authorization (MD5 or SHA-256 as challenged, qop=auth), 200; one such pair counts as
one registration. With `--server-pid`, the server's CPU use over the run is read from
/proc, so the report says which side ran out of CPU.

    python3 bench/sip_load.py options --target 127.0.0.1:5060 --processes 1 --duration 10
    python3 bench/sip_load.py register --target 127.0.0.1:5060 --username 'bench{n}' \\
        --users 100 --password secret --domain pbx.example.net --processes 1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import re
import socket
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_CHALLENGE_PARAM = re.compile(rb'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')


def _options(host: str, port: int, local_port: int, tag: str, number: int) -> bytes:
    branch = f"z9hG4bK{tag}x{number}"
    return (f"OPTIONS sip:bench@{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch={branch};rport\r\n"
            f"From: <sip:load@127.0.0.1>;tag={tag}\r\nTo: <sip:bench@{host}>\r\n"
            f"Call-ID: {tag}-{number}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
            f"User-Agent: sip-load\r\nContent-Length: 0\r\n\r\n").encode()


class Registration:
    """One digest registration: its Call-ID, user and the step it is at."""

    def __init__(self, args, local_port: int, tag: str, number: int):
        self.user = args.username.replace("{n}", str(number % args.users))
        self.args = args
        self.local_port = local_port
        self.call_id = f"{tag}-{number}"
        self.tag = tag
        self.number = number

    def request(self, cseq: int, authorization: str = "") -> bytes:
        args = self.args
        line = f"Authorization: {authorization}\r\n" if authorization else ""
        return (f"REGISTER sip:{args.domain} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{self.local_port};branch=z9hG4bK{self.tag}r{self.number}c{cseq};rport\r\n"
                f"From: <sip:{self.user}@{args.domain}>;tag={self.tag}\r\nTo: <sip:{self.user}@{args.domain}>\r\n"
                f"Call-ID: {self.call_id}\r\nCSeq: {cseq} REGISTER\r\nMax-Forwards: 70\r\n"
                f"Contact: <sip:{self.user}@127.0.0.1:{self.local_port}>\r\nExpires: {args.expires}\r\n{line}"
                f"User-Agent: sip-load\r\nContent-Length: 0\r\n\r\n").encode()

    def answer(self, challenge: bytes) -> bytes:
        params = {m.group(1).decode().lower(): (m.group(2) if m.group(2) is not None else m.group(3)).decode()
                  for m in _CHALLENGE_PARAM.finditer(challenge)}
        algorithm = params.get("algorithm", "MD5")
        digest = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}[algorithm.upper()]

        def h(text: str) -> str:
            return digest(text.encode()).hexdigest()

        uri, cnonce, nc = f"sip:{self.args.domain}", os.urandom(8).hex(), "00000001"
        ha1 = h(f"{self.user}:{params['realm']}:{self.args.password}")
        ha2 = h(f"REGISTER:{uri}")
        value = (f'Digest username="{self.user}", realm="{params["realm"]}", nonce="{params["nonce"]}", '
                 f'uri="{uri}", algorithm={algorithm}')
        if "auth" in params.get("qop", "").split(","):
            response = h(f"{ha1}:{params['nonce']}:{nc}:{cnonce}:auth:{ha2}")
            value += f', qop=auth, nc={nc}, cnonce="{cnonce}"'
        else:
            response = h(f"{ha1}:{params['nonce']}:{ha2}")
        value += f', response="{response}"'
        if "opaque" in params:
            value += f', opaque="{params["opaque"]}"'
        return self.request(2, value)


def _header(data: bytes, name: bytes) -> bytes:
    for line in data.split(b"\r\n"):
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return b""


def worker(args, index: int, queue) -> None:
    """Runs `run`, and reports even when it fails, so the parent never waits forever."""
    try:
        queue.put(run(args, index))
    except BaseException as error:
        queue.put({"error": repr(error)})
        raise


def run(args, index: int) -> dict:
    host, port = args.target.rsplit(":", 1)
    port = int(port)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.settimeout(0.2)
    local_port = sock.getsockname()[1]
    tag = f"w{index}p{os.getpid()}"
    counts = {"sent": 0, "answered": 0, "completed": 0, "lost": 0, "statuses": {}}
    pending: dict[bytes, tuple[float, object]] = {}
    number = 0

    def start() -> None:
        nonlocal number
        number += 1
        if args.mode == "options":
            data, state = _options(host, port, local_port, tag, number), None
        else:
            state = Registration(args, local_port, tag, number)
            data = state.request(1)
        pending[f"{tag}-{number}".encode()] = (time.monotonic(), state)
        sock.sendto(data, (host, port))
        counts["sent"] += 1

    cpu_start, began = os.times(), time.monotonic()
    measure_from = began + args.warmup
    deadline = measure_from + args.duration
    measured = None
    for _ in range(args.window):
        start()
    while True:
        now = time.monotonic()
        if measured is None and now >= measure_from:
            measured = dict(counts, statuses=dict(counts["statuses"]))
            cpu_start = os.times()
        if now >= deadline:
            break
        try:
            data = sock.recv(65535)
        except socket.timeout:
            stale = [key for key, (sent, _) in pending.items() if now - sent > 1.0]
            for key in stale:
                del pending[key]
                counts["lost"] += 1
                start()
            continue
        status = data[8:11].decode(errors="replace")
        counts["answered"] += 1
        counts["statuses"][status] = counts["statuses"].get(status, 0) + 1
        call_id = _header(data, b"call-id") or _header(data, b"i")
        entry = pending.pop(call_id, None)
        if entry is None:
            continue
        if args.mode == "register" and status == "401":
            registration = entry[1]
            pending[call_id] = (time.monotonic(), registration)
            sock.sendto(registration.answer(_header(data, b"www-authenticate")), (host, port))
            counts["sent"] += 1
            continue
        if status == "200":
            counts["completed"] += 1
        start()
    cpu_end = os.times()
    measured = measured or {"sent": 0, "answered": 0, "completed": 0, "lost": 0, "statuses": {}}
    result = {key: counts[key] - measured[key] for key in ("sent", "answered", "completed", "lost")}
    result["statuses"] = {k: v - measured["statuses"].get(k, 0) for k, v in counts["statuses"].items()}
    result["cpu"] = (cpu_end.user - cpu_start.user) + (cpu_end.system - cpu_start.system)
    return result


def _process_cpu(pid: int | None) -> float:
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["options", "register"])
    parser.add_argument("--target", default="127.0.0.1:5060", help="server host:port (UDP)")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--window", type=int, default=64, help="requests in flight per process")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--server-pid", type=int, help="read the server's CPU use from /proc")
    parser.add_argument("--username", default="bench{n}", help="{n} becomes 0..users-1")
    parser.add_argument("--users", type=int, default=1)
    parser.add_argument("--password", default="")
    parser.add_argument("--domain", default="127.0.0.1")
    parser.add_argument("--expires", type=int, default=3600)
    args = parser.parse_args()
    queue = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=worker, args=(args, i, queue)) for i in range(args.processes)]
    for process in workers:
        process.start()
    time.sleep(args.warmup)
    server_cpu = _process_cpu(args.server_pid)
    results = [queue.get() for _ in workers]
    server_cpu = _process_cpu(args.server_pid) - server_cpu
    for process in workers:
        process.join()
    failed = [result["error"] for result in results if "error" in result]
    if failed:
        raise SystemExit(f"a worker failed: {failed[0]}")
    statuses: dict[str, int] = {}
    for result in results:
        for status, count in result["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    completed = sum(r["completed"] for r in results)
    report = {"mode": args.mode, "processes": args.processes, "window": args.window,
              "duration_s": args.duration, "completed": completed,
              "per_second": round(completed / args.duration, 1),
              "lost": sum(r["lost"] for r in results), "statuses": statuses,
              "generator_cpu_percent": round(100 * sum(r["cpu"] for r in results) / args.duration, 1)}
    if args.server_pid:
        report["server_cpu_percent"] = round(100 * server_cpu / args.duration, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
