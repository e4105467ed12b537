"""
Console page throughput: logged-in ISP admins loading their customer list from a real node.

Run:  .venv/bin/python bench/consoles.py [--customers 200] [--requests 2000] [--concurrency 8]

Starts a real `twistd wevoip` node (tests/node.py) with its embedded PostgreSQL, creates an
ISP with `--customers` customers and an admin, logs in through /login, then loads
/isp/customers `--requests` times, `--concurrency` at once, each through the whole gate: the
session looked up (and touched) in PostgreSQL, the brand, the role, the page's queries and
the Jinja2 render. Reports pages per second and latency percentiles, and the same for
/healthz as the floor of the HTTP stack.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg2  # noqa: E402
from argon2 import PasswordHasher  # noqa: E402
from twisted.internet import defer, task  # noqa: E402
from twisted.web.client import Agent, HTTPConnectionPool  # noqa: E402
from treq.client import HTTPClient  # noqa: E402

from tests.node import Node  # noqa: E402
from tests.pg import reachable_tmpdir  # noqa: E402

PASSWORD = "bench-password-1"


def seed(dsn: str, customers: int) -> None:
    connection = psycopg2.connect(dsn)
    with connection, connection.cursor() as cursor:
        cursor.execute("insert into isps (name, namespace, currency) values ('Bench', 'bench.example.net', 'USD')"
                       " returning id")
        isp_id = cursor.fetchone()[0]
        cursor.execute("insert into isp_admins (isp_id, email, full_name, password_hash) values (%s, %s, %s, %s)",
                       (isp_id, "boss@bench.example.net", "Boss", PasswordHasher().hash(PASSWORD)))
        cursor.executemany("insert into customers (isp_id, name, status) values (%s, %s, 'ACTIVE')",
                           [(isp_id, f"Customer {n}") for n in range(customers)])
    connection.close()


async def load(client: HTTPClient, url: str, requests: int, concurrency: int) -> list[float]:
    timings: list[float] = []

    async def one() -> None:
        started = time.perf_counter()
        response = await client.get(url)
        await response.content()
        assert response.code == 200, response.code
        timings.append(time.perf_counter() - started)

    async def worker(count: int) -> None:
        for _ in range(count):
            await one()
    share = [requests // concurrency + (1 if i < requests % concurrency else 0) for i in range(concurrency)]
    await defer.gatherResults([defer.Deferred.fromCoroutine(worker(n)) for n in share])
    return timings


def report(name: str, timings: list[float], elapsed: float) -> None:
    ordered = sorted(timings)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    print(f"{name:<18} {len(timings) / elapsed:8.1f} req/s   p50 {pick(0.5):6.1f} ms   p95 {pick(0.95):6.1f} ms"
          f"   p99 {pick(0.99):6.1f} ms   mean {statistics.mean(timings) * 1000:6.1f} ms")


async def main(reactor, options) -> None:
    folder = reachable_tmpdir("wevoip-bench-consoles-")
    node = Node(folder)
    node.start()
    try:
        await node.wait_ready(timeout=120)
        seed(node.dsn, options.customers)
        base = f"http://127.0.0.1:{node.web_port}"
        pool = HTTPConnectionPool(reactor, persistent=True)
        pool.maxPersistentPerHost = options.concurrency
        client = HTTPClient(Agent(reactor, pool=pool))
        page = await (await client.get(f"{base}/login")).text()
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        response = await client.post(f"{base}/login", data={
            "namespace": "bench.example.net", "email": "boss@bench.example.net", "password": PASSWORD, "csrf": csrf},
            allow_redirects=False)
        assert response.code == 303, response.code
        await response.content()
        for name, path in (("/healthz", "/healthz"), ("/isp/customers", "/isp/customers")):
            await load(client, base + path, 50, options.concurrency)  # warm up
            started = time.perf_counter()
            timings = await load(client, base + path, options.requests, options.concurrency)
            report(name, timings, time.perf_counter() - started)
        await pool.closeCachedConnections()
    finally:
        await node.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    arguments = parser.parse_args()
    task.react(lambda reactor: defer.Deferred.fromCoroutine(main(reactor, arguments)))
