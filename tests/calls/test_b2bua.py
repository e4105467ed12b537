"""The B2BUA on the real SIP core, real digest and the real store; phones and gateways are
SIP peers on in-memory flows, timers on a Clock."""

import re
from decimal import Decimal

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock, deferLater
from twisted.logger import globalLogPublisher

from plugins.dialplan_presets import us
from tests.store.builders import build_tree, held
from wevoip.calls.b2bua import B2BUA
from tests.media.phones import Phone, phones, receive, rtp  # noqa: F401 (phones is a fixture)
from wevoip.calls.machine import CallTimers
from wevoip.calls.session import LINGER
from wevoip.config import MediaConfig
from wevoip.media.relay import InProcessRelay
from wevoip.media.sdp import parse as parse_sdp
from wevoip.credentials import sip_ha1s
from wevoip.sip.auth import Authenticator
from wevoip.sip.core import SipCore
from wevoip.sip.defence import Defence, DefencePolicy
from wevoip.sip.digest import DigestAuthority, digest_response
from wevoip.sip.directory import Directory
from wevoip.sip.edge import EdgeProxy, FlowRef, read
from wevoip.sip.headers import parse_addresses
from wevoip.sip.flow import Flow, FlowTable
from wevoip.sip.message import parse
from wevoip.sip.register import asked_of
from wevoip.sip.registrar import Binding
from wevoip.sip.transaction import T1
from tests.billing.world import price_north_america, publish_csv
from wevoip.store import calls, carriers, customers, dids, ledger, ratedecks, subscribers

PASSWORD = "correct-horse-9"
NODE = ("127.0.0.1", 5060)
SDP_A = "v=0\r\no=alice 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
SDP_B = "v=0\r\no=bob 1 1 IN IP4 192.0.2.2\r\ns=-\r\nc=IN IP4 192.0.2.2\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n"


class Wire:
    """Everything the node sends, by destination; peers read their share."""

    def __init__(self):
        self.sent = {}

    def write(self, data, remote):
        self.sent.setdefault(tuple(remote), []).append(parse(data))


class Peer:
    def __init__(self, core, wire, address, user):
        self.core, self.wire, self.address, self.user = core, wire, address, user
        self.flow = Flow("udp", address, NODE, lambda data: wire.write(data, address))
        self.tag = f"tag-{user}"
        self.cseq = 0

    def take(self):
        return self.wire.sent.pop(self.address, [])

    def send(self, text):
        self.core.receive(text.encode(), self.flow)

    def request(self, method, uri, *, call_id, to, from_=None, cseq=None, branch=None, body="", extra=""):
        self.cseq = cseq or self.cseq + 1
        host, port = self.address
        content = "Content-Type: application/sdp\r\n" if body else ""
        self.send(f"{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {host}:{port};branch={branch or 'z9hG4bK' + method + str(self.cseq) + call_id};rport\r\n"
                  f"From: {from_ or f'<sip:{self.user}@{host}>'};tag={self.tag}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n"
                  f"CSeq: {self.cseq} {method}\r\nContact: <sip:{self.user}@{host}:{port}>\r\nMax-Forwards: 70\r\n"
                  f"{extra}{content}Content-Length: {len(body)}\r\n\r\n{body}")

    def answer(self, request, status, *, body="", to_tag="callee", extra=""):
        host, port = self.address
        headers = "".join(f"{name}: {value}\r\n" for name in ("Via", "From", "Call-ID", "CSeq")
                          for value in request.headers.get_all(name))
        to = request.headers.get("To") + ("" if request.to.tag or status == 100 else f";tag={to_tag}")
        content = "Content-Type: application/sdp\r\n" if body else ""
        self.send(f"SIP/2.0 {status} Whatever\r\n{headers}To: {to}\r\nContact: <sip:{self.user}@{host}:{port}>\r\n"
                  f"{extra}{content}Content-Length: {len(body)}\r\n\r\n{body}")

    def in_dialog(self, method, received, *, body=""):
        """A request in the dialog `received` (a request to this peer) made."""
        return self.request(method, "sip:b2bua@127.0.0.1:5060", call_id=received.call_id,
                            to=received.headers.get("From"), from_=_untag(received.headers.get("To")),
                            body=body)


def _untag(value):
    return re.sub(r";tag=[^;]*", "", value)


def _authorization(challenge, uri):
    realm = re.search(r'realm="([^"]+)"', challenge).group(1)
    nonce = re.search(r'nonce="([^"]+)"', challenge).group(1)
    algorithm = re.search(r"algorithm=([A-Z0-9-]+)", challenge).group(1)
    ha1 = sip_ha1s("alice", realm, PASSWORD)["ha1_md5" if algorithm == "MD5" else "ha1_sha256"]
    response = digest_response(algorithm, ha1, nonce, "INVITE", uri, "auth", "00000001", "c0ffee")
    return (f'Proxy-Authorization: Digest username="alice", realm="{realm}", nonce="{nonce}", uri="{uri}", '
            f'response="{response}", algorithm={algorithm}, qop=auth, nc=00000001, cnonce="c0ffee"\r\n')


class World:
    def __init__(self, database, tree, bob, clock, core, wire, bindings, records, b2bua):
        self.database, self.tree, self.bob, self.clock, self.core = database, tree, bob, clock, core
        self.wire, self.bindings, self.records, self.b2bua = wire, bindings, records, b2bua
        self.domain = tree.domain["name"]
        self.alice = Peer(core, wire, ("192.0.2.1", 5060), "alice")

    def gateways(self):
        """The carrier's two gateways as the test tree has them (127.0.0.2 first, then 127.0.0.3)."""
        return (Peer(self.core, self.wire, ("127.0.0.2", 5070), "gw1"),
                Peer(self.core, self.wire, ("127.0.0.3", 5070), "gw2"))

    def phone(self, subscriber_id, address, user):
        peer = Peer(self.core, self.wire, address, user)
        self.bindings.setdefault(subscriber_id, []).append(Binding(
            f"sip:{user}@{address[0]}:{address[1]}", "", 1000, "reg", 1, 1e12, f"{address[0]}:{address[1]}", "udp"))
        return peer

    async def active(self):
        await self.b2bua.settled()
        return await self.database.transact(calls.count_active_calls, self.tree.isp["id"])


@pytest_twisted.async_yield_fixture
async def world(database):
    yield await make_world(database)


@pytest.fixture(scope="module")
def relay():
    relay = InProcessRelay(reactor, MediaConfig(rtp_address="127.0.0.1", rtp_port_min=45000, rtp_port_max=45099,
                                                forwarder="thread"))
    relay.startService()
    pytest_twisted.blockon(relay.ready)
    yield relay
    pytest_twisted.blockon(relay.stopService())


async def cdrs(world):
    await world.b2bua.settled()
    return await world.database.fetch("select * from cdrs order by id")


