"""
Calls under real load: at least 100 calls/s with digest on every call, for a minute, from
many source addresses, against a real node with billing on; then the books.

Run:  .venv/bin/python bench/calls_under_load.py [--rate 100] [--seconds 60] [--hold 2] [--phones 200]
      [--heartbeat 1] [--management SOFT] [--customers 10] [--patience 30]

Starts `twistd wevoip` in a temporary folder (its embedded PostgreSQL made there), with
SIP on a UDP port of 127.0.0.1 and billing's heartbeat every `--heartbeat` seconds (1: it
races the settlements all the time; the default of a node is 30). Provisions an ISP whose
plan sells North America from a customer rate deck, a postpaid (`SOFT`) or prepaid (`HARD`)
customers (`--customers`, each a tenant; every call of one customer is authorised and
settled under that customer's row lock, one after the other) with `--phones` subscribers
spread over them, and a carrier whose gateway is on 127.0.0.2. Then
tests/sipcalls.py, its own process, starts `--rate` calls a second for `--seconds`: each
from a phone on its own address (127.0.0.10 onwards), 407 and ACK, the INVITE again with
credentials, 200 and ACK, held `--hold` seconds, BYE. The generator's report (calls
started, answered, failed, lost; set-up time p50/p99, the challenge included) and the
books once every call has ended: CDRs per answered call (exactly one wanted), reservations
and active calls left (none wanted), spooled records, the ledger against the records, and
how many deadlocks PostgreSQL made the node run again (each is logged). The figures are the
machine's: the node, its PostgreSQL and the generator share it (say what else ran).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twisted.internet import defer, reactor  # noqa: E402

from tests import callload  # noqa: E402


async def main(args) -> None:
    load = await callload.start(phones=args.phones, heartbeat_seconds=args.heartbeat, management=args.management,
                                customers_count=args.customers)
    try:
        report = await callload.drive(load, phones=args.phones, rate=args.rate, seconds=args.seconds, hold=args.hold,
                                      patience=args.patience)
        answered = report.pop("answered_call_ids")
        print(json.dumps({"settings": vars(args), "generator": report}, indent=2), flush=True)
        books = await callload.books(load, answered, settle_seconds=args.patience * 4)
        print(json.dumps({"books": books}, indent=2), flush=True)
    finally:
        await load.close()
    good = (books["answered_without_record_count"] == 0 and books["calls_with_more_than_one_record"] == 0
            and books["active_calls_left"] == books["reservations_left"] == 0 and not books["spooled"]
            and books["priced"] == books["charged"])
    print("books: " + ("one record per answered call, nothing left held" if good else "WRONG"))


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--hold", type=float, default=2.0)
    parser.add_argument("--phones", type=int, default=200)
    parser.add_argument("--heartbeat", type=int, default=1)
    parser.add_argument("--management", choices=("SOFT", "HARD"), default="SOFT")
    parser.add_argument("--customers", type=int, default=10, help="customers (each a tenant) the phones are spread over")
    parser.add_argument("--patience", type=float, default=30.0)
    return parser.parse_args()


def run(args: argparse.Namespace) -> None:
    done = defer.ensureDeferred(main(args))
    done.addErrback(lambda failure: failure.printTraceback())
    done.addBoth(lambda _: reactor.stop())


if __name__ == "__main__":
    # Read before the reactor runs: --help or a bad option exits instead of leaving it running.
    reactor.callWhenRunning(run, arguments())
    reactor.run()
