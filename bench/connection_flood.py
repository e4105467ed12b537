"""
A longer connection flood against a real node, on loopback only, that stops by itself.

Run:  .venv/bin/python bench/connection_flood.py [--sources 80] [--per-source 250]
          [--seconds 60] [--nofile 20000] [--frames 5]

Starts a real `twistd wevoip` node (tests/node.py) with its embedded PostgreSQL and the
given RLIMIT_NOFILE (the default connection caps), then from `--sources` loopback addresses
(127.0.1.x) opens `--per-source` idle connections each, alternately to SIP TCP and to SIP
TLS without ever handshaking (the flood of issue 12, point 12), and sends `--frames`
WebSocket frames announced as 2 GiB with 8 MB behind each (point 11). While it lasts,
once a second: /healthz, an authenticated API request, and a digest REGISTER over TLS
from another address (127.0.0.250), each timed. At the end a JSON report: what failed,
p50/p99/max of each, the node's VmRSS and open descriptors at their highest, and the
node's own connection counters. Everything is closed after `--seconds`.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import socket
import statistics
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import treq  # noqa: E402
from twisted.internet import defer, task, threads  # noqa: E402

from tests.node import Node  # noqa: E402
from tests.pg import reachable_tmpdir  # noqa: E402
from tests.sip.test_flood import (DOMAIN, TOKEN, rss_kb, tls_register_from,  # noqa: E402
                                  websocket_connect)
from tests.store.builders import build_tree  # noqa: E402
from wevoip.store.admins import create_api_token  # noqa: E402
from wevoip.store.database import Database  # noqa: E402

MAX_CONNECTIONS = 30_000


def open_flood(ports: tuple[int, int], sources: int, per_source: int, stop_at: float) -> tuple[list, int]:
    """Idle connections, bounded, connected without waiting (the kernel completes them as
    the node's backlog allows); sockets that could not even be made are counted."""
    opened, failed = [], 0
    limit = min(MAX_CONNECTIONS, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 500)
    for index in range(per_source):
        for source in range(sources):
            if time.monotonic() > stop_at or len(opened) >= limit:
                return opened, failed
            try:
                client = socket.socket()
            except OSError:
                failed += 1
                continue
            try:
                client.bind((f"127.0.1.{source + 1}", 0))
                client.setblocking(False)
                client.connect_ex(("127.0.0.1", ports[index % 2]))
                opened.append(client)
            except OSError:
                client.close()
                failed += 1
    return opened, failed


def huge_frame(port: int) -> tuple[float, bool]:
    """Seconds until the node closes a 2 GiB frame, and whether 8 MB got through first."""
    started = time.monotonic()
    client, _ = websocket_connect(port)
    sent_all = True
    try:
        client.sendall(struct.pack("!BBQ", 0x81, 0x80 | 127, 2 << 30) + b"\0\0\0\0")
        for _ in range(8):
            client.sendall(b"A" * (1 << 20))
    except OSError:
        sent_all = False
    client.settimeout(5)
    try:
        while client.recv(65536):
            pass
    except OSError:
        pass
    client.close()
    return time.monotonic() - started, sent_all


def summary(values: list[float]) -> dict:
    if not values:
        return {}
    ordered = sorted(values)
    return {"n": len(ordered), "p50_ms": round(statistics.median(ordered) * 1000, 1),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 1),
            "max_ms": round(ordered[-1] * 1000, 1)}


async def timed(work, errors: set) -> float | None:
    started = time.monotonic()
    try:
        ok = await work()
    except Exception as error:
        errors.add(f"{type(error).__name__}: {error}"[:200])
        return None
    return time.monotonic() - started if ok else None


async def run(reactor, options) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    folder = reachable_tmpdir("wevoip-bench-flood-")
    node = Node(folder, sip=True, nofile=options.nofile, name="bench-flood")
    node.config_path.write_text(node.config_path.read_text()
                                + "[sip_security]\nrequests_per_second = 500\nrequest_burst = 2000\n")
    health = await node.start_ready()
    database = Database(reactor, node.dsn, size=1)
    await database.connect()
    report: dict = {"nofile": options.nofile, "sources": options.sources, "per_source": options.per_source}
    flood: list = []
    try:
        await build_tree(database, DOMAIN.split(".", 1)[1])
        await database.transact(lambda tx: create_api_token(tx, TOKEN, name="platform"))
        ports = {t: Node.sip_port(health, t) for t in ("tcp", "tls", "ws")}
        cafile = str(folder / "data" / "sip-self-signed.pem")
        pid = node.transport.pid
        base_rss = rss_kb(pid)
        stop_at = time.monotonic() + options.seconds
        opening = threads.deferToThread(open_flood, (ports["tcp"], ports["tls"]), options.sources,
                                        options.per_source, stop_at - 5)
        frames = []
        checks: dict[str, list] = {"healthz": [], "api": [], "tls_register": []}
        failures: dict[str, int] = {name: 0 for name in checks}
        errors: set[str] = set()
        most = {"rss_kb": base_rss, "open_descriptors": 0}
        second = 0

        async def healthz():
            code, body = await node.health()
            most["open_descriptors"] = max(most["open_descriptors"], body["connections"]["descriptors"]["open"])
            return code == 200

        async def api():
            response = await treq.get(f"http://127.0.0.1:{node.web_port}/api/v1/isps",
                                      headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
            await response.content()
            return response.code == 200

        async def tls_register():
            status, phone = await threads.deferToThread(tls_register_from, "127.0.0.250", ports["tls"], cafile,
                                                        ("127.0.0.250", 5061))
            phone.close()
            return status == 200

        while time.monotonic() < stop_at:
            for name, work in (("healthz", healthz), ("api", api), ("tls_register", tls_register)):
                seconds = await timed(work, errors)
                if seconds is None:
                    failures[name] += 1
                else:
                    checks[name].append(seconds)
            if second % max(1, options.seconds // max(options.frames, 1)) == 0 and len(frames) < options.frames:
                frames.append(await threads.deferToThread(huge_frame, ports["ws"]))
            most["rss_kb"] = max(most["rss_kb"], rss_kb(pid))
            second += 1
            await task.deferLater(reactor, 1, lambda: None)
        flood, refused = await opening
        code, final = await node.health()
        report.update({
            "flood_connections_opened": len(flood), "flood_connects_failed": refused,
            "failures": failures, "errors": sorted(errors), **{name: summary(values) for name, values in checks.items()},
            "huge_frames": [{"closed_after_ms": round(s * 1000, 1), "all_8_MB_sent": sent} for s, sent in frames],
            "rss_kb": {"start": base_rss, "highest": most["rss_kb"], "end": rss_kb(pid)},
            "open_descriptors_highest": most["open_descriptors"],
            "node_connections": final["connections"]})
    finally:
        for client in flood:
            client.close()
        await database.close()
        await node.stop()
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(report, indent=2))


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    arguments.add_argument("--sources", type=int, default=80)
    arguments.add_argument("--per-source", type=int, default=250)
    arguments.add_argument("--seconds", type=int, default=60)
    arguments.add_argument("--nofile", type=int, default=20_000)
    arguments.add_argument("--frames", type=int, default=5)
    options = arguments.parse_args()
    if not 1 <= options.sources <= 250:
        arguments.error("--sources: 1 to 250 loopback addresses")
    task.react(lambda reactor: defer.ensureDeferred(run(reactor, options)))


if __name__ == "__main__":
    main()