async def make_world(database, relay=None, timers=CallTimers(no_answer=60, progress=2), locator=None):
    tree = await build_tree(database, "calls.example.net")
    isp_id = tree.isp["id"]

    async def more(tx):
        await held(tx, isp_id, tree.tenant["id"], "+15550100101")
        bob = await subscribers.create_subscriber(tx, isp_id, tree.tenant["id"], username="bob", password=PASSWORD,
                                                  extension="101", e164="+15550100101")
        await carriers.update_gateway(tx, isp_id, tree.gateway["id"], host="127.0.0.2", port=5070,
                                      strip_digits=1, prefix="00", priority=10, source_ips=["127.0.0.2"])
        await carriers.create_gateway(tx, isp_id, tree.carrier["id"], host="127.0.0.3", port=5070, priority=20)
        await price_north_america(tx, isp_id, tree)
        return bob
    bob = await database.transact(more)
    clock = Clock()
    clock.advance(1_800_000_000)
    wire = Wire()
    flows = FlowTable()
    flows.add_datagram_socket(4, NODE, wire.write)
    core = SipCore(clock, flows)
    secret = b"s" * 32
    authenticator = Authenticator(DigestAuthority(clock, secret), Directory(database, secret),
                                  Defence(clock, DefencePolicy()))
    bindings, records = {}, []

    async def authenticate(request, flow):
        return await authenticator.authenticate(asked_of(request, flow))

    b2bua = B2BUA(clock, core, database, node="test-node", authenticate=authenticate,
                  contacts=lambda subscriber_id: bindings.get(subscriber_id, []), rules=lambda isp: us.rules(),
                  timers=timers, on_record=records.append, relay=relay, locator=locator)
    b2bua.install()
    return World(database, tree, bob, clock, core, wire, bindings, records, b2bua)


async def until(predicate, what="the condition"):
    """Wait for work on the real reactor (the store's round trips) to show its effect."""
    for _ in range(1000):
        if predicate():
            return
        await deferLater(reactor, 0.005, lambda: None)
    raise AssertionError(f"timed out waiting for {what}")


async def answered_row(world):
    """The call's active_calls row once the 2xx's mark has reached the store."""
    for _ in range(1000):
        rows = await world.database.fetch("select * from active_calls where answered_at is not null")
        if rows:
            return rows[0]
        await deferLater(reactor, 0.005, lambda: None)
    raise AssertionError("timed out waiting for the answer's mark")


async def dial(world, dialled, call_id="c1", body=SDP_A, extra=""):
    """alice dials: 407 first, then the INVITE with credentials. Returns what alice got."""
    alice = world.alice
    uri = f"sip:{dialled}@{world.domain}"
    to, from_ = f"<{uri}>", f"<sip:alice@{world.domain}>"
    alice.request("INVITE", uri, call_id=call_id, to=to, from_=from_, body=body, extra=extra)
    got = []
    await until(lambda: got.extend(alice.take()) or any(m.status == 407 for m in got), "the 407")
    challenge = next(m for m in got if m.status == 407)
    alice.request("ACK", uri, call_id=call_id, to=challenge.headers.get("To"), from_=from_, cseq=alice.cseq,
                  branch=f"z9hG4bKINVITE{alice.cseq}{call_id}")
    auth = _authorization(challenge.headers.get("Proxy-Authenticate"), uri)
    alice.request("INVITE", uri, call_id=call_id, to=to, from_=from_, body=body, extra=auth + extra)
    await until(lambda: any(incoming.request.call_id == call_id for incoming in world.b2bua.sessions) or any(
        m.status >= 200 and m.call_id == call_id for m in world.wire.sent.get(alice.address, [])),
        "the call to be routed")
    for session in list(world.b2bua.sessions.values()):   # the INVITE out goes before the admission's COMMIT
        await session.admitted.durable.wait()


async def ring_bob(world):
    """alice dials bob's extension; bob's phone gets the INVITE."""
    bob = world.phone(world.bob["id"], ("192.0.2.2", 5062), "bob")
    await dial(world, "101")
    [invite] = bob.take()
    return bob, invite


async def ring_two(world, body=SDP_A):
    """alice dials bob, who has a desk phone and a mobile; both get an INVITE."""
    desk = world.phone(world.bob["id"], ("192.0.2.2", 5062), "bob")
    mobile = world.phone(world.bob["id"], ("192.0.2.3", 5064), "bob")
    await dial(world, "101", body=body)
    [desk_invite], [mobile_invite] = desk.take(), mobile.take()
    return desk, desk_invite, mobile, mobile_invite


def statuses(messages):
    return [getattr(m, "status", None) or m.method for m in messages]


@pytest_twisted.ensureDeferred
async def test_alice_calls_bob_who_answers_and_hangs_up(world):
    alice = world.alice
    bob = world.phone(world.bob["id"], ("192.0.2.2", 5062), "bob")
    await dial(world, "101")
    assert statuses(alice.take()) == [100]
    [invite] = bob.take()
    assert invite.method == "INVITE" and str(invite.uri) == "sip:bob@192.0.2.2:5062"
    assert invite.call_id != "c1" and invite.body == SDP_A.encode()
    assert invite.from_.tag and invite.from_.tag != alice.tag and invite.to.tag is None
    assert await world.active() == 1
    bob.answer(invite, 180)
    [ringing] = alice.take()
    assert ringing.status == 180 and ringing.to.tag and ringing.call_id == "c1"
    world.clock.advance(3)
    bob.answer(invite, 200, body=SDP_B)
    [ok] = alice.take()
    assert ok.status == 200 and ok.body == SDP_B.encode() and ok.to.tag == ringing.to.tag
    assert ok.headers.get("Contact") == "<sip:b2bua@127.0.0.1:5060>"
    row = await answered_row(world)      # what recovery would write the record from, were the node to die
    assert (row["answered_at"].timestamp(), row["call_id"], row["subscriber_id"]) == (
        world.clock.seconds(), "c1", world.tree.subscriber["id"])
    assert (row["caller_dialled"], row["caller_e164"], row["callee_dialled"], row["callee_e164"]) == (
        "alice", "+15550100100", "101", "+15550100101")
    alice.request("ACK", "sip:b2bua@127.0.0.1:5060", call_id="c1", to=ok.headers.get("To"),
                  from_=f"<sip:alice@{world.domain}>", cseq=alice.cseq)
    [ack] = bob.take()
    assert ack.method == "ACK" and ack.call_id == invite.call_id and ack.cseq.number == invite.cseq.number
    assert ack.to.tag == "callee"
    world.clock.advance(10)
    bob.in_dialog("BYE", invite)
    assert statuses(bob.take()) == [200]
    [bye] = alice.take()
    assert bye.method == "BYE" and bye.call_id == "c1" and bye.to.tag == alice.tag
    await until(lambda: world.records, "the record")
    [facts] = world.records
    record = facts.record
    assert (record.disposition, record.status, record.hung_up_by) == ("answered", 200, "callee")
    assert record.end_ms - record.answer_ms == 10000 and record.answer_ms - record.start_ms == 3000
    assert (facts.direction, facts.dialled, facts.callee_e164) == ("internal", "101", "+15550100101")
    assert facts.call_ids == ("c1", invite.call_id)
    [cdr] = await cdrs(world)     # on-net: a record at no price
    assert (cdr["direction"], cdr["disposition"], cdr["hangup_by"], cdr["sip_code"], cdr["price"]) == (
        "internal", "answered", "callee", 200, 0)
    assert (cdr["talk_ms"], cdr["duration_ms"], cdr["a_call_id"], cdr["b_call_id"]) == (
        10000, 13000, "c1", invite.call_id)
    assert (cdr["subscriber_id"], cdr["callee_dialled"], cdr["callee_e164"], cdr["caller_e164"]) == (
        world.tree.subscriber["id"], "101", "+15550100101", "+15550100100")
    assert cdr["media_flow"] is None and cdr["one_way_media"] is None, "no relay measured it"
    assert await world.active() == 0
    [hook] = await world.database.fetch("select payload from outbox where kind = 'webhook' and isp_id = %s",
                                        (world.tree.isp["id"],))
    data = hook["payload"]["data"]
    assert (hook["payload"]["event"], data["call_id"], data["caller"], data["callee"], data["duration_ms"],
            data["end_reason"]) == ("call.ended", "c1", "+15550100100", "+15550100101", 13000, "answered")


