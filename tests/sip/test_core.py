"""The SIP core and transaction layer, fed bytes through in-memory flows, timers on a Clock."""

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher

from wevoip.sip.core import SipCore
from wevoip.sip.flow import Flow, FlowTable
from wevoip.sip.message import Headers, Request, Response, parse
from wevoip.sip.transaction import T1
from wevoip.sip.transactions import TransactionTimeout
from wevoip.sip.uri import parse_uri
from wevoip.store.errors import StoreUnavailable


def request_bytes(method="OPTIONS", branch="z9hG4bKabc", extra="", cseq=1, to_tag="", via_host="10.0.0.5:5060",
                  call_id="call-1", body=""):
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    return (f"{method} sip:bob@example.com SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {via_host};branch={branch};rport\r\n"
            f"From: <sip:alice@example.com>;tag=a1\r\nTo: {to}\r\nCall-ID: {call_id}\r\n"
            f"CSeq: {cseq} {method}\r\n"
            f"Max-Forwards: 70\r\n{extra}Content-Length: {len(body)}\r\n\r\n{body}").encode()


class Peer:
    def __init__(self, transport="udp"):
        self.sent = []
        self.flow = Flow(transport, ("192.0.2.1", 40000), ("127.0.0.1", 5060), self.sent.append)

    def responses(self):
        return [parse(data) for data in self.sent]

    def statuses(self):
        return [response.status for response in self.responses()]


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def core(clock):
    return SipCore(clock, FlowTable())


def test_options_gets_200_with_capabilities_and_the_source_stamped_on_the_via(core):
    peer = Peer()
    core.receive(request_bytes(), peer.flow)
    response, = peer.responses()
    assert (response.status, response.reason) == (200, "OK")
    assert response.headers.get("Allow") == "OPTIONS"
    assert response.headers.get("Accept") == "application/sdp" and "Supported" in response.headers
    assert response.to.tag and response.call_id == "call-1"
    assert response.top_via.received == "192.0.2.1" and response.top_via.rport == 40000
    core.register("INVITE", lambda incoming: None)
    core.receive(request_bytes(branch="z9hG4bKother"), peer.flow)
    assert peer.responses()[1].headers.get("Allow") == "ACK, CANCEL, INVITE, OPTIONS"


def test_a_malformed_request_with_enough_headers_gets_400_with_the_reason(core):
    peer = Peer()
    core.receive(request_bytes(extra="Max-Forwards: lots\r\n"), peer.flow)
    core.receive(request_bytes(method="ACK", extra="Max-Forwards: lots\r\n"), peer.flow)
    core.receive(b"GARBAGE\r\n\r\n", peer.flow)
    core.receive(b"\xff\xfe INVITE", peer.flow)
    response, = peer.responses()
    assert (response.status, response.reason) == (400, "More than one Max-Forwards header")
    assert core.stats["malformed"] == 4 and core.stats["dropped_malformed"] == 3


def test_headers_parsed_late_still_get_400_with_the_reason(core):
    peer = Peer()
    core.register("MESSAGE", lambda incoming: incoming.respond(200, headers=(("X-User", incoming.request.uri.user),)))
    core.receive(request_bytes("MESSAGE").replace(b"MESSAGE sip:bob@", b"MESSAGE mailto:bob@"), peer.flow)
    core.receive(request_bytes("MESSAGE", branch="z9hG4bK2", extra="To: <sip:x@y>\r\n"), peer.flow)
    assert [(r.status, r.reason) for r in peer.responses()] == [
        (416, "Unsupported URI Scheme: mailto"), (400, "More than one To header")]


def test_the_gate_sees_every_message_and_malformed_input_first(core):
    peer = Peer()
    seen = []

    class Gate:
        def admit(self, message, flow):
            seen.append(type(message).__name__)
            return False

    core.gate = Gate()
    core.receive(request_bytes(), peer.flow)
    core.receive(request_bytes(extra="CSeq: 2 OPTIONS\r\n"), peer.flow)
    assert peer.sent == [] and seen == ["Request", "ParseError"] and core.stats["gated"] == 2


