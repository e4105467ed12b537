"""
The call set-up transaction alone: its round trips to PostgreSQL and its time, per kind of call.

Run:  .venv/bin/python bench/call_setup.py [--calls 300] [--sql]

Starts an embedded PostgreSQL in a temporary folder, provisions one ISP (a carrier with two
gateways and a published card, a HARD prepaid customer on a plan that sells at cost, a
tenant with a subscriber holding a DID and another subscriber), and runs the B2BUA's set-up
transaction (`_route_and_admit`: route, assess, admit) one call after another for three
kinds of call: out through the carrier, in from the carrier to the DID, and on-net to the
other subscriber's number. Each call is then ended in its own transaction, which is not
timed. Prints, per kind, the statements sent per set-up (each one round trip, COMMIT
included; BEGIN rides on the first), the set-up's p50 and p99 in ms, and the p50 of the
time spent waiting for PostgreSQL's answers (the rest is Python); `--sql` also prints the
statements of the last set-up of each kind, each with its time in ms. The first calls
warm the node's caches and are not counted. One call at a time, so the figure is the
round trips' latency, much less sensitive to what else runs on the machine than calls
per second (though a busy disk still slows every COMMIT's WAL flush).
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twisted.internet import reactor  # noqa: E402
from txpostgres import txpostgres  # noqa: E402

from wevoip.billing.calls import CallEnd, settle_call  # noqa: E402
from wevoip.billing.decks import upload_draft  # noqa: E402
from wevoip.calls.b2bua import B2BUA  # noqa: E402
from wevoip.sip.auth import Decision, Subscriber  # noqa: E402
from wevoip.sip.core import SipCore  # noqa: E402
from wevoip.sip.directory import Trunk  # noqa: E402
from wevoip.sip.flow import Flow, FlowTable  # noqa: E402
from wevoip.sip.message import parse  # noqa: E402
from wevoip.sip.registrar import Binding  # noqa: E402
from wevoip.store import (calls, carriers, customers, dids, ledger, pricing, ratedecks,  # noqa: E402
                          subscribers, tenants)
from wevoip.store.database import Database  # noqa: E402
from wevoip.store.isps import create_isp  # noqa: E402

from on_reactor import embedded_store, node_caches, report  # noqa: E402 (bench/on_reactor.py, beside this script)

WARM_UP = 5
EPOCH = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
NODE = ("127.0.0.1", 5060)


class Statements:
    """Every statement any cursor sends, while `on`."""

    def __init__(self):
        self.on = False
        self.sent: list[str] = []
        execute = txpostgres.Cursor.execute
        statements = self

        def traced(cursor, sql, *args, **kwargs):
            done = execute(cursor, sql, *args, **kwargs)
            if statements.on:
                entry = [sql if isinstance(sql, str) else repr(sql), time.perf_counter()]
                statements.sent.append(entry)

                def timed(result):
                    entry[1] = round((time.perf_counter() - entry[1]) * 1000, 2)
                    return result
                done.addBoth(timed)
            return done
        txpostgres.Cursor.execute = traced


async def provision(database: Database):
    async def work(tx):
        isp = await create_isp(tx, name="Bench", namespace="setup.example.net", currency="USD", country="US",
                               contact_email="ops@setup.example.net")
        await ledger.set_isp_billing(tx, isp["id"], home_prefix="1")
        plan = await customers.create_service_plan(tx, isp["id"], name="Basic")
        await pricing.set_plan_pricing(tx, isp["id"], plan["id"], service_deck=True)
        carrier = await carriers.create_carrier(tx, isp["id"], name="Carrier", max_concurrent_calls=1000)
        for host, priority in (("127.0.0.2", 10), ("127.0.0.3", 20)):
            await carriers.create_gateway(tx, isp["id"], carrier["id"], host=host, priority=priority,
                                          source_ips=[host])
        deck = await ratedecks.create_deck(tx, isp["id"], name="Card", kind="carrier", carrier_id=carrier["id"])
        draft = await upload_draft(tx, isp["id"], deck["id"], "prefix,description,cost,connection_fee,increment\n"
                                                              "1,North America,0.0100,0,60/60\n")
        await ratedecks.publish_version(tx, isp["id"], draft["id"], EPOCH)
        customer = await customers.create_customer(tx, isp["id"], name="C", service_plan_id=plan["id"],
                                                   max_subscribers=10, status="ACTIVE", max_concurrent_calls=100,
                                                   balance_management="HARD")
        await ledger.add_payment(tx, isp["id"], customer["id"], amount="1000.00", description="opening")
        tenant = await tenants.create_tenant(tx, isp["id"], customer["id"], name="T", label="t")
        alice = await subscribers.create_subscriber(tx, isp["id"], tenant["id"], username="alice",
                                                    password="correct-horse-9", extension="100", e164="+15550100100",
                                                    is_pilot=True)
        bob = await subscribers.create_subscriber(tx, isp["id"], tenant["id"], username="bob",
                                                  password="correct-horse-9", extension="101", e164="+15550100101")
        did = (await dids.add_dids(tx, isp["id"], "+15550199000"))[0]
        await dids.allocate_did(tx, isp["id"], did["id"], tenant["id"])
        await dids.route_did(tx, isp["id"], did["id"], alice["id"])
        gateway = await tx.fetch_one("select id from gateways where isp_id = %s order by priority", (isp["id"],))
        return {"isp": isp["id"], "tenant": tenant["id"], "alice": alice["id"], "bob": bob["id"],
                "carrier": carrier["id"], "gateway": gateway["id"]}
    return await database.transact(work)


def invite(dialled: str, call_id: str, source: str):
    return parse((f"INVITE sip:{dialled}@setup.example.net SIP/2.0\r\n"
                  f"Via: SIP/2.0/UDP {source}:5060;branch=z9hG4bK{call_id}\r\n"
                  f"From: <sip:caller@{source}>;tag=a\r\nTo: <sip:{dialled}@setup.example.net>\r\n"
                  f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{source}:5060>\r\n"
                  "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode())


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(int(len(ordered) * share), len(ordered) - 1)] * 1000, 2)


async def run(options) -> dict:
    statements = Statements()
    async with embedded_store("wevoip-bench-setup-") as server:
        database = Database(reactor, server.dsn, size=4)
        await database.connect()
        world = await provision(database)
        notifier, indexes, routes = await node_caches(server.dsn)
        flows = FlowTable()
        flows.add_datagram_socket(4, NODE, lambda data, remote: None)
        core = SipCore(reactor, flows)
        phone = Binding("sip:phone@127.0.0.1:5999", "", 1000, "reg", 1, 1e12, "127.0.0.1:5999", "udp")
        b2bua = B2BUA(reactor, core, database, node="bench", authenticate=None,
                      contacts=lambda subscriber_id: [phone], rules=lambda isp_id: (), indexes=indexes,
                      routes=routes)
        alice = Decision(subscriber=Subscriber(world["isp"], world["tenant"], world["alice"], "alice",
                                               "t.setup.example.net"))
        trunk = Decision(trunk=Trunk(world["isp"], world["carrier"], world["gateway"]))
        kinds = {"outbound": ("+15551234567", alice, "192.0.2.1"),
                 "inbound": ("15550199000", trunk, "127.0.0.2"),
                 "on-net": ("+15550100101", alice, "192.0.2.1")}
        figures = {}
        for kind, (dialled, decision, source) in kinds.items():
            flow = Flow("udp", (source, 5060), NODE, lambda data: None)
            times, counts, waits, sql = [], [], [], []
            for n in range(WARM_UP + options.calls):
                request = invite(dialled, f"{kind}-{n}", source)
                statements.sent = []
                statements.on = True
                started = time.perf_counter()
                admitted = await database.transact(b2bua._route_and_admit, request, flow, decision)
                elapsed = time.perf_counter() - started
                statements.on = False
                if n >= WARM_UP:
                    times.append(elapsed)
                    counts.append(len(statements.sent))
                    waits.append(sum(ms for _, ms in statements.sent) / 1000)
                    sql = statements.sent
                await database.transact(end, admitted, indexes)
            figures[kind] = {"round_trips": sorted(set(counts)), "setup_p50_ms": percentile(times, 0.5),
                            "setup_p99_ms": percentile(times, 0.99), "in_postgres_p50_ms": percentile(waits, 0.5)}
            if options.sql:
                figures[kind]["sql"] = [f"{ms} ms: " + " ".join(text.split())[:200] for text, ms in sql]
        await database.close()
        notifier.stop()
        return figures


async def end(tx, admitted, indexes):
    await calls.end_call(tx, admitted.isp_id, admitted.active_id)
    if admitted.reservation_id is not None:
        await settle_call(tx, admitted.isp_id, admitted.reservation_id,
                          CallEnd(ended_at=datetime.datetime.now(datetime.timezone.utc), disposition="cancelled"),
                          indexes=indexes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--sql", action="store_true", help="print the statements of one set-up of each kind")
    report(run, parser.parse_args())

if __name__ == "__main__":
    main()