@pytest_twisted.ensureDeferred
async def test_two_contacts_ring_the_first_answer_wins_and_a_cancel_reaches_the_other(world):
    alice = world.alice
    desk, desk_invite, mobile, mobile_invite = await ring_two(world)
    assert desk_invite.call_id != mobile_invite.call_id
    desk.answer(desk_invite, 180)
    mobile.answer(mobile_invite, 180)
    mobile.answer(mobile_invite, 200, body=SDP_B)
    [cancel] = desk.take()
    assert cancel.method == "CANCEL" and cancel.top_via.branch == desk_invite.top_via.branch
    assert cancel.cseq.number == desk_invite.cseq.number
    desk.answer(cancel, 200)
    desk.answer(desk_invite, 487)
    assert statuses(desk.take()) == ["ACK"]    # the transaction's ACK for the 487
    assert statuses(alice.take()) == [100, 180, 180, 200]


@pytest_twisted.ensureDeferred
async def test_the_caller_cancels_and_the_callee_is_cancelled(world):
    alice = world.alice
    bob, invite = await ring_bob(world)
    bob.answer(invite, 180)
    alice.take()
    alice.request("CANCEL", f"sip:101@{world.domain}", call_id="c1", to=f"<sip:101@{world.domain}>",
                  from_=f"<sip:alice@{world.domain}>", cseq=alice.cseq, branch=f"z9hG4bKINVITE{alice.cseq}c1")
    assert statuses(alice.take()) == [200, 487]
    [cancel] = bob.take()
    assert cancel.method == "CANCEL"
    bob.answer(invite, 200, body=SDP_B)   # the 200 raced the CANCEL: ACK and BYE
    assert statuses(bob.take()) == ["ACK", "BYE"]
    await until(lambda: world.records, "the record")
    assert world.records[0].record.disposition == "cancelled"
    assert await world.active() == 0
    [cdr] = await cdrs(world)
    assert (cdr["disposition"], cdr["sip_code"], cdr["hangup_by"], cdr["talk_ms"]) == ("cancelled", 487, "caller", 0)


@pytest_twisted.ensureDeferred
async def test_an_unregistered_subscriber_gets_480(world):
    await dial(world, "101")
    [final] = [m for m in world.alice.take() if m.status >= 200]
    assert final.status == 480 and "no registered contact" in final.reason
    assert await world.active() == 0


@pytest_twisted.ensureDeferred
async def test_limits_and_suspension_refuse_with_a_reason(world):
    isp_id, customer_id = world.tree.isp["id"], world.tree.customer["id"]
    world.phone(world.bob["id"], ("192.0.2.2", 5062), "bob")
    await world.database.transact(customers.update_customer, isp_id, customer_id, max_concurrent_calls=1)
    await dial(world, "101")
    world.alice.take()
    await dial(world, "101", call_id="c2")
    [refusal] = [m for m in world.alice.take() if m.status >= 200]
    assert refusal.status == 503 and "customer max_concurrent_calls of 1 reached" in refusal.reason
    await world.database.transact(customers.set_customer_status, isp_id, customer_id, "SUSPENDED")
    await dial(world, "101", call_id="c3")
    [refusal] = [m for m in world.alice.take() if m.status >= 200]
    assert (refusal.status, refusal.reason) == (403, "Forbidden: customer suspended")
    assert await world.active() == 1


@pytest_twisted.ensureDeferred
async def test_outbound_goes_to_the_first_gateway_with_its_digits_and_fails_over_when_it_is_silent(world):
    alice = world.alice
    first, second = world.gateways()
    await dial(world, "2125550100")
    [invite] = first.take()
    assert str(invite.uri) == "sip:0012125550100@127.0.0.2:5070"   # strip 1 digit, prefix 00
    assert invite.headers.get("P-Asserted-Identity") == "<sip:+15550100100@127.0.0.1;user=phone>"
    assert invite.from_.uri.user == "+15550100100"
    world.clock.advance(2)   # no word from the first gateway: the progress timer moves on
    [invite2] = second.take()
    assert str(invite2.uri) == "sip:+12125550100@127.0.0.3:5070"
    second.answer(invite2, 183, body=SDP_B)
    second.answer(invite2, 200, body=SDP_B)
    assert statuses(alice.take()) == [100, 183, 200]
    first.answer(invite, 180)    # the first wakes up: CANCEL once it has spoken
    assert statuses(first.take())[-1] == "CANCEL"
    rows = await world.database.fetch("select direction, carrier_id from active_calls")
    assert [(r["direction"], r["carrier_id"]) for r in rows] == [("outbound", world.tree.carrier["id"])]
    assert await cdrs(world) == []     # a call is billed when it ends


@pytest_twisted.ensureDeferred
async def test_a_carrier_is_shown_no_number_the_tenant_does_not_hold(world):
    """Issue 12, point 7: a pilot whose number is not (or no longer) a DID of its tenant, as a
    row written before the check could be, calls out anonymous: no P-Asserted-Identity, and
    its record names no caller number."""
    isp_id = world.tree.isp["id"]
    await world.database.fetch("update subscribers set e164 = '+12025550199' where isp_id = %s and id = %s"
                               " returning id", (isp_id, world.tree.subscriber["id"]))
    first, _ = world.gateways()
    await dial(world, "2125550100")
    [invite] = first.take()
    assert invite.from_.uri.user == "anonymous" and invite.headers.get("P-Asserted-Identity") is None
    assert "+12025550199" not in str(invite) and "+15550100100" not in str(invite)
    first.answer(invite, 486)
    await until(lambda: world.records, "the record")
    [cdr] = await cdrs(world)
    assert cdr["caller_e164"] is None


@pytest_twisted.ensureDeferred
async def test_an_outbound_call_is_settled_into_a_cdr_priced_by_the_carriers_card(world):
    alice = world.alice
    first, second = world.gateways()
    await dial(world, "2125550100")
    [invite] = first.take()
    first.answer(invite, 180)
    world.clock.advance(1)
    first.answer(invite, 200, body=SDP_B)
    [ok] = [m for m in alice.take() if m.status == 200]
    from_ = f"<sip:alice@{world.domain}>"
    alice.request("ACK", "sip:b2bua@127.0.0.1:5060", call_id="c1", to=ok.headers.get("To"), from_=from_,
                  cseq=alice.cseq)
    world.clock.advance(90.5)
    first.in_dialog("BYE", invite)
    assert statuses(first.take())[-1] == 200
    assert await world.active() == 0
    [cdr] = await cdrs(world)
    assert (cdr["direction"], cdr["disposition"], cdr["sip_code"], cdr["hangup_by"]) == (
        "outbound", "answered", 200, "callee")
    assert (cdr["a_call_id"], cdr["b_call_id"], cdr["callee_e164"], cdr["caller_e164"]) == (
        "c1", invite.call_id, "+12125550100", "+15550100100")
    assert (cdr["carrier_id"], cdr["gateway_id"], cdr["tenant_id"]) == (
        world.tree.carrier["id"], world.tree.gateway["id"], world.tree.tenant["id"])
    assert cdr["talk_ms"] == 90500 and cdr["duration_ms"] == 91500 and cdr["billable_seconds"] == 120
    assert cdr["price"] == Decimal("0.02")     # two started minutes at 0.01