def test_unserved_known_methods_get_405_with_allow_unknown_ones_501_and_ack_nothing(core):
    peer = Peer()
    core.receive(request_bytes("REGISTER"), peer.flow)
    core.receive(request_bytes("FROBNICATE", branch="z9hG4bK2"), peer.flow)
    core.receive(request_bytes("ACK", branch="z9hG4bK3"), peer.flow)
    first, second = peer.responses()
    assert first.status == 405 and first.headers.get("Allow") == "OPTIONS"
    assert second.status == 501


def test_a_handler_answers_once_and_retransmissions_get_the_same_response(core, clock):
    peer, calls = Peer(), []

    def register(incoming):
        calls.append(incoming.request)
        incoming.respond(200, headers=(("Contact", "<sip:alice@192.0.2.1>;expires=60"),))

    core.register("REGISTER", register)
    core.receive(request_bytes("REGISTER"), peer.flow)
    core.receive(request_bytes("REGISTER"), peer.flow)
    assert len(calls) == 1 and peer.sent[0] == peer.sent[1] and core.stats["retransmissions"] == 1
    assert peer.responses()[0].headers.get("Contact") == "<sip:alice@192.0.2.1>;expires=60"
    clock.advance(64 * T1 + 1)
    core.receive(request_bytes("REGISTER"), peer.flow)
    assert len(calls) == 2, "after Timer J the transaction is gone and the request is new"


def test_rfc2543_requests_without_the_magic_cookie_still_match_their_transaction(core):
    peer, calls = Peer(), []
    core.register("MESSAGE", lambda incoming: (calls.append(1), incoming.respond(202)))
    core.receive(request_bytes("MESSAGE", branch="old-style-1"), peer.flow)
    core.receive(request_bytes("MESSAGE", branch="old-style-1"), peer.flow)
    assert calls == [1] and peer.statuses() == [202, 202]


def test_max_forwards_zero_is_483_except_for_options(core):
    peer = Peer()
    core.register("MESSAGE", lambda incoming: incoming.respond(200))
    core.receive(request_bytes("MESSAGE").replace(b"Max-Forwards: 70", b"Max-Forwards: 0"), peer.flow)
    core.receive(request_bytes("OPTIONS", branch="z9hG4bK9").replace(b"Max-Forwards: 70", b"Max-Forwards: 0"),
                 peer.flow)
    assert peer.statuses() == [483, 200]


def test_loops_are_482_our_own_via_or_a_merged_request(core):
    peer = Peer()
    core.register("MESSAGE", lambda incoming: None)
    ours = f"Via: SIP/2.0/UDP 127.0.0.1:5060;branch={core.new_branch()}\r\n"
    core.receive(request_bytes("MESSAGE", branch="z9hG4bK1", extra=ours).replace(b"Max-Forwards: 70\r\n", b"")
                 .replace(b"Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1;rport\r\n", b"")
                 .replace(b"MESSAGE sip:bob@example.com SIP/2.0\r\n",
                          b"MESSAGE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK1\r\n"),
                 peer.flow)
    core.receive(request_bytes("MESSAGE", branch="z9hG4bKfirst", call_id="merge"), peer.flow)
    core.receive(request_bytes("MESSAGE", branch="z9hG4bKsecond", call_id="merge", via_host="10.9.9.9"), peer.flow)
    assert peer.statuses() == [482, 482]


