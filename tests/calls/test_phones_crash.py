"""
Issue 4 point 7's last sentence, end to end: a real node (`twistd wevoip`) is killed with
SIGKILL while two real calls are up (an on-net call between two baresip phones, and a
billed call out to a baresip carrier gateway on 127.0.0.3); started again on the same
database, it closes both with one correct record each, ended at its last heartbeat, and
the billed one charged what its record says.
"""

from __future__ import annotations

import datetime
import shutil
import textwrap

import pytest
import pytest_twisted
from twisted.internet import reactor

from tests.billing.world import price_north_america
from tests.calls.test_phones_call import DOMAIN, EXTRA, NAMESPACE, PASSWORD, Baresip, sip_ports, subscriber, tones, \
    until
from tests.node import Node
from tests.pg import reachable_tmpdir
from tests.store.builders import build_tree, held
from wevoip.routing.dialplan import denormalise
from wevoip.store import carriers, subscribers
from wevoip.store.database import Database

pytestmark = pytest.mark.slow

HEARTBEAT = 5
OUT = "+12125550100"


async def _database(node: Node) -> Database:
    database = Database(reactor, node.dsn, size=2)
    await database.connect()
    return database


async def _world(database: Database):
    """alice calls bob on-net; carol calls out through the carrier's gateway on 127.0.0.3."""
    tree = await build_tree(database, NAMESPACE)
    port = sip_ports("127.0.0.3")

    async def more(tx):
        isp_id = tree.isp["id"]
        await held(tx, isp_id, tree.tenant["id"], "+15550100101")
        await subscribers.create_subscriber(tx, isp_id, tree.tenant["id"], username="bob", password=PASSWORD,
                                            extension="101", e164="+15550100101")
        await held(tx, isp_id, tree.tenant["id"], "+15550100102")
        await subscribers.create_subscriber(tx, isp_id, tree.tenant["id"], username="carol", password=PASSWORD,
                                            extension="102", e164="+15550100102")
        await price_north_america(tx, isp_id, tree)
        await carriers.update_gateway(tx, isp_id, tree.gateway["id"], host="127.0.0.3", port=port, strip_digits=1,
                                      prefix="00")
    await database.transact(more)
    return tree, port


@pytest.fixture
def tone_files(tmp_path):
    """Tones longer than the test: baresip hangs up when its file ends."""
    tones(tmp_path, seconds=120)


@pytest_twisted.ensureDeferred
async def test_a_node_killed_mid_call_closes_its_calls_with_one_record_each_when_it_starts_again(tmp_path, tone_files):
    folder = reachable_tmpdir("wevoip-test-crash-")
    node = Node(folder, sip=True)
    node.config_path.write_text(node.config_path.read_text() + EXTRA + f"[billing]\nheartbeat_seconds = {HEARTBEAT}\n")
    phones = []
    database = None
    try:
        health = await node.start_ready()
        database = await _database(node)
        tree, gateway_port = await _world(database)
        port = Node.sip_port(health, "udp")
        digits = denormalise(OUT, 1, "00")
        phones = [Baresip(tmp_path / user, user, subscriber(user, port), source=f"aufile,{tmp_path / '1000.wav'}")
                  for user in ("alice", "bob", "carol")]
        phones.append(Baresip(tmp_path / "gateway", digits,
                              f"<sip:{digits}@127.0.0.3>;regint=0;answermode=auto;audio_codecs=PCMU",
                              source=f"aufile,{tmp_path / '440.wav'}", host="127.0.0.3", sip_port=gateway_port))
        for phone in phones:
            phone.start()
        alice, bob, carol, gateway = phones

        async def registered():
            rows = await database.fetch("select count(distinct subscriber_id) from registrations"
                                        " where source like '127.0.0.1:%%'")
            return rows[0]["count"] == 3
        await until(registered, lambda: "the phones to register:\n" + "\n".join(p.output for p in phones[:3]))
        await alice.command("dial", f"sip:101@{DOMAIN}")
        await carol.command("dial", "2125550100")

        async def answered_and_beaten():
            """Both calls answered, and a heartbeat since the later answer."""
            rows = await database.fetch("select answered_at, last_seen_at from active_calls")
            return len(rows) == 2 and all(r["answered_at"] and r["last_seen_at"] > r["answered_at"] for r in rows)
        await until(answered_and_beaten, lambda: "both calls to be answered and a heartbeat:\n"
                    + node.output.text[-3000:], timeout=HEARTBEAT + 25)
        live = {row["call_id"]: row for row in await database.fetch("select * from active_calls")}
        await database.close()
        database = None
        assert await node.kill() == -9
        killed_at = datetime.datetime.now(datetime.timezone.utc)
        for phone in phones:     # killed too: on TERM each would wait half a minute for its BYE's answer
            phone.transport.signalProcess("KILL")
            await phone.ended

        await node.start_ready()
        database = await _database(node)

        async def closed():
            rows = await database.fetch("select * from cdrs order by id")
            left = await database.fetch("select id from active_calls")
            return len(rows) >= 2 and not left and rows
        cdrs = await until(closed, lambda: "the calls to be closed:\n" + node.output.text[-3000:])
        assert sorted(cdr["a_call_id"] for cdr in cdrs) == sorted(live), "one record per call"
        assert not await database.fetch("select id from call_reservations")
        by_direction = {cdr["direction"]: cdr for cdr in cdrs}
        expected = {"internal": ("alice", "+15550100100", "101", "+15550100101"),
                    "outbound": ("carol", "+15550100102", "2125550100", OUT)}
        for direction, (caller, caller_e164, callee, callee_e164) in expected.items():
            cdr = by_direction[direction]
            call = live[cdr["a_call_id"]]
            assert (cdr["disposition"], cdr["hangup_by"], cdr["sip_code"]) == ("answered", "system", None)
            assert (cdr["caller_dialled"], cdr["caller_e164"], cdr["callee_dialled"], cdr["callee_e164"]) == \
                (caller, caller_e164, callee, callee_e164)
            assert (cdr["isp_id"], cdr["customer_id"], cdr["tenant_id"]) == \
                (tree.isp["id"], tree.customer["id"], tree.tenant["id"])
            assert cdr["answered_at"] == call["answered_at"]
            assert call["last_seen_at"] <= cdr["ended_at"] <= killed_at, "ended at the last heartbeat"
            assert cdr["ended_at"] >= killed_at - datetime.timedelta(seconds=HEARTBEAT + 5), "the heartbeat kept on"
            assert cdr["talk_ms"] == int((cdr["ended_at"] - cdr["answered_at"]).total_seconds() * 1000) > 0
        billed = by_direction["outbound"]
        assert (billed["carrier_id"], billed["gateway_id"]) == (tree.carrier["id"], tree.gateway["id"])
        assert by_direction["internal"]["price"] == 0 and billed["price"] > 0
        [charge] = await database.fetch("select * from ledger where cdr_id = %s", (billed["id"],))
        assert (charge["kind"], -charge["amount"], billed["ledger_id"]) == ("charge", billed["price"], charge["id"])
        events = await database.fetch("select payload from outbox where kind = 'webhook'")
        assert sorted(e["payload"]["data"]["call_id"] for e in events if e["payload"]["event"] == "call.ended") == \
            sorted(live)
    finally:
        for phone in phones:
            await phone.stop()
        if database is not None:
            await database.close()
        await node.stop()
        shutil.rmtree(folder, ignore_errors=True)