@pytest_twisted.ensureDeferred
async def test_a_prepaid_call_is_cut_when_its_money_is_spent(world):
    isp_id, customer_id = world.tree.isp["id"], world.tree.customer["id"]
    await world.database.transact(ledger.add_charge, isp_id, customer_id, amount="9.97", description="spent",
                                  category="manual")
    alice = world.alice
    first, _ = world.gateways()
    await dial(world, "2125550100")
    [invite] = first.take()
    first.answer(invite, 200, body=SDP_B)
    [ok] = [m for m in alice.take() if m.status == 200]
    alice.request("ACK", "sip:b2bua@127.0.0.1:5060", call_id="c1", to=ok.headers.get("To"),
                  from_=f"<sip:alice@{world.domain}>", cseq=alice.cseq)
    world.clock.advance(179.9)
    assert not [m for m in alice.take() if getattr(m, "method", None) == "BYE"]
    world.clock.advance(0.1)      # three minutes is what 0.03 buys
    assert statuses(alice.take()) == ["BYE"] and statuses(first.take())[-1] == "BYE"
    assert await world.active() == 0
    [cdr] = await cdrs(world)
    assert (cdr["hangup_by"], cdr["talk_ms"], cdr["price"]) == ("system", 180000, Decimal("0.03"))
    await dial(world, "2125550100", call_id="c2")
    [refusal] = [m for m in alice.take() if m.status >= 200]
    assert refusal.status == 402 and refusal.reason.startswith("Payment Required: ")


@pytest_twisted.ensureDeferred
async def test_every_gateway_failing_gives_the_best_answer(world):
    alice = world.alice
    first, second = world.gateways()
    await dial(world, "2125550100")
    [invite] = first.take()
    first.answer(invite, 503)
    [invite2] = second.take()
    second.answer(invite2, 100)
    second.answer(invite2, 404)
    assert statuses(alice.take())[-1] == 404
    await until(lambda: world.records, "the record")
    record = world.records[0].record
    assert record.disposition == "failed" and [a.status for a in record.attempts] == [503, 404]
    assert await world.active() == 0
    [cdr] = await cdrs(world)
    assert (cdr["disposition"], cdr["sip_code"], cdr["hangup_by"], cdr["price"]) == ("failed", 404, "callee", 0)


@pytest_twisted.ensureDeferred
async def test_a_reinvite_for_hold_passes_through_and_a_stray_request_gets_481(world):
    alice = world.alice
    bob, invite = await ring_bob(world)
    bob.answer(invite, 200, body=SDP_B)
    ok = [m for m in alice.take() if m.status == 200][0]
    from_ = f"<sip:alice@{world.domain}>"
    alice.request("ACK", "sip:b2bua@127.0.0.1:5060", call_id="c1", to=ok.headers.get("To"), from_=from_,
                  cseq=alice.cseq)
    bob.take()
    hold = SDP_A.replace("t=0 0", "t=0 0\r\na=sendonly")
    alice.request("INVITE", "sip:b2bua@127.0.0.1:5060", call_id="c1", to=ok.headers.get("To"), from_=from_,
                  body=hold)
    [reinvite] = bob.take()
    assert reinvite.method == "INVITE" and reinvite.call_id == invite.call_id and reinvite.body == hold.encode()
    assert reinvite.cseq.number == invite.cseq.number + 1 and reinvite.to.tag == "callee"
    bob.answer(reinvite, 200, body=SDP_B.replace("t=0 0", "t=0 0\r\na=recvonly"))
    [ok2] = [m for m in alice.take() if m.status == 200]
    assert b"recvonly" in ok2.body
    alice.request("ACK", "sip:b2bua@127.0.0.1:5060", call_id="c1", to=ok.headers.get("To"), from_=from_,
                  cseq=alice.cseq)
    [ack2] = bob.take()
    assert ack2.method == "ACK" and ack2.cseq.number == reinvite.cseq.number
    alice.request("BYE", "sip:b2bua@127.0.0.1:5060", call_id="nope", to="<sip:x@y>;tag=zz", from_=from_)
    assert statuses(alice.take()) == [481]
    alice.request("BYE", "sip:b2bua@127.0.0.1:5060", call_id="c1", to=ok.headers.get("To"), from_=from_)
    assert statuses(alice.take()) == [200]
    assert statuses(bob.take()) == ["BYE"]
    await until(lambda: world.records, "the record")
    assert world.records[0].record.hung_up_by == "caller"


@pytest_twisted.ensureDeferred
async def test_a_carrier_call_to_a_did_rings_its_subscriber(world):
    isp_id = world.tree.isp["id"]
    await world.database.transact(dids.route_did, isp_id, world.tree.did["id"], world.bob["id"])
    bob = world.phone(world.bob["id"], ("192.0.2.2", 5062), "bob")
    carrier = Peer(world.core, world.wire, ("127.0.0.2", 5070), "carrier")
    carrier.request("INVITE", "sip:15550199000@127.0.0.1", call_id="t1", to="<sip:15550199000@127.0.0.1>",
                    from_="<sip:+442071234567@127.0.0.2>", body=SDP_A)
    await until(lambda: bob.wire.sent.get(bob.address), "the INVITE to bob")
    [invite] = bob.take()
    assert invite.method == "INVITE" and invite.from_.uri.user == "+442071234567"
    bob.answer(invite, 486)
    assert statuses(carrier.take()) == [100, 486]
    await until(lambda: world.records, "the record")
    facts = world.records[0]
    assert (facts.direction, facts.record.disposition, facts.carrier_id) == ("inbound", "busy", world.tree.carrier["id"])
    assert await world.active() == 0
    [cdr] = await cdrs(world)
    assert (cdr["direction"], cdr["disposition"], cdr["did_id"], cdr["sip_code"]) == (
        "inbound", "busy", world.tree.did["id"], 486)


@pytest_twisted.ensureDeferred
async def test_media_is_anchored_at_the_relay_and_its_ports_come_back(database, relay, phones):
    world = await make_world(database, relay)
    alice, free = world.alice, relay.pool.available
    phone_a, phone_b, stray = phones
    bob = world.phone(world.bob["id"], ("192.0.2.2", 5062), "bob")
    await dial(world, "101", body=phone_a.sdp().decode())
    [invite] = bob.take()
    offer = parse_sdp(invite.body)
    to_a = offer.media[0].port
    assert offer.connection.address == "127.0.0.1" and to_a != phone_a.port
    bob.answer(invite, 180)
    bob.answer(invite, 200, body=phone_b.sdp().decode())
    await until(lambda: any(m.status == 200 for m in world.wire.sent.get(alice.address, [])), "the 200")
    [ok] = [m for m in alice.take() if m.status == 200]
    to_b = parse_sdp(ok.body).media[0].port
    assert to_b not in (to_a, phone_b.port) and relay.pool.available < free
    phone_a.rtp.sendto(rtp(1), ("127.0.0.1", to_b))
    assert receive(phone_b.rtp)[0] == rtp(1)
    phone_b.rtp.sendto(rtp(2, ssrc=7), ("127.0.0.1", to_a))
    assert receive(phone_a.rtp)[0] == rtp(2, ssrc=7)
    from_ = f"<sip:alice@{world.domain}>"
    alice.request("ACK", "sip:b2bua@127.0.0.1:5060", call_id="c1", to=ok.headers.get("To"), from_=from_,
                  cseq=alice.cseq)
    bob.take()
    alice.request("INVITE", "sip:b2bua@127.0.0.1:5060", call_id="c1", to=ok.headers.get("To"), from_=from_,
                  body=phone_a.sdp("a=sendonly\r\n").decode())          # hold
    await until(lambda: world.wire.sent.get(bob.address), "the re-INVITE")
    [hold] = bob.take()
    held = parse_sdp(hold.body)
    assert held.media[0].port == to_a and held.media[0].direction == "sendonly"
    bob.in_dialog("INVITE", invite, body=stray.sdp().decode())   # crosses alice's offer: 491
    await until(lambda: world.wire.sent.get(bob.address), "the 491")
    assert statuses(bob.take()) == [100, 491]
    phone_a.rtp.sendto(rtp(3), ("127.0.0.1", to_b))
    assert receive(phone_b.rtp)[0] == rtp(3)      # the refused offer did not move bob's media
    assert receive(stray.rtp, timeout=0.2) is None
    bob.answer(hold, 200, body=phone_b.sdp("a=recvonly\r\n").decode())
    await until(lambda: any(m.status == 200 for m in world.wire.sent.get(alice.address, [])), "the hold's 200")
    [held_ok] = [m for m in alice.take() if m.status == 200]
    assert parse_sdp(held_ok.body).media[0].port == to_b
    assert parse_sdp(held_ok.body).media[0].direction == "recvonly"
    alice.request("BYE", "sip:b2bua@127.0.0.1:5060", call_id="c1", to=ok.headers.get("To"),
                  from_=f"<sip:alice@{world.domain}>")
    assert statuses(bob.take())[-1] == "BYE"
    [cdr] = await cdrs(world)
    assert relay.pool.available == free
    assert (cdr["media_flow"], cdr["one_way_media"]) == ("both", False)


