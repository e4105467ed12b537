"""
The registrar on a real node: process memory per live binding, and authenticated
REGISTER/s with bench/sip_load.py as the independent load generator.

    .venv/bin/python bench/registrar_bench.py [--bindings 10000] [--load-processes 1 2]

It starts `twistd wevoip` in a temporary folder (embedded PostgreSQL, SIP on a loopback
UDP port, 127.0.0.0/8 trusted so the per-source rate limit does not throttle the one
generator address), provisions one tenant with `bindings` + 200 subscribers through the
store, then:

1. memory: refreshes 200 warm-up users `bindings` times in all (the same transient churn
   as what follows), waits for those transactions to end (timer J), reads the node's
   VmRSS, registers `bindings` further users (one contact each, digest: REGISTER, 401,
   REGISTER with Authorization, 200), waits again, reads VmRSS again; the difference over
   `bindings` is the cost of a live binding, including everything a registration leaves
   behind (index, expiry heap, credentials cache entry, nonce count).
2. throughput: runs bench/sip_load.py `register` for each --load-processes value and
   prints its JSON report (registrations/s, generator and server CPU); then `options` for
   each --options-processes value (none by default).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import sip_load  # noqa: E402  (the independent generator's digest client)

PASSWORD = "bench-password-1"
NAMESPACE = "bench.example.net"
DOMAIN = f"pbx.{NAMESPACE}"


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_node(folder: Path, sip_port: int, web_port: int, profile: bool = False) -> subprocess.Popen:
    (folder / "bench.toml").write_text(
        f'[node]\nname = "bench"\ndata_dir = "data"\n[web]\nhttp = ["127.0.0.1:{web_port}"]\n'
        f'[manhole]\nlisten = ""\n'
        f'[sip]\nudp = ["127.0.0.1:{sip_port}"]\ntcp = []\ntls = []\nws = []\nwss = []\n'
        f'[sip_security]\ntrusted_networks = ["127.0.0.0/8"]\n')
    log = open(folder / "node.log", "w")
    code = "from twisted.scripts.twistd import run; run()"
    if profile:  # twistd ends itself with os.kill(SIGTERM) after a clean stop: save first
        code = ("import cProfile, os; from twisted.scripts.twistd import run; p = cProfile.Profile(); "
                "kill = os.kill\n"
                "def save_then_kill(pid, sig):\n"
                f"    p.disable(); p.dump_stats({str(folder / 'node.prof')!r}); kill(pid, sig)\n"
                "os.kill = save_then_kill; p.enable(); run()")
    node = subprocess.Popen([sys.executable, "-c", code,
                             "--nodaemon", "--pidfile=", "wevoip", "--config", str(folder / "bench.toml")],
                            cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    for _ in range(600):
        time.sleep(0.2)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/healthz", timeout=2) as answer:
                if answer.status == 200 and "is ready" in (folder / "node.log").read_text():
                    return node
        except OSError:
            pass
        if node.poll() is not None:
            break
    raise SystemExit("the node did not start:\n" + (folder / "node.log").read_text()[-3000:])


def provision(dsn: str, count: int) -> None:
    from twisted.internet import defer, task

    from wevoip.store import customers, subscribers, tenants
    from wevoip.store.database import Database
    from wevoip.store.isps import create_isp

    async def work(reactor):
        database = Database(reactor, dsn, size=2)
        await database.connect()

        async def tree(tx):
            isp = await create_isp(tx, name="Bench", namespace=NAMESPACE, currency="USD", country="US",
                                   contact_email=f"ops@{NAMESPACE}")
            plan = await customers.create_service_plan(tx, isp["id"], name="Bench")
            customer = await customers.create_customer(tx, isp["id"], name="Bench", service_plan_id=plan["id"],
                                                       max_subscribers=count, status="ACTIVE")
            tenant = await tenants.create_tenant(tx, isp["id"], customer["id"], name="Bench", label="pbx")
            return isp["id"], tenant["id"]
        isp_id, tenant_id = await database.transact(tree)
        for start in range(0, count, 500):
            async def batch(tx, start=start):
                for n in range(start, min(count, start + 500)):
                    await subscribers.create_subscriber(tx, isp_id, tenant_id, username=f"bench{n}",
                                                        password=PASSWORD)
            await database.transact(batch)
        await database.close()
    try:
        task.react(lambda reactor: defer.Deferred.fromCoroutine(work(reactor)))
    except SystemExit as ended:  # react always exits; only a failure matters here
        if ended.code:
            raise


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def register_users(sip_port: int, users, window: int = 100, label: str = "m") -> int:
    """Digest-register each user once, `window` in flight, re-sending (as RFC 3261's timer E
    would) whatever got no answer within half a second; returns how many got 200."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.settimeout(0.1)
    args = argparse.Namespace(username="bench{n}", users=1 << 30, domain=DOMAIN, password=PASSWORD,
                              expires=3600)
    local_port = sock.getsockname()[1]
    server = ("127.0.0.1", sip_port)
    todo = iter(enumerate(users))
    pending: dict[bytes, list] = {}   # call-id: [registration, last request, sent at, tries]
    done = 0

    def send(call_id: bytes, entry: list, data: bytes) -> None:
        entry[1], entry[2] = data, time.monotonic()
        sock.sendto(data, server)

    def start() -> None:
        item = next(todo, None)
        if item is not None:
            index, n = item
            registration = sip_load.Registration(args, local_port, f"{label}{index}", n)
            call_id = registration.call_id.encode()
            pending[call_id] = entry = [registration, b"", 0.0, 0]
            send(call_id, entry, registration.request(1))

    for _ in range(window):
        start()
    while pending:
        try:
            data = sock.recv(65535)
        except socket.timeout:
            now = time.monotonic()
            for call_id, entry in list(pending.items()):
                if now - entry[2] > 0.5:
                    entry[3] += 1
                    if entry[3] > 10:
                        raise SystemExit(f"no answer to {call_id!r} after 10 tries")
                    send(call_id, entry, entry[1])
            continue
        call_id = sip_load._header(data, b"call-id")
        entry = pending.get(call_id)
        if entry is None:
            continue
        if data[8:11] == b"401":
            if b"Authorization" not in entry[1]:
                send(call_id, entry, entry[0].answer(sip_load._header(data, b"www-authenticate")))
            continue
        del pending[call_id]
        done += data[8:11] == b"200"
        start()
    sock.close()
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bindings", type=int, default=10_000)
    parser.add_argument("--load-processes", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--window", type=int, default=200, help="registrations in flight per generator process")
    parser.add_argument("--options-processes", type=int, nargs="*", default=[],
                        help="also run sip_load.py options (400 in flight per process) with each value")
    parser.add_argument("--keep", action="store_true", help="keep the node's folder")
    parser.add_argument("--profile", action="store_true", help="run the node under cProfile (node.prof)")
    parser.add_argument("--settle", type=float, default=40.0,
                        help="seconds to wait for transactions to end before reading RSS")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="wevoip-registrar-bench-"))
    os.chmod(folder, 0o755)
    sip_port, web_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    node = start_node(folder, sip_port, web_port, args.profile)
    try:
        warm = 200
        provision(f"host={folder / 'data' / 'postgres'} dbname=postgres user=postgres", args.bindings + warm)
        # The same churn as the measured round (a transaction per request lives for timer J,
        # 32 s): 200 users refreshed until as many registrations were made, then all of
        # those transactions allowed to end, so the measured round reuses their memory.
        churn = [args.bindings + i % warm for i in range(args.bindings)]
        assert register_users(sip_port, churn, label="w") == len(churn)
        time.sleep(args.settle)
        before = rss_kib(node.pid)
        began = time.monotonic()
        registered = register_users(sip_port, range(args.bindings))
        took = time.monotonic() - began
        time.sleep(args.settle)
        after = rss_kib(node.pid)
        print(json.dumps({"bindings": registered, "rss_before_kib": before, "rss_after_kib": after,
                          "bytes_per_binding": round((after - before) * 1024 / max(registered, 1)),
                          "sequential_window_100_per_second": round(registered / took, 1)}, indent=2))
        def load(mode: str, processes: int, window: int, *extra: str) -> None:
            print(subprocess.run(
                [sys.executable, str(ROOT / "bench" / "sip_load.py"), mode, "--target", f"127.0.0.1:{sip_port}",
                 "--processes", str(processes), "--window", str(window), "--duration", str(args.duration),
                 "--server-pid", str(node.pid), *extra],
                capture_output=True, text=True, check=True).stdout)
        for processes in args.load_processes:
            load("register", processes, args.window, "--username", "bench{n}", "--users", str(args.bindings),
                 "--password", PASSWORD, "--domain", DOMAIN)
        for processes in args.options_processes:
            load("options", processes, 400)
    finally:
        node.terminate()
        node.wait(timeout=60)
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            print("node folder:", folder)


if __name__ == "__main__":
    main()
