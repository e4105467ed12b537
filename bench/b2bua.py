"""
Calls per second through the B2BUA, and the delay it adds to a call's set-up.

Run:  .venv/bin/python bench/b2bua.py [--calls 2000] [--concurrency 50] [--rate 0] [--relay] [--customers 20]
      [--warmup 100]

Starts an embedded PostgreSQL in a temporary folder and, in this process, the SIP core on a
UDP port of 127.0.0.1 with the B2BUA, SIP access's real trunk authentication and billing
(DIDs billed per minute): every call is routed, authorised, admitted, and settled into a
CDR through PostgreSQL, as on a node; calls spread over `--customers` customers. `bench/b2bua_load.py` runs as another process: a
carrier on 127.0.0.2 calls the DID, the subscriber's phone answers at once, the carrier
hangs up. `--rate` paces new calls per second (0: as fast as `--concurrency` allows);
`--relay` anchors media in the in-process relay (its forwarder is another process).
Prints the load generator's figures: calls per second, the delay from the carrier's INVITE
to the phone's (what the B2BUA adds) and to the 200, p50 and p99, in ms; and the same
delay timed inside this process (from the INVITE's arrival to the call's start, when its B
leg's INVITE is sent), with the admission's part of it (its transaction up to the decision;
the COMMIT follows while the B leg's INVITE goes). The first `--warmup` calls are made but
not counted: they fill the node's caches and PostgreSQL's per-connection plans, which a
node running for more than a few seconds has.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twisted.internet import reactor, threads  # noqa: E402

from wevoip.calls.b2bua import B2BUA  # noqa: E402
from wevoip.calls.machine import CallTimers  # noqa: E402
from wevoip.calls.session import Session  # noqa: E402
from wevoip.config import MediaConfig  # noqa: E402
from wevoip.media.relay import InProcessRelay  # noqa: E402
from wevoip.sip.auth import Authenticator  # noqa: E402
from wevoip.sip.core import SipCore  # noqa: E402
from wevoip.sip.defence import Defence, DefencePolicy  # noqa: E402
from wevoip.sip.digest import DigestAuthority  # noqa: E402
from wevoip.sip.directory import Directory  # noqa: E402
from wevoip.sip.flow import FlowTable  # noqa: E402
from wevoip.sip.register import asked_of  # noqa: E402
from wevoip.sip.registrar import Binding  # noqa: E402
from wevoip.sip.transport import SipDatagramProtocol  # noqa: E402
from wevoip.store import carriers, customers, dids, subscribers, tenants  # noqa: E402
from wevoip.store.database import Database  # noqa: E402
from wevoip.store.isps import create_isp  # noqa: E402

from on_reactor import embedded_store, node_caches, report  # noqa: E402 (bench/on_reactor.py, beside this script)

HERE = Path(__file__).resolve().parent


async def provision(database: Database, count: int) -> set[int]:
    """`count` customers, each a tenant with one subscriber and a DID routed to it: a
    customer's calls are authorised one at a time (its row is locked), as on a node."""
    async def work(tx):
        isp = await create_isp(tx, name="Bench", namespace="b2bua.example.net", currency="USD", country="US",
                               contact_email="ops@b2bua.example.net")
        plan = await customers.create_service_plan(tx, isp["id"], name="Basic")
        carrier = await carriers.create_carrier(tx, isp["id"], name="Carrier")
        await carriers.create_gateway(tx, isp["id"], carrier["id"], host="127.0.0.2")
        subscriber_ids = set()
        for n in range(count):
            customer = await customers.create_customer(tx, isp["id"], name=f"C{n}", service_plan_id=plan["id"],
                                                       max_subscribers=10, status="ACTIVE",
                                                       max_concurrent_calls=100_000)
            tenant = await tenants.create_tenant(tx, isp["id"], customer["id"], name=f"T{n}", label=f"t{n}")
            bob = await subscribers.create_subscriber(tx, isp["id"], tenant["id"], username="bob",
                                                      password="correct-horse-9", extension="101")
            did = (await dids.add_dids(tx, isp["id"], f"+1555019{n:04d}"))[0]
            await dids.allocate_did(tx, isp["id"], did["id"], tenant["id"])
            await dids.route_did(tx, isp["id"], did["id"], bob["id"])
            subscriber_ids.add(bob["id"])
        return subscriber_ids
    return await database.transact(work)