async def answered(world, offer: bytes, answer: bytes):
    """alice calls bob with `offer`; bob rings for 2 s and answers with `answer`. Returns
    the INVITE bob got and the 200 alice got."""
    bob = world.phone(world.bob["id"], ("192.0.2.2", 5062), "bob")
    await dial(world, "101", body=offer.decode())
    [invite] = bob.take()
    bob.answer(invite, 180)
    world.clock.advance(2)
    bob.answer(invite, 200, body=answer.decode())
    await until(lambda: any(m.status == 200 for m in world.wire.sent.get(world.alice.address, [])), "the 200")
    [ok] = [m for m in world.alice.take() if m.status == 200]
    return invite, ok


def hang_up(world, ok) -> None:
    world.alice.request("BYE", "sip:b2bua@127.0.0.1:5060", call_id="c1", to=ok.headers.get("To"),
                        from_=f"<sip:alice@{world.domain}>")


@pytest_twisted.ensureDeferred
async def test_a_call_whose_media_went_one_way_is_flagged_in_its_record(database, relay):
    world = await make_world(database, relay)
    phone_a, phone_b = Phone(), Phone()
    try:
        _, ok = await answered(world, phone_a.sdp(), phone_b.sdp())
        to_b = parse_sdp(ok.body).media[0].port
        for sequence in range(3):      # bob's phone hears alice and says nothing
            phone_a.rtp.sendto(rtp(sequence), ("127.0.0.1", to_b))
            assert receive(phone_b.rtp)[0] == rtp(sequence)
        hang_up(world, ok)
        [cdr] = await cdrs(world)
        assert (cdr["disposition"], cdr["media_flow"], cdr["one_way_media"]) == ("answered", "caller_only", True)
    finally:
        phone_a.close()
        phone_b.close()


@pytest_twisted.ensureDeferred
async def test_an_offer_the_relay_cannot_read_gets_488_and_takes_nothing(database, relay):
    world = await make_world(database, relay)
    world.phone(world.bob["id"], ("192.0.2.2", 5062), "bob")
    free = relay.pool.available
    await dial(world, "101", body="v=0\r\nthis is not sdp\r\n")
    [final] = [m for m in world.alice.take() if m.status >= 200]
    assert final.status == 488 and final.reason.startswith("Not Acceptable Here: ")
    assert await world.active() == 0 and relay.pool.available == free


@pytest_twisted.ensureDeferred
async def test_the_2xx_is_resent_to_the_caller_until_its_ack(world):
    bob, invite = await ring_bob(world)
    bob.answer(invite, 200, body=SDP_B)
    assert statuses(world.alice.take()) == [100, 200]
    world.clock.advance(T1)
    [again] = world.alice.take()
    assert again.status == 200 and again.body == SDP_B.encode()


@pytest_twisted.ensureDeferred
async def test_a_phone_connected_to_another_node_is_called_through_that_node(world):
    """bob's binding is over TCP and held by node-a: the INVITE goes to node-a with a Route
    whose flow token names bob's connection; the answer's Record-Route becomes the leg's route
    set, so the ACK and BYE go there too (sip/edge.py does node-a's part)."""
    node_a = Peer(world.core, world.wire, ("127.0.0.9", 5060), "node-a")
    edge = EdgeProxy(world.core, "test-node")
    edge.start(b"k" * 32, NODE, {"node-a": node_a.address}.get, lambda: frozenset({"127.0.0.9"}))
    world.b2bua.edge = edge
    world.bindings[world.bob["id"]] = [Binding("sip:bob@192.0.2.2:5062;transport=tcp", "", 1000, "reg", 1, 1e12,
                                               "192.0.2.2:40001", "tcp", node="node-a")]
    await dial(world, "101")
    [invite] = node_a.take()
    assert str(invite.uri) == "sip:bob@192.0.2.2:5062;transport=tcp"
    [route] = parse_addresses(invite.headers.get_all("Route"))
    assert read(b"k" * 32, route.uri.user) == FlowRef("node-a", "tcp", "192.0.2.2", 40001)
    assert (route.uri.host, route.uri.port, route.uri.has_param("lr")) == ("127.0.0.9", 5060, True)
    record_route = f"<sip:{route.uri.user}@192.0.2.99:5061;transport=tcp;lr>, <sip:{route.uri.user}@127.0.0.9:5060;lr>"
    node_a.answer(invite, 200, body=SDP_B, extra=f"Record-Route: {record_route}\r\n")
    [ok] = world.alice.take()[-1:]
    world.alice.request("ACK", "sip:b2bua@127.0.0.1:5060", call_id="c1", to=ok.headers.get("To"),
                        from_=f"<sip:alice@{world.domain}>", cseq=world.alice.cseq)
    world.alice.request(
        "BYE", "sip:b2bua@127.0.0.1:5060", call_id="c1", to=ok.headers.get("To"),
        from_=f"<sip:alice@{world.domain}>")
    ack, bye = node_a.take()
    for request in (ack, bye):
        assert request.headers.get_all("Route") == [f"<sip:{route.uri.user}@127.0.0.9:5060;lr>",
                                                    f"<sip:{route.uri.user}@192.0.2.99:5061;transport=tcp;lr>"]
    assert (ack.method, bye.method) == ("ACK", "BYE")


@pytest_twisted.ensureDeferred
async def test_a_websocket_phone_that_registered_transport_wss_is_called_with_transport_ws(world):
    """RFC 7118 §5.2: the Request-URI towards a WebSocket phone says transport=ws even when
    its Contact said wss (accepted as written); the flow token still names its WSS flow."""
    node_a = Peer(world.core, world.wire, ("127.0.0.9", 5060), "node-a")
    edge = EdgeProxy(world.core, "test-node")
    edge.start(b"k" * 32, NODE, {"node-a": node_a.address}.get, lambda: frozenset({"127.0.0.9"}))
    world.b2bua.edge = edge
    world.bindings[world.bob["id"]] = [Binding("sip:q8x1@df7jal23ls0d.invalid;transport=wss", "", 1000, "reg", 1,
                                               1e12, "192.0.2.2:40001", "wss", node="node-a")]
    await dial(world, "101")
    [invite] = node_a.take()
    assert str(invite.uri) == "sip:q8x1@df7jal23ls0d.invalid;transport=ws"
    [route] = parse_addresses(invite.headers.get_all("Route"))
    assert read(b"k" * 32, route.uri.user) == FlowRef("node-a", "wss", "192.0.2.2", 40001)


# Session timers (RFC 4028) and the B2BUA's own requests.

