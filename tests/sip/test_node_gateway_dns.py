"""
Issue 12 point 8 end to end: a real node (`twistd wevoip`) whose DNS is a real server on
loopback (tests/dnsserver.py). A carrier gateway added over the API by DNS name is
trusted from the address the name resolves to: that address's INVITE is routed without a
challenge while another's is challenged; when the record changes, after its TTL, trust
moves with it; when DNS stops answering, the last good address stays trusted and the API
says why. The API answer says what is trusted and when it was resolved.
"""

from __future__ import annotations

import shutil
import socket
import uuid

import pytest
import pytest_twisted
import treq
from twisted.internet import defer, reactor, threads
from twisted.internet.task import deferLater
from twisted.names import dns

from tests.dnsserver import LoopbackDNS
from tests.node import Node
from tests.pg import reachable_tmpdir
from tests.store.builders import build_tree
from wevoip.sip.message import parse
from wevoip.store.admins import create_api_token
from wevoip.store.database import Database

pytestmark = pytest.mark.slow

ZONE = "carrier.test"
TOKEN = "g" * 40


def invite_from(source: str, port: int, did: str) -> list[int]:
    """A carrier's INVITE to a DID, sent from `source`: the statuses that come back."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(5)
        local = sock.getsockname()[1]
        branch = "z9hG4bK" + uuid.uuid4().hex
        sock.sendto((f"INVITE sip:{did}@127.0.0.1:{port} SIP/2.0\r\n"
                     f"Via: SIP/2.0/UDP {source}:{local};branch={branch};rport\r\n"
                     f"From: <sip:+12125550100@{source}>;tag=c1\r\nTo: <sip:{did}@127.0.0.1>\r\n"
                     f"Call-ID: {branch}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
                     f"Contact: <sip:+12125550100@{source}:{local}>\r\nContent-Length: 0\r\n\r\n").encode(),
                    ("127.0.0.1", port))
        statuses = []
        while not statuses or statuses[-1] < 200:
            statuses.append(parse(sock.recv(65535)).status)
        return statuses


async def sleep(seconds: float) -> None:
    await deferLater(reactor, seconds, lambda: None)


@pytest_twisted.ensureDeferred
async def test_a_gateway_by_name_is_trusted_from_its_resolved_address_and_follows_dns():
    server = LoopbackDNS(ZONE, {f"sbc.{ZONE}": [dns.Record_A("127.0.0.5", ttl=1)]})
    folder = reachable_tmpdir("wevoip-test-gwdns-")
    node = Node(folder, sip=True)
    node.config_path.write_text(node.config_path.read_text() + (
        f'[dns]\nservers = ["127.0.0.1:{server.address[1]}"]\ntimeout_seconds = 1\n'
        "gateway_ttl_floor_seconds = 1\n"))
    try:
        health = await node.start_ready()
        port = Node.sip_port(health, "udp")
        database = Database(reactor, node.dsn, size=1)
        await database.connect()
        tree = await build_tree(database, "gwdns.example.net")
        await database.transact(lambda tx: create_api_token(tx, TOKEN, isp_id=tree.isp["id"]))
        await database.close()
        api = f"http://127.0.0.1:{node.web_port}/api/v1/isps/{tree.isp['id']}"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        response = await treq.post(f"{api}/carriers/{tree.carrier['id']}/gateways", json={"host": f"sbc.{ZONE}"},
                                   headers=auth)
        created = await response.json()
        assert response.code == 201 and created["port"] is None, created

        async def gateway_trusting(addresses, seconds=20):
            for _ in range(int(seconds * 5)):
                response = await treq.get(f"{api}/gateways/{created['id']}", headers=auth)
                shown = await response.json()
                if shown["trusted_sources"] == addresses:
                    return shown
                await sleep(0.2)
            raise AssertionError(f"still {shown}; log:\n{node.output.text[-3000:]}")

        shown = await gateway_trusting(["127.0.0.5/32"])
        assert shown["resolved_at"] and shown["resolve_error"] is None and shown["next_resolve_at"]
        did = tree.did["e164"]
        trusted = await threads.deferToThread(invite_from, "127.0.0.5", port, did)
        stranger = await threads.deferToThread(invite_from, "127.0.0.6", port, did)
        # routed as the carrier's call to the DID (480: the DID is routed to no subscriber), not challenged
        assert trusted == [100, 480] and stranger[-1] == 407, (trusted, stranger)

        server.zone.records[f"sbc.{ZONE}".encode()] = [dns.Record_A("127.0.0.6", ttl=1)]
        await gateway_trusting(["127.0.0.6/32"])
        trusted = await threads.deferToThread(invite_from, "127.0.0.6", port, did)
        former = await threads.deferToThread(invite_from, "127.0.0.5", port, did)
        assert trusted == [100, 480] and former[-1] == 407, (trusted, former)

        await defer.maybeDeferred(server.close)
        for _ in range(100):
            response = await treq.get(f"{api}/gateways/{created['id']}", headers=auth)
            shown = await response.json()
            if shown["resolve_error"]:
                break
            await sleep(0.2)
        assert shown["resolve_error"].startswith("no answer from DNS") and shown["trusted_sources"] == ["127.0.0.6/32"]
        assert await threads.deferToThread(invite_from, "127.0.0.6", port, did) == [100, 480]
        assert "still trusting 127.0.0.6" in node.output.text
    finally:
        await defer.maybeDeferred(server.close)
        await node.stop()
        shutil.rmtree(folder, ignore_errors=True)