def test_invite_gets_100_then_the_final_is_retransmitted_until_ack_which_is_absorbed(core, clock):
    peer, acks = Peer(), []
    core.register("INVITE", lambda incoming: incoming.respond(486))
    core.register("ACK", lambda incoming: acks.append(incoming.request))
    core.receive(request_bytes("INVITE"), peer.flow)
    assert peer.statuses() == [100, 486]
    clock.advance(T1)
    clock.advance(2 * T1)
    assert peer.statuses() == [100, 486, 486, 486]
    ack = request_bytes("ACK", extra="").replace(b"To: <sip:bob@example.com>",
                                                 f"To: {peer.responses()[1].headers.get('To')}".encode())
    core.receive(ack, peer.flow)
    clock.advance(10)
    assert len(peer.sent) == 4 and acks == []
    core.receive(request_bytes("ACK", branch="z9hG4bKfor2xx", to_tag="t"), peer.flow)
    assert len(acks) == 1, "an ACK outside any transaction (for a 2xx) goes to the ACK handler"


def test_cancel_answers_200_and_the_invite_487(core):
    peer, held = Peer(), []
    core.register("INVITE", held.append)
    core.receive(request_bytes("INVITE"), peer.flow)
    core.receive(request_bytes("CANCEL"), peer.flow)
    assert peer.statuses() == [100, 200, 487]
    assert peer.responses()[1].cseq.method == "CANCEL" and peer.responses()[2].cseq.method == "INVITE"
    assert held[0].cancelled and held[0].final_sent
    core.receive(request_bytes("CANCEL", branch="z9hG4bKnothing"), peer.flow)
    assert peer.statuses()[-1] == 481


def test_a_failing_handler_sync_or_async_becomes_500(core):
    peer = Peer()

    def broken(incoming):
        raise RuntimeError("bug")

    async def broken_later(incoming):
        await defer.succeed(None)
        raise RuntimeError("bug")

    core.register("MESSAGE", broken)
    core.register("INFO", broken_later)
    core.receive(request_bytes("MESSAGE"), peer.flow)
    core.receive(request_bytes("INFO", branch="z9hG4bK2"), peer.flow)
    assert peer.statuses() == [500, 500] and core.stats["handler_errors"] == 2


def test_client_transactions_deliver_finals_ack_failures_and_time_out(core, clock):
    peer = Peer()
    request = Request("INVITE", parse_uri("sip:bob@192.0.2.1"), Headers([
        ("From", "<sip:a@example.com>;tag=x"), ("To", "<sip:bob@example.com>"), ("Call-ID", "c1"),
        ("CSeq", "1 INVITE")]))
    provisional, finals = [], []
    core.request(request, peer.flow, on_response=provisional.append).addCallback(finals.append)
    sent = parse(peer.sent[0])
    assert sent.top_via.branch.startswith(core.branch_prefix) and sent.max_forwards == 70
    busy = Response(486, "Busy Here", Headers([*sent.headers, ("To", "<sip:bob@example.com>;tag=b")]))
    busy.headers.remove("To")
    busy.headers.add("To", "<sip:bob@example.com>;tag=b")
    ringing = Response(180, "Ringing", busy.headers.copy())
    core.receive(bytes(ringing), peer.flow)
    core.receive(bytes(busy), peer.flow)
    core.receive(bytes(busy), peer.flow)
    assert [r.status for r in provisional] == [180] and [r.status for r in finals] == [486]
    acks = [parse(data) for data in peer.sent[1:]]
    assert [(a.method, a.top_via.branch, a.to.tag) for a in acks] == [("ACK", sent.top_via.branch, "b")] * 2

    options = Request("OPTIONS", parse_uri("sip:bob@192.0.2.1"), Headers([
        ("From", "<sip:a@example.com>;tag=x"), ("To", "<sip:bob@example.com>"), ("Call-ID", "c2"),
        ("CSeq", "1 OPTIONS")]))
    failures = []
    core.request(options, peer.flow).addErrback(failures.append)
    clock.advance(64 * T1 + 1)
    assert failures and failures[0].check(TransactionTimeout)
    assert core.transactions.clients == {} or all(t.request.method == "INVITE" for t in core.transactions.clients.values())