SDP_B2 = SDP_B.replace("192.0.2.2", "192.0.2.3").replace("5000", "5002")
TIMERS = CallTimers(no_answer=60, progress=2, session_expires=120)


def ack_ok(world, ok):
    world.alice.request("ACK", "sip:b2bua@127.0.0.1:5060", call_id="c1", to=ok.headers.get("To"),
                        from_=f"<sip:alice@{world.domain}>", cseq=world.alice.cseq)


@pytest_twisted.ensureDeferred
async def test_the_b2bua_refreshes_both_sides_itself_and_their_200s_keep_the_call(database):
    world = await make_world(database, timers=TIMERS)
    alice = world.alice
    bob, invite = await ring_bob(world)
    assert invite.headers.get("Session-Expires") == "120" and invite.headers.get("Min-SE") == "90"
    assert "timer" in ",".join(invite.headers.get_all("Supported"))
    bob.answer(invite, 200, body=SDP_B, extra="Session-Expires: 120;refresher=uac\r\nRequire: timer\r\n"
                                              "Allow: INVITE, ACK, BYE, UPDATE\r\n")
    [ok] = [m for m in alice.take() if m.status == 200]
    # alice asked for no timer: the B2BUA refreshes her side, and does not require 'timer' of her.
    assert ok.headers.get("Session-Expires") == "120;refresher=uas"
    assert "timer" not in ",".join(ok.headers.get_all("Require"))
    ack_ok(world, ok)
    bob.take()
    for round_ in range(2):
        world.clock.advance(60)
        [update] = bob.take()
        assert (update.method, update.body, update.call_id) == ("UPDATE", b"", invite.call_id)
        assert update.headers.get("Session-Expires") == "120;refresher=uac"
        [reinvite] = alice.take()      # alice did not say she takes UPDATE: a re-INVITE, same SDP
        assert (reinvite.method, reinvite.call_id, reinvite.body) == ("INVITE", "c1", SDP_B.encode())
        assert reinvite.headers.get("Session-Expires") == "120;refresher=uac"
        bob.answer(update, 200, extra="Session-Expires: 120;refresher=uac\r\nRequire: timer\r\n")
        alice.answer(reinvite, 200, body=SDP_A)
        [ack] = alice.take()
        assert ack.method == "ACK" and ack.cseq.number == reinvite.cseq.number
        assert bob.take() == []     # neither refresh bothered the other side
    world.clock.advance(59)         # 139 s after the answer, well past the first expiry (80 s)
    assert world.records == [] and world.b2bua.sessions
    world.clock.advance(1)
    [update] = bob.take()
    [reinvite] = alice.take()
    bob.answer(update, 481)          # bob's dialog is gone: the call ends on both sides
    assert statuses(alice.take()) == ["BYE"]
    await until(lambda: world.records, "the record")
    assert world.records[0].record.reason == "side b gone: 481 to a refresh"
    assert await world.active() == 0


@pytest_twisted.ensureDeferred
async def test_a_call_without_any_refresh_is_ended_when_its_session_expires(database):
    world = await make_world(database)
    alice = world.alice
    bob, invite = await ring_bob(world)
    bob.answer(invite, 200, body=SDP_B, extra="Session-Expires: 90;refresher=uas\r\nRequire: timer\r\n")
    [ok] = [m for m in alice.take() if m.status == 200]
    assert ok.headers.get("Session-Expires") is None    # alice asked none, and this node asks none itself
    ack_ok(world, ok)
    bob.take()
    world.clock.advance(59.9)
    assert bob.take() == [] and alice.take() == []
    world.clock.advance(0.1)
    assert statuses(alice.take()) == ["BYE"] and statuses(bob.take()) == ["BYE"]


@pytest_twisted.ensureDeferred
async def test_an_invite_asking_for_less_than_min_se_gets_422(database):
    world = await make_world(database, timers=TIMERS)
    world.phone(world.bob["id"], ("192.0.2.2", 5062), "bob")
    await dial(world, "101", extra="Session-Expires: 30\r\nSupported: timer\r\n")
    [final] = [m for m in world.alice.take() if m.status >= 200]
    assert (final.status, final.reason, final.headers.get("Min-SE")) == (422, "Session Interval Too Small", "90")
    assert await world.active() == 0 and world.b2bua.sessions == {}


@pytest_twisted.ensureDeferred
async def test_a_leg_answering_422_is_invited_again_for_its_min_se(database):
    world = await make_world(database, timers=TIMERS)
    alice = world.alice
    bob, invite = await ring_bob(world)
    bob.answer(invite, 422, extra="Min-SE: 300\r\n")
    [again] = [m for m in bob.take() if m.method == "INVITE"]
    assert again.call_id == invite.call_id and again.cseq.number == invite.cseq.number + 1
    assert again.to.tag is None and again.headers.get("Session-Expires") == "300"
    bob.answer(again, 200, body=SDP_B, extra="Session-Expires: 300;refresher=uas\r\nRequire: timer\r\n")
    [ok] = [m for m in alice.take() if m.status == 200]
    assert ok.headers.get("Session-Expires") == "120;refresher=uas"   # alice's side keeps its own
    ack_ok(world, ok)
    [ack2] = bob.take()
    assert ack2.method == "ACK" and ack2.cseq.number == again.cseq.number
    world.clock.advance(60)
    assert statuses(alice.take()) == ["INVITE"] and bob.take() == []   # B refreshes its own side


@pytest_twisted.ensureDeferred
async def test_a_caller_that_refreshes_is_answered_by_the_b2bua_and_its_refreshes_stay_on_its_side(database):
    world = await make_world(database, timers=TIMERS)
    alice = world.alice
    bob = world.phone(world.bob["id"], ("192.0.2.2", 5062), "bob")
    await dial(world, "101", extra="Session-Expires: 150;refresher=uac\r\nSupported: timer\r\n")
    [invite] = bob.take()
    assert invite.headers.get("Session-Expires") == "150"
    bob.answer(invite, 200, body=SDP_B, extra="Session-Expires: 150;refresher=uas\r\nRequire: timer\r\n")
    [ok] = [m for m in alice.take() if m.status == 200]
    assert ok.headers.get("Session-Expires") == "150;refresher=uac" and ok.headers.get("Require") == "timer"
    ack_ok(world, ok)
    bob.take()
    world.clock.advance(70)
    alice.request("UPDATE", "sip:b2bua@127.0.0.1:5060", call_id="c1", to=ok.headers.get("To"),
                  from_=f"<sip:alice@{world.domain}>", extra="Session-Expires: 150;refresher=uac\r\n")
    [refreshed] = alice.take()
    assert refreshed.status == 200 and refreshed.headers.get("Session-Expires") == "150;refresher=uac"
    assert bob.take() == []
    alice.request("UPDATE", "sip:b2bua@127.0.0.1:5060", call_id="c1", to=ok.headers.get("To"),
                  from_=f"<sip:alice@{world.domain}>", extra="Session-Expires: 60\r\n")
    [refused] = alice.take()
    assert (refused.status, refused.headers.get("Min-SE")) == (422, "90")


# Early media from one fork, the answer from another (RFC 3261 §13.2.1, RFC 3960 §3).

