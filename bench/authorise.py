"""
Calls authorised and settled per second through PostgreSQL, on a 100,000-prefix deck.

Run:  .venv/bin/python bench/authorise.py [--calls 2000] [--concurrency 16] [--customers 50]

Starts an embedded PostgreSQL in a temporary folder, loads a generated carrier card and a
customer card of 100,000 prefixes, and runs `authorise_call` then `settle_call` (each its
own transaction, as the B2BUA will) for many prepaid HARD customers at once over a pool of
8 connections. Reports calls per second and the latency of each step (p50, p99).
"""

from __future__ import annotations

import argparse
import datetime
import random
import shutil
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twisted.internet import defer, task  # noqa: E402

from rating import generate_prefixes  # noqa: E402 (bench/rating.py, beside this script)
from wevoip.billing.calls import CallEnd, authorise_call, settle_call  # noqa: E402
from wevoip.billing.decks import DeckIndexes  # noqa: E402
from wevoip.store import carriers, customers, ledger, pricing, ratedecks  # noqa: E402
from wevoip.store.database import Database  # noqa: E402
from wevoip.store.embedded import EmbeddedPostgres  # noqa: E402
from wevoip.store.isps import create_isp  # noqa: E402
from wevoip.store.migrate import migrate  # noqa: E402
from wevoip.store.ratedecks import RateRow  # noqa: E402


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * share), len(ordered) - 1)] * 1000


async def setup(database: Database, prefixes: list[str], customer_count: int, rng: random.Random):
    async def work(tx):
        isp = await create_isp(tx, name="Bench", namespace="bench.example.net", currency="USD")
        plan = await customers.create_service_plan(tx, isp["id"], name="Retail")
        carrier = await carriers.create_carrier(tx, isp["id"], name="Carrier")
        cost_deck = await ratedecks.create_deck(tx, isp["id"], name="Cost", kind="carrier", carrier_id=carrier["id"])
        price_deck = await ratedecks.create_deck(tx, isp["id"], name="Price", kind="customer")
        epoch = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
        costs = [Decimal(rng.randint(10, 9000)).scaleb(-6) for _ in prefixes]
        for deck, factor in ((cost_deck, 1), (price_deck, 2)):
            rows = [RateRow(p, "", cost * factor, Decimal(0), 1, 1, "international") for p, cost in zip(prefixes, costs)]
            draft = await ratedecks.create_draft(tx, isp["id"], deck["id"], rows)
            await ratedecks.publish_version(tx, isp["id"], draft["id"], epoch)
        await pricing.set_plan_pricing(tx, isp["id"], plan["id"], rate_deck_id=price_deck["id"])
        ids = []
        for n in range(customer_count):
            customer = await customers.create_customer(tx, isp["id"], name=f"C{n}", service_plan_id=plan["id"],
                                                       status="ACTIVE")
            await ledger.add_payment(tx, isp["id"], customer["id"], amount="1000", description="bench")
            ids.append(customer["id"])
        return isp["id"], carrier["id"], ids
    return await database.transact(work)


async def run(reactor, args) -> None:
    root = Path(tempfile.mkdtemp(prefix="wevoip-bench-"))
    root.chmod(0o755)
    server = EmbeddedPostgres(reactor, root / "data")
    await server.start()
    try:
        await migrate(reactor, server.dsn)
        database = Database(reactor, server.dsn, size=8)
        await database.connect()
        rng = random.Random(6)
        prefixes = generate_prefixes(100_000, rng)
        isp_id, carrier_id, customer_ids = await setup(database, prefixes, args.customers, rng)
        indexes = DeckIndexes()
        now = datetime.datetime.now(datetime.timezone.utc)
        numbers = ["+" + (p + "0000000000")[:12] for p in rng.choices(prefixes, k=args.calls)]
        authorise_times: list[float] = []
        settle_times: list[float] = []

        async def one(n: int) -> None:
            customer_id = customer_ids[n % len(customer_ids)]
            started = time.perf_counter()
            auth = await database.transact(lambda tx: authorise_call(
                tx, isp_id, customer_id=customer_id, destination=numbers[n], call_id=f"call-{n}", node="bench",
                indexes=indexes, at=now))
            middle = time.perf_counter()
            end = CallEnd(ended_at=now + datetime.timedelta(seconds=61), disposition="answered", answered_at=now,
                          carrier_id=carrier_id)
            await database.transact(settle_call, isp_id, auth.reservation_id, end)
            authorise_times.append(middle - started)
            settle_times.append(time.perf_counter() - middle)

        semaphore = defer.DeferredSemaphore(args.concurrency)
        for deck_id in (1, 2):                 # load both indexes once, as a running node has them
            await database.transact(lambda tx: indexes.deck_at(tx, isp_id, deck_id, now))
        started = time.perf_counter()
        await defer.gatherResults([semaphore.run(lambda n=n: defer.Deferred.fromCoroutine(one(n)))
                                   for n in range(args.calls)])
        elapsed = time.perf_counter() - started
        print(f"{args.calls} calls authorised and settled in {elapsed:.1f} s: {args.calls / elapsed:,.0f} calls/s"
              f" ({args.concurrency} at once, {args.customers} customers, pool of 8)")
        print(f"authorise p50 {percentile(authorise_times, 0.5):.1f} ms, p99 {percentile(authorise_times, 0.99):.1f} ms;"
              f" settle p50 {percentile(settle_times, 0.5):.1f} ms, p99 {percentile(settle_times, 0.99):.1f} ms")
        await database.close()
    finally:
        await server.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--customers", type=int, default=50)
    args = parser.parse_args()
    task.react(lambda reactor: defer.Deferred.fromCoroutine(run(reactor, args)))


if __name__ == "__main__":
    main()