def test_our_via_names_the_advertised_host_or_the_routed_source_for_wildcard_listeners(clock):
    sent = []
    wildcard = Flow("udp", ("127.0.0.1", 5070), ("0.0.0.0", 5060), sent.append)
    for advertise, expected in (("", "127.0.0.1:5060"), ("sip.example.net", "sip.example.net:5060")):
        core = SipCore(clock, FlowTable(), advertise=advertise)
        core.request(Request("OPTIONS", "sip:x@127.0.0.1", Headers([
            ("From", "<sip:a@example.com>;tag=x"), ("To", "<sip:x@127.0.0.1>"), ("Call-ID", advertise or "c"),
            ("CSeq", "1 OPTIONS")])), wildcard)
        via = parse(sent[-1]).top_via
        assert f"{via.host}:{via.port}" == expected and via.wants_rport
    v6 = Flow("udp", ("::1", 5070), ("::", 5060), sent.append)
    assert SipCore(clock, FlowTable()).sent_by(v6) == "[::1]:5060"


def test_a_response_whose_connection_closed_goes_through_the_peers_newer_connection(core):
    old, new, held = Peer("tcp"), Peer("tcp"), []
    core.flows.add(old.flow)
    core.register("MESSAGE", held.append)
    core.receive(request_bytes("MESSAGE"), old.flow)
    old.flow.closed = True
    core.flows.remove(old.flow)
    core.flows.add(new.flow)
    held[0].respond(200)
    assert old.sent == [] and new.statuses() == [200]
    new.flow.closed = True
    core.receive(request_bytes("MESSAGE", branch="z9hG4bKlost", call_id="other"), new.flow)
    held[1].respond(200)
    assert core.stats["responses_undeliverable"] == 1


def test_a_handler_meeting_a_lost_database_answers_503_with_retry_after_and_logs_nothing(core):
    peer, logged = Peer(), []

    async def needs_the_store(incoming):
        await defer.succeed(None)
        raise StoreUnavailable("server closed the connection unexpectedly", retry_after=7)

    core.register("MESSAGE", needs_the_store)
    observer = logged.append
    globalLogPublisher.addObserver(observer)
    try:
        core.receive(request_bytes("MESSAGE"), peer.flow)
    finally:
        globalLogPublisher.removeObserver(observer)
    [response] = peer.responses()
    assert response.status == 503 and response.headers.get("Retry-After") == "7"
    assert "database unavailable" in response.reason
    assert core.stats["store_unavailable"] == 1 and core.stats["handler_errors"] == 0
    assert not [event for event in logged if "log_failure" in event]


def test_require_and_proxy_require_name_only_what_the_core_supports(core):
    peer = Peer()
    reached = []
    core.register("INVITE", reached.append)
    core.supported.extend(["100rel", "timer"])
    core.receive(request_bytes("INVITE", branch="z9hG4bKr1", extra="Require: 100rel, Timer\r\n"), peer.flow)
    assert len(reached) == 1 and peer.statuses() == [100]
    core.receive(request_bytes("INVITE", branch="z9hG4bKr2", call_id="call-2",
                               extra="Require: timer\r\nProxy-Require: sec-agree, precondition\r\n"), peer.flow)
    core.receive(request_bytes("OPTIONS", branch="z9hG4bKr3", extra="Require: gruu\r\n"), peer.flow)
    refused = [response for response in peer.responses() if response.status == 420]
    assert [response.headers.get("Unsupported") for response in refused] == ["sec-agree, precondition", "gruu"]
    assert len(reached) == 1


def test_request_uri_schemes_other_than_sip_sips_and_tel_get_416(core):
    peer = Peer()
    core.register("MESSAGE", lambda incoming: incoming.respond(200))
    for branch, uri in (("z9hG4bKs1", b"im:bob@example.com"), ("z9hG4bKs2", b"tel:+4930123"),
                        ("z9hG4bKs3", b"sips:bob@example.com")):
        core.receive(request_bytes("MESSAGE", branch=branch, call_id=branch).replace(
            b"sip:bob@example.com SIP", uri + b" SIP"), peer.flow)
    assert [(r.status, r.reason) for r in peer.responses()] == [
        (416, "Unsupported URI Scheme: im"), (200, "OK"), (200, "OK")]