@pytest_twisted.ensureDeferred
async def test_without_a_relay_the_caller_is_reinvited_with_the_answering_forks_media(world):
    alice = world.alice
    desk, desk_invite, mobile, mobile_invite = await ring_two(world)
    desk.answer(desk_invite, 183, body=SDP_B)
    mobile.answer(mobile_invite, 200, body=SDP_B2)
    got = alice.take()
    assert statuses(got) == [100, 183, 200] and got[1].body == SDP_B.encode() and got[2].body == SDP_B2.encode()
    ack_ok(world, got[2])
    [reinvite] = alice.take()       # alice took the 183's SDP as the answer: she is told the mobile's
    assert (reinvite.method, reinvite.call_id, reinvite.body) == ("INVITE", "c1", SDP_B2.encode())
    assert reinvite.cseq.number > 0 and reinvite.to.tag == alice.tag
    assert statuses(mobile.take()) == ["ACK"]
    alice.answer(reinvite, 200, body=SDP_A)
    [ack] = alice.take()
    assert ack.method == "ACK" and ack.cseq.number == reinvite.cseq.number
    assert mobile.take() == []      # the mobile already has its answer: alice's first offer
    alice.request("BYE", "sip:b2bua@127.0.0.1:5060", call_id="c1", to=got[2].headers.get("To"),
                  from_=f"<sip:alice@{world.domain}>")
    assert statuses(mobile.take()) == ["BYE"]


@pytest_twisted.ensureDeferred
async def test_with_a_relay_the_answering_fork_is_anchored_and_the_caller_needs_nothing(database, relay, phones):
    world = await make_world(database, relay)
    alice, free = world.alice, relay.pool.available
    phone_a, phone_desk, phone_mobile = phones
    desk, desk_invite, mobile, mobile_invite = await ring_two(world, phone_a.sdp().decode())
    desk.answer(desk_invite, 183, body=phone_desk.sdp().decode())
    await until(lambda: any(m.status == 183 for m in world.wire.sent.get(alice.address, [])), "the 183")
    mobile.answer(mobile_invite, 200, body=phone_mobile.sdp().decode())
    await until(lambda: any(m.status == 200 for m in world.wire.sent.get(alice.address, [])), "the 200")
    got = alice.take()
    early, ok = [m for m in got if m.status == 183][0], [m for m in got if m.status == 200][0]
    to_b = parse_sdp(ok.body).media[0].port
    assert parse_sdp(early.body).media[0].port == to_b
    phone_a.rtp.sendto(rtp(1), ("127.0.0.1", to_b))
    assert receive(phone_mobile.rtp)[0] == rtp(1)      # the relay follows the answering fork
    assert receive(phone_desk.rtp, timeout=0.2) is None
    ack_ok(world, ok)
    await until(lambda: world.wire.sent.get(mobile.address), "the ACK")
    assert alice.take() == []       # the same description: no re-INVITE
    alice.request("BYE", "sip:b2bua@127.0.0.1:5060", call_id="c1", to=ok.headers.get("To"),
                  from_=f"<sip:alice@{world.domain}>")
    await world.b2bua.settled()
    assert relay.pool.available == free


async def three_carriers(world, *, limits):
    """The tree's carrier (gateway 127.0.0.2) and two more, each with a gateway and a dearer
    card (127.0.0.3, then 127.0.0.4), tried in that order; `limits` are the three carriers'
    max_concurrent_calls."""
    isp_id, tree = world.tree.isp["id"], world.tree

    async def work(tx):
        await ledger.set_isp_billing(tx, isp_id, allow_loss=True)
        second_gateway = await tx.fetch_value("select id from gateways where host = '127.0.0.3'")
        await carriers.update_gateway(tx, isp_id, second_gateway, enabled=False)
        await carriers.update_carrier(tx, isp_id, tree.carrier["id"], max_concurrent_calls=limits[0])
        ids = [tree.carrier["id"]]
        for n, (host, cost, limit) in enumerate((("127.0.0.3", "0.0120", limits[1]), ("127.0.0.4", "0.0150", limits[2]))):
            carrier = await carriers.create_carrier(tx, isp_id, name=f"Carrier {n + 2}", max_concurrent_calls=limit)
            await carriers.create_gateway(tx, isp_id, carrier["id"], host=host, port=5070, priority=20 + n)
            deck = await ratedecks.create_deck(tx, isp_id, name=f"Card {n + 2}", kind="carrier",
                                               carrier_id=carrier["id"])
            await publish_csv(tx, isp_id, deck["id"], "prefix,description,cost,connection_fee,increment\n"
                                                      f"1,North America,{cost},0,60/60\n")
            ids.append(carrier["id"])
        return ids
    ids = await world.database.transact(work)
    return ids, (*world.gateways(), Peer(world.core, world.wire, ("127.0.0.4", 5070), "gw3"))


async def counted_against(world):
    return [row["carrier_id"] for row in await world.database.fetch("select carrier_id from active_calls")]


@pytest_twisted.ensureDeferred
async def test_a_call_failing_over_to_another_carrier_is_counted_against_that_carrier(world):
    ids, (first, second, third) = await three_carriers(world, limits=(None, 1, None))
    await dial(world, "2125550100")
    [invite] = first.take()
    assert await counted_against(world) == [ids[0]]
    first.answer(invite, 503)
    await until(lambda: second.wire.sent.get(second.address), "the second carrier's INVITE")
    [invite2] = second.take()
    assert str(invite2.uri) == "sip:+12125550100@127.0.0.3:5070"
    assert await counted_against(world) == [ids[1]]
    gateway = await world.database.fetch("select gateway_id from active_calls")
    assert gateway == await world.database.fetch("select id as gateway_id from gateways where host = '127.0.0.3'"
                                                 " and enabled")
    second.answer(invite2, 200, body=SDP_B)
    assert statuses(world.alice.take())[-1] == 200
    await dial(world, "2125550100", call_id="c2")     # the first carrier no longer counts the first call
    [invite_c2] = [m for m in first.take() if getattr(m, "method", None) == "INVITE"]
    assert invite_c2.call_id != invite.call_id
    assert sorted(await counted_against(world)) == sorted(ids[:2])


@pytest_twisted.ensureDeferred
async def test_a_full_carrier_is_skipped_as_a_503_and_the_next_one_tried(world):
    ids, (first, second, third) = await three_carriers(world, limits=(None, 0, None))
    await dial(world, "2125550100")
    [invite] = first.take()
    first.answer(invite, 500)
    await until(lambda: third.wire.sent.get(third.address), "the third carrier's INVITE")
    assert second.take() == []
    [invite3] = third.take()
    assert await counted_against(world) == [ids[2]]
    third.answer(invite3, 486)
    assert statuses(world.alice.take())[-1] == 486
    await until(lambda: world.records, "the record")
    record = world.records[0].record
    assert [a.status for a in record.attempts] == [500, 503, 486]
    assert record.attempts[1].target.gateway.carrier_id == ids[1]
    assert await world.active() == 0


@pytest_twisted.ensureDeferred
async def test_when_the_first_carrier_is_full_the_call_starts_at_the_next_and_none_full_is_503(world):
    ids, (first, second, third) = await three_carriers(world, limits=(0, None, 0))
    await dial(world, "2125550100")
    assert first.take() == []
    [invite2] = second.take()
    assert await counted_against(world) == [ids[1]]
    second.answer(invite2, 404)
    await until(lambda: world.records, "the record")
    assert statuses(second.take()) == ["ACK"]
    await world.database.transact(carriers.update_carrier, world.tree.isp["id"], ids[1], max_concurrent_calls=0)
    await dial(world, "2125550100", call_id="c2")
    [refusal] = [m for m in world.alice.take() if m.status >= 200 and m.call_id == "c2"]
    assert refusal.status == 503 and "carrier max_concurrent_calls of 0 reached" in refusal.reason
    assert await world.active() == 0 and first.take() == second.take() == third.take() == []


