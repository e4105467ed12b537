"""
Calls under real load, shared by the suite's bounded run (tests/calls/test_calls_under_load.py)
and the minute-long bench (bench/calls_under_load.py): a real node (`twistd wevoip`) with
billing on and a shortened heartbeat, phones that authenticate every call with digest from
many loopback addresses (tests/sipcalls.py, its own process), and the books checked
afterwards: one CDR per answered call, no reservation or active call left, nothing waiting
in the record spool, the ledger equal to the records.
"""

from __future__ import annotations

import json
import shutil
import socket
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from twisted.internet import defer, protocol, reactor
from twisted.internet.task import deferLater

from tests.billing.world import publish_csv
from tests.node import Node
from tests.pg import reachable_tmpdir
from tests.store.builders import build_tree
from wevoip.store import carriers, customers, ledger, pricing, ratedecks, subscribers, tenants
from wevoip.store.database import Database

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "load-password-7"
DIAL = "2125550100"          # +12125550100 by the US preset: out through the carrier
NAMESPACE = "load.example.net"


def node_config(node: Node, heartbeat_seconds: int) -> str:
    return (f'[node]\nname = "{node.name}"\ndata_dir = "data"\n'
            f'[web]\nhttp = ["127.0.0.1:{node.web_port}"]\n[manhole]\nlisten = ""\n'
            '[sip]\nudp = ["127.0.0.1:0"]\ntcp = []\ntls = []\nws = []\nwss = []\n'
            f'[billing]\nheartbeat_seconds = {heartbeat_seconds}\n'
            f'dead_node_seconds = {max(60, 3 * heartbeat_seconds)}\n')


@dataclass
class LoadNode:
    node: Node
    database: Database
    folder: Path
    sip_port: int
    domains: list[str]          # one tenant's SIP domain per customer; phone n is in domains[n % len]
    isp_id: int
    customer_ids: list[int]
    gateway_id: int
    opening_balance: Decimal

    async def close(self) -> None:
        await self.database.close()
        await self.node.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


async def start(*, phones: int, heartbeat_seconds: int, management: str = "SOFT", customers_count: int = 1,
                balance: str = "100000.00") -> LoadNode:
    """A node with `customers_count` postpaid (SOFT) or prepaid (HARD) customers, each with a
    tenant, whose plan sells from a customer rate deck; `phones` subscribers spread over
    them (phone n in tenant n % customers_count), and the carrier's gateway on 127.0.0.2."""
    folder = reachable_tmpdir("wevoip-load-")
    node = Node(folder, name="load-node")
    node.config_path.write_text(node_config(node, heartbeat_seconds))
    health = await node.start_ready()
    database = Database(reactor, node.dsn, size=2)
    await database.connect()
    tree = await build_tree(database, NAMESPACE, max_subscribers=phones + 1)
    isp_id = tree.isp["id"]

    async def world(tx):
        await ledger.set_isp_billing(tx, isp_id, home_prefix="1")
        cost = await ratedecks.create_deck(tx, isp_id, name="Carrier", kind="carrier", carrier_id=tree.carrier["id"])
        await publish_csv(tx, isp_id, cost["id"], "prefix,description,cost,connection_fee,increment\n"
                                                  "1,North America,0.0100,0,6/6\n")
        sell = await ratedecks.create_deck(tx, isp_id, name="Retail", kind="customer")
        await publish_csv(tx, isp_id, sell["id"], "prefix,description,cost,connection_fee,increment\n"
                                                  "1,North America,0.0200,0,6/6\n")
        await pricing.set_plan_pricing(tx, isp_id, tree.plan["id"], rate_deck_id=sell["id"])
        await carriers.update_carrier(tx, isp_id, tree.carrier["id"], enabled=True)
        payers = [(tree.customer["id"], tree.tenant["id"], tree.domain["name"])]
        for n in range(1, customers_count):
            customer = await customers.create_customer(tx, isp_id, name=f"Load {n}", service_plan_id=tree.plan["id"],
                                                       max_subscribers=phones + 1, status="ACTIVE")
            tenant = await tenants.create_tenant(tx, isp_id, customer["id"], name=f"Load {n}", label=f"load{n}")
            domain = await tx.fetch_value("select name from domains where id = %s", (tenant["domain_id"],))
            payers.append((customer["id"], tenant["id"], domain))
        for customer_id, _, _ in payers:
            await customers.update_customer(tx, isp_id, customer_id, balance_management=management,
                                            max_concurrent_calls=100_000)
            await ledger.add_payment(tx, isp_id, customer_id, amount=balance, description="opening")
        for n in range(phones):
            await subscribers.create_subscriber(tx, isp_id, payers[n % len(payers)][1], username=f"load{n}",
                                                password=PASSWORD, extension=str(2000 + n))
        return payers
    payers = await database.transact(world)
    return LoadNode(node, database, folder, Node.sip_port(health, "udp"), [domain for _, _, domain in payers],
                    isp_id, [customer_id for customer_id, _, _ in payers], tree.gateway["id"], Decimal(balance))