class InsideTimes:
    """The B2BUA's own part of the delay, timed inside this process: from a new INVITE's
    arrival to its call starting (the B leg's INVITE sent), and the admission up to its
    decision; calls of the warm-up are left out."""

    def __init__(self, b2bua: B2BUA, warmup: int):
        self.arrived: dict[str, float] = {}
        self.started: list[float] = []
        self.admissions: list[float] = []
        receive, decide = b2bua.receive, b2bua.database.decide

        def measured(call_id: str) -> bool:
            return int(call_id.rsplit("-", 1)[1]) >= warmup

        def timed_receive(incoming):
            request = incoming.request
            if request.method == "INVITE" and request.to.tag is None and measured(request.call_id):
                self.arrived.setdefault(request.call_id, time.perf_counter())
            return receive(incoming)

        async def timed_decide(work, request, *args, **kwargs):
            began = time.perf_counter()
            try:
                return await decide(work, request, *args, **kwargs)
            finally:
                if measured(request.call_id):
                    self.admissions.append(time.perf_counter() - began)
        b2bua.receive = timed_receive
        b2bua.database.decide = timed_decide
        start = Session.start

        def timed_start(session):
            start(session)
            began = self.arrived.pop(session.incoming.request.call_id, None)
            if began is not None:
                self.started.append(time.perf_counter() - began)
        Session.start = timed_start

    def figures(self) -> dict:
        return {"inside_invite_to_invite_ms_p50": percentile(self.started, 0.5),
                "inside_invite_to_invite_ms_p99": percentile(self.started, 0.99),
                "admission_ms_p50": percentile(self.admissions, 0.5),
                "admission_ms_p99": percentile(self.admissions, 0.99)}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values) or [0.0]
    return round(ordered[min(int(len(ordered) * share), len(ordered) - 1)] * 1000, 2)


async def run(options) -> dict:
    async with embedded_store("wevoip-bench-b2bua-") as server:
        relay = None
        try:
            database = Database(reactor, server.dsn, size=8)
            await database.connect()
            phones = await provision(database, options.customers)
            notifier, indexes, routes = await node_caches(server.dsn)
            flows = FlowTable()
            core = SipCore(reactor, flows)
            port = reactor.listenUDP(0, SipDatagramProtocol(core, flows), interface="127.0.0.1", maxPacketSize=65535)
            secret = b"b" * 32
            authenticator = Authenticator(DigestAuthority(reactor, secret), Directory(database, secret),
                                          Defence(reactor, DefencePolicy(requests_per_second=1_000_000,
                                                                         request_burst=1_000_000)))

            async def authenticate(request, flow):
                return await authenticator.authenticate(asked_of(request, flow))

            uas_port = port.getHost().port + 1
            phone = Binding(f"sip:bob@127.0.0.1:{uas_port}", "", 1000, "reg", 1, 1e12, f"127.0.0.1:{uas_port}", "udp")
            if options.relay:
                relay = InProcessRelay(reactor, MediaConfig(rtp_address="127.0.0.1", rtp_port_min=47000,
                                                            rtp_port_max=49999))
                relay.startService()
                await relay.ready
            b2bua = B2BUA(reactor, core, database, node="bench", authenticate=authenticate,
                          contacts=lambda subscriber_id: [phone] if subscriber_id in phones else [],
                          rules=lambda isp_id: (), timers=CallTimers(no_answer=60), relay=relay, indexes=indexes,
                          routes=routes)
            inside = InsideTimes(b2bua, options.warmup)
            b2bua.install()
            result = await threads.deferToThread(
                subprocess.run, [sys.executable, str(HERE / "b2bua_load.py"), str(port.getHost().port), str(uas_port),
                                 str(options.customers), str(options.calls), str(options.concurrency),
                                 str(options.rate), str(options.warmup)],
                capture_output=True, text=True, timeout=600)
            if result.returncode:
                raise SystemExit(result.stderr)
            figures = json.loads(result.stdout)
            await b2bua.settled()
            figures["cdrs"] = (await database.fetch("select count(*) as n from cdrs"))[0]["n"]
            figures["relay"] = bool(options.relay)
            figures.update(inside.figures())
            await database.close()
            notifier.stop()
            return figures
        finally:
            if relay is not None:
                await relay.stopService()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rate", type=float, default=0.0, help="new calls per second (0: no pacing)")
    parser.add_argument("--relay", action="store_true", help="anchor media in the in-process relay")
    parser.add_argument("--customers", type=int, default=20, help="customers (each a DID) the calls spread over")
    parser.add_argument("--warmup", type=int, default=100, help="calls made first and not counted")
    report(run, parser.parse_args())

if __name__ == "__main__":
    main()