@pytest_twisted.ensureDeferred
async def test_a_call_whose_admission_is_not_committed_is_ended_and_leaves_nothing(world):
    """The callee's INVITE goes as soon as the admission is decided, before its COMMIT;
    should the COMMIT fail, the call ends: 503 to the caller, CANCEL to the gateway once
    it has spoken, and no row, hold or record of it stays."""
    await world.database.transact(lambda tx: tx.execute(
        "create function refuse_at_commit() returns trigger language plpgsql as"
        " $$ begin raise exception 'the disk is full'; end $$;"
        " create constraint trigger refuse_at_commit after insert on active_calls"
        " deferrable initially deferred for each row execute function refuse_at_commit()"))
    alice = world.alice
    first, _ = world.gateways()
    await dial(world, "2125550100")
    [invite] = first.take()
    await until(lambda: any(m.status == 503 for m in alice.wire.sent.get(alice.address, [])), "the 503")
    [refusal] = [m for m in alice.take() if m.status >= 200]
    assert (refusal.status, refusal.reason) == (503, "Service Unavailable: the call's admission could not be written")
    first.answer(invite, 180)
    assert statuses(first.take())[-1] == "CANCEL"
    await world.b2bua.settled()
    for table in ("active_calls", "call_reservations", "cdrs"):
        assert await world.database.fetch(f"select id from {table}") == [], table


@pytest_twisted.ensureDeferred
async def test_a_call_keeps_the_flows_it_runs_over_from_being_closed_as_idle(world):
    """What sip/lifetime.py asks before closing a quiet connection."""
    bob = world.phone(world.bob["id"], ("192.0.2.2", 5062), "bob")
    await dial(world, "101")
    [invite] = bob.take()
    bob.answer(invite, 200, body=SDP_B)
    [session] = world.b2bua.sessions.values()
    a_flow, b_flow = session.a_flow, session.legs[0].flow
    assert world.b2bua.carries(a_flow) and world.b2bua.carries(b_flow)
    assert not world.b2bua.carries(Flow("tcp", ("192.0.2.99", 5060), NODE, lambda data: None))
    bob.in_dialog("BYE", invite)
    await until(lambda: world.records, "the record")
    assert world.b2bua.carries(a_flow), "an ended call lingers for retransmissions"
    world.clock.advance(LINGER)
    assert not world.b2bua.carries(a_flow) and not world.b2bua.carries(b_flow)
    await world.b2bua.settled()


@pytest_twisted.ensureDeferred
async def test_a_refused_call_leaves_a_record_and_a_log_line_one_that_named_nobody_only_a_count(world):
    lines = []
    globalLogPublisher.addObserver(lines.append)
    try:
        await dial(world, "101")                                      # bob has no phone: 480
        carrier = Peer(world.core, world.wire, ("127.0.0.2", 5070), "carrier")
        carrier.request("INVITE", "sip:15550199999@127.0.0.1", call_id="t404", to="<sip:15550199999@127.0.0.1>",
                        from_="<sip:+442071234567@127.0.0.2>", body=SDP_A)
        stranger = Peer(world.core, world.wire, ("198.51.100.9", 5060), "stranger")
        for n in range(3):
            stranger.request("INVITE", "sip:101@calls.example.net", call_id=f"flood{n}",
                             to="<sip:101@calls.example.net>", from_="<sip:x@nowhere.example>", body=SDP_A)
        await until(lambda: len([m for m in stranger.take() if m.status >= 200]) == 3 or
                    world.b2bua.refusals.unidentified == 3, "the stranger's refusals")
        await until(lambda: any(m.status == 404 for m in carrier.take()), "the carrier's 404")
    finally:
        globalLogPublisher.removeObserver(lines.append)
    rows = await cdrs(world)
    tree = world.tree
    assert [(r["a_call_id"], r["disposition"], r["sip_code"], r["direction"], r["customer_id"], r["tenant_id"],
             r["subscriber_id"], r["carrier_id"], r["talk_ms"], r["price"]) for r in rows] == [
        ("c1", "refused", 480, "internal", tree.customer["id"], tree.tenant["id"], tree.subscriber["id"], None, 0, 0),
        ("t404", "refused", 404, "inbound", None, None, None, tree.carrier["id"], 0, 0)]
    assert "no registered contact" in rows[0]["reason"] and rows[1]["reason"] == "Not Found: no such number here"
    assert rows[0]["callee_dialled"] == "101" and rows[0]["caller_e164"] == "+15550100100"
    refused = [event for event in lines if event.get("log_namespace") == "wevoip.calls"
               and "refused {status}" in event.get("log_format", "")]
    assert [(e["call_id"], e["status"], e["isp"], e["tenant"]) for e in refused] == [
        ("c1", 480, tree.isp["id"], tree.tenant["id"]), ("t404", 404, tree.isp["id"], None)]
    assert world.b2bua.refusals.unidentified == 3       # counted, neither recorded nor logged one by one
    assert not [e for e in refused if e["call_id"].startswith("flood")]
    assert await world.active() == 0


@pytest_twisted.ensureDeferred
async def test_a_call_the_fraud_guard_refuses_leaves_the_lock_its_mail_webhook_and_audit(world):
    """The refusal rolls the admission back; the lock and what tells of it are written apart."""
    isp_id, customer_id = world.tree.isp["id"], world.tree.customer["id"]
    await world.database.fetch("update customers set email = 'payer@calls.example' where id = %s returning id",
                               (customer_id,))
    await world.database.fetch("update isps set contact_email = 'ops@calls.example' where id = %s returning id",
                               (isp_id,))
    first, _ = world.gateways()
    await dial(world, "2125550100")                  # a call in progress holds money
    [invite] = first.take()
    first.answer(invite, 200, body=SDP_B)
    world.alice.take()
    await world.database.transact(lambda tx: ledger.set_customer_billing(tx, isp_id, customer_id,
                                                                         daily_spend_cap="0.01"))
    await dial(world, "2125550100", call_id="c2")
    [refusal] = [m for m in world.alice.take() if m.status >= 200]
    assert refusal.status == 403 and "the customer's daily spend cap of 0.01" in refusal.reason
    await world.b2bua.settled()
    customer = (await world.database.fetch("select * from customers where id = %s", (customer_id,)))[0]
    assert customer["calls_locked_at"] is not None and "daily spend cap" in customer["calls_lock_reason"]
    mail = await world.database.fetch("select payload from outbox where kind = 'mail'"
                                      " and dedupe_key like 'calls-locked:%%'")
    assert sorted(row["payload"]["to"] for row in mail) == ["ops@calls.example", "payer@calls.example"]
    hooks = await world.database.fetch("select payload from outbox where kind = 'webhook'"
                                       " and dedupe_key like 'calls-locked:%%'")
    assert [(hook["payload"]["event"], hook["payload"]["data"]["customer_id"]) for hook in hooks] == \
        [("account.locked", customer_id)]
    trail = await world.database.fetch("select actor, action, target from audit_trail where isp_id = %s", (isp_id,))
    assert [(row["actor"], row["action"]) for row in trail] == [("fraud guard", "calls.locked")]
    assert trail[0]["target"].startswith(f"customer {customer_id}: ")
    assert await world.database.fetch("select id from active_calls where call_id = 'c2'") == []

    await dial(world, "2125550100", call_id="c3")    # locked now: refused at once, nothing written again
    [refusal] = [m for m in world.alice.take() if m.status >= 200]
    assert refusal.status == 403 and "the account is locked" in refusal.reason
    await world.b2bua.settled()
    assert len(await world.database.fetch("select id from outbox where dedupe_key like 'calls-locked:%%'")) == 3
    assert len(await world.database.fetch("select id from audit_trail where isp_id = %s", (isp_id,))) == 1
