"""
REST API requests per second, and webhook events delivered per second, on one reactor.

Run:  .venv/bin/python bench/api.py [--requests 1000] [--concurrency 8] [--events 500]

Starts an embedded PostgreSQL in a temporary folder and the web app on a loopback port in
this process (the treq client shares the reactor, so the figures are for client and
server together on one core). One ISP with a 10,000-number inventory and the US dialplan
preset; then, with `--concurrency` requests in flight: a page of 100 DIDs with their
holders, the dialplan box (translate), and customer creation. Last, `--events` webhook
events are enqueued and the drainer posts them, signed, to a receiver on loopback.
Reports requests per second and p50/p99 latency of each.
"""

from __future__ import annotations

import argparse
import datetime
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from treq.client import HTTPClient  # noqa: E402
from twisted.internet import defer, task  # noqa: E402
from twisted.web import resource, server  # noqa: E402
from twisted.web.client import Agent, HTTPConnectionPool  # noqa: E402

from wevoip.config import Config  # noqa: E402
from wevoip.interfaces import IDialplanPreset  # noqa: E402
from wevoip.outbox import OutboxDrainer  # noqa: E402
from wevoip.plugins import discover  # noqa: E402
from wevoip.store import admins, dialplans, dids, webhooks  # noqa: E402
from wevoip.store.database import Database  # noqa: E402
from wevoip.store.embedded import EmbeddedPostgres  # noqa: E402
from wevoip.store.isps import create_isp  # noqa: E402
from wevoip.store.migrate import migrate  # noqa: E402
from wevoip.web.api.routes import Services  # noqa: E402
from wevoip.web.root import build_web_app  # noqa: E402
from wevoip.webhooks import WebhookSender  # noqa: E402

TOKEN = "bench-token-" + "x" * 30


class _Store:
    def __init__(self, database):
        self.database = database


class _Receiver(resource.Resource):
    isLeaf = True

    def __init__(self):
        super().__init__()
        self.count = 0

    def render_POST(self, request):  # noqa: N802 (twisted.web's name)
        self.count += 1
        return b"ok"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * share), len(ordered) - 1)] * 1000


async def measure(reactor, name: str, count: int, concurrency: int, request) -> None:
    times: list[float] = []

    async def one(n: int) -> None:
        started = time.perf_counter()
        response = await request(n)
        await response.content()
        if response.code >= 300:
            raise RuntimeError(f"{name}: HTTP {response.code}")
        times.append(time.perf_counter() - started)

    semaphore = defer.DeferredSemaphore(concurrency)
    started = time.perf_counter()
    await defer.gatherResults([semaphore.run(lambda n=n: defer.Deferred.fromCoroutine(one(n)))
                               for n in range(count)])
    elapsed = time.perf_counter() - started
    print(f"{name}: {count / elapsed:,.0f} requests/s, p50 {percentile(times, 0.5):.1f} ms,"
          f" p99 {percentile(times, 0.99):.1f} ms")


async def run(reactor, args) -> None:
    root = Path(tempfile.mkdtemp(prefix="wevoip-bench-"))
    root.chmod(0o755)
    postgres = EmbeddedPostgres(reactor, root / "data")
    await postgres.start()
    try:
        await migrate(reactor, postgres.dsn)
        database = Database(reactor, postgres.dsn, size=8)
        await database.connect()
        presets = discover(IDialplanPreset)

        async def setup(tx):
            isp = await create_isp(tx, name="Bench", namespace="bench.example.net", currency="USD")
            await admins.create_api_token(tx, TOKEN, isp_id=isp["id"])
            await dids.add_dids(tx, isp["id"], "+15550000000", "+15550009999")
            rules = [{"match": r.match, "subs": r.subs, "replacement": r.replacement, "description": r.description}
                     for r in presets["us"].rules()]
            await dialplans.replace_rules(tx, isp["id"], rules)
            return isp["id"]
        isp_id = await database.transact(setup)
        app = build_web_app(_Store(database), lambda: {"status": "ok"}, Config(), reactor, Services(presets))
        port = reactor.listenTCP(0, server.Site(app.resource()), interface="127.0.0.1")
        base = f"http://127.0.0.1:{port.getHost().port}/api/v1/isps/{isp_id}"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        pool = HTTPConnectionPool(reactor, persistent=True)
        pool.maxPersistentPerHost = args.concurrency
        http = HTTPClient(Agent(reactor, pool=pool))

        await measure(reactor, "GET a page of 100 DIDs with holders", args.requests, args.concurrency,
                      lambda n: http.get(f"{base}/dids?limit=100&offset={(n * 100) % 10000}", headers=headers))
        await measure(reactor, "POST dialplan/translate (US preset)", args.requests, args.concurrency,
                      lambda n: http.post(f"{base}/dialplan/translate", headers=headers,
                                          json={"dialled": f"212555{n % 10000:04d}", "area_code": "212"}))
        await measure(reactor, "POST customers", args.requests, args.concurrency,
                      lambda n: http.post(f"{base}/customers", headers=headers, json={"name": f"Customer {n}"}))

        receiver = _Receiver()
        hook_port = reactor.listenTCP(0, server.Site(receiver), interface="127.0.0.1")
        await database.transact(webhooks.set_webhook, isp_id, f"http://127.0.0.1:{hook_port.getHost().port}/h")
        now = datetime.datetime.now(datetime.timezone.utc)

        async def enqueue(tx):
            for n in range(args.events):
                await webhooks.call_ended(tx, isp_id, call_id=f"bench-{n}", customer_id=None, tenant_id=None,
                                          caller="+15550000000", callee="+442071234567", direction="outbound",
                                          started_at=now, answered_at=now, ended_at=now, duration_ms=60000,
                                          end_reason="bye")
        await database.transact(enqueue)
        drainer = OutboxDrainer(reactor, database, "webhook", WebhookSender(reactor, database).send)
        started = time.perf_counter()
        sent = await drainer.drain()
        elapsed = time.perf_counter() - started
        print(f"webhooks: {sent} events signed and posted in {elapsed:.1f} s: {sent / elapsed:,.0f} events/s"
              f" (receiver counted {receiver.count}; one at a time, each in its claiming transaction)")
        await hook_port.stopListening()
        await port.stopListening()
        await pool.closeCachedConnections()
        await database.close()
    finally:
        await postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--events", type=int, default=500)
    args = parser.parse_args()
    task.react(lambda reactor: defer.Deferred.fromCoroutine(run(reactor, args)))


if __name__ == "__main__":
    main()