async def gateway_at(load: LoadNode) -> int:
    """The carrier's gateway is the generator's, on 127.0.0.2 at a free port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.2", 0))
        port = probe.getsockname()[1]
    await load.database.transact(carriers.update_gateway, load.isp_id, load.gateway_id, host="127.0.0.2",
                                 port=port, transport="udp")
    return port


class _Output(protocol.ProcessProtocol):
    def __init__(self):
        self.out, self.err = b"", b""
        self.ended: defer.Deferred[None] = defer.Deferred()

    def outReceived(self, data):  # noqa: N802 (Twisted's name)
        self.out += data

    def errReceived(self, data):  # noqa: N802 (Twisted's name)
        self.err += data

    def processEnded(self, reason):  # noqa: N802 (Twisted's name)
        self.ended.callback(None)


async def drive(load: LoadNode, *, phones: int, rate: float, seconds: float, hold: float,
                patience: float = 30.0) -> dict:
    """Run tests/sipcalls.py against the node; its JSON report."""
    port = await gateway_at(load)
    argv = [sys.executable, str(ROOT / "tests" / "sipcalls.py"), "--node", f"127.0.0.1:{load.sip_port}",
            "--domain", ",".join(load.domains), "--users", "load{n}", "--phones", str(phones), "--password", PASSWORD,
            "--dial", DIAL, "--gateway-port", str(port), "--rate", str(rate), "--seconds", str(seconds),
            "--hold", str(hold), "--patience", str(patience)]
    output = _Output()
    reactor.spawnProcess(output, sys.executable, argv, env={"PATH": "/usr/bin:/bin"})
    await output.ended
    if not output.out.strip():
        raise AssertionError(f"the generator said nothing: {output.err.decode(errors='replace')}")
    return json.loads(output.out)


async def books(load: LoadNode, answered: list[str], *, settle_seconds: float = 60.0) -> dict:
    """What the database says once the node has ended every call: waits for the active calls
    and reservations to go (or the time to pass), then counts."""
    database = load.database
    for _ in range(int(settle_seconds * 5)):
        left = await database.fetch("select (select count(*) from active_calls) as active,"
                                    " (select count(*) from call_reservations) as reserved")
        if left[0]["active"] == 0 and left[0]["reserved"] == 0:
            break
        await deferLater(reactor, 0.2, lambda: None)
    records = await database.fetch(
        "select a_call_id, count(*) as n, min(disposition) as disposition, sum(price) as price,"
        " sum(talk_ms) as talk_ms from cdrs where isp_id = %s and disposition <> 'refused' group by a_call_id",
        (load.isp_id,))
    by_call = {row["a_call_id"]: row for row in records}
    money = await database.fetch(
        "select coalesce(sum(-amount), 0) as charged, count(*) as charges from ledger"
        " where customer_id = any(%s) and category = 'call'", (load.customer_ids,))
    balance = (await database.fetch("select sum(balance) as balance from customers where id = any(%s)",
                                    (load.customer_ids,)))[0]
    priced = sum((row["price"] for row in records), Decimal(0))
    spool = load.folder / "data" / "spool" / "records"
    log = load.node.output.text
    return {
        "answered": len(answered),
        "answered_without_record": sorted(call for call in answered if call not in by_call)[:20],
        "answered_without_record_count": sum(1 for call in answered if call not in by_call),
        "records_not_answered": sum(1 for call in answered if call in by_call
                                    and by_call[call]["disposition"] != "answered"),
        "calls_with_more_than_one_record": sum(1 for row in records if row["n"] > 1),
        "records": len(records),
        "refused_records": (await database.fetch("select count(*) as n from cdrs where disposition = 'refused'"))[0]["n"],
        "active_calls_left": left[0]["active"], "reservations_left": left[0]["reserved"],
        "priced": str(priced), "charged": str(money[0]["charged"]), "charges": money[0]["charges"],
        "priced_records": sum(1 for row in records if row["price"] > 0),
        "balances_spent": str(load.opening_balance * len(load.customer_ids) - balance["balance"]),
        "spooled": sorted(path.name for path in spool.glob("*.json")) if spool.exists() else [],
        "deadlocks_retried": log.count("(40P01"),
        "records_lost_lines": log.count("ended without its record"),
        "records_spooled_lines": log.count("its record is kept until the database takes it"),
    }
