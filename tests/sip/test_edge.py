"""The edge proxy between nodes: flow tokens, the forwarding decision (sans-IO), and the
proxy on a real SIP core with in-memory flows: node B's INVITE reaches the phone's
connection on node A, the answer goes back, in-dialog requests pass both ways, and a
stranger presenting a token gets 403 with nothing forwarded."""

import pytest
from twisted.internet.task import Clock

from wevoip.sip.core import SipCore
from wevoip.sip.edge import PREFIX, EdgeProxy, FlowRef, Forward, Refuse, decide, mint, read
from wevoip.sip.flow import Flow, FlowTable
from wevoip.sip.headers import parse_addresses
from wevoip.sip.message import parse, serialise
from wevoip.sip.registrar import Binding

SECRET = b"s" * 32
PHONE = FlowRef("node-a", "tcp", "192.0.2.7", 49152)
NODE_B = ("127.0.0.2", 5070)          # where node B's requests come from, and its Contact
NODES = {"node-a": ("127.0.0.1", 5060), "node-b": NODE_B}


def invite(route: str, *, method="INVITE", to_tag="", branch="z9hG4bKnodeb1", uri="sip:bob@192.0.2.7:5060;transport=tcp",
           forwards=70, via="SIP/2.0/UDP 127.0.0.2:5070", cseq=1):
    to = "<sip:101@acme.example>" + (f";tag={to_tag}" if to_tag else "")
    routes = f"Route: {route}\r\n" if route else ""
    return (f"{method} {uri} SIP/2.0\r\nVia: {via};branch={branch};rport\r\n{routes}"
            f"From: <sip:alice@acme.example>;tag=b1\r\nTo: {to}\r\nCall-ID: leg-1@127.0.0.2\r\n"
            f"CSeq: {cseq} {method}\r\nContact: <sip:b2bua@127.0.0.2:5070>\r\nMax-Forwards: {forwards}\r\n"
            f"Content-Length: 0\r\n\r\n").encode()


def token_route(ref=PHONE, host="127.0.0.1:5060", secret=SECRET):
    return f"<sip:{mint(secret, ref)}@{host};lr>"


# -- tokens ------------------------------------------------------------------------

def test_a_token_names_its_flow_and_only_the_shared_secret_makes_one():
    token = mint(SECRET, PHONE)
    assert token.startswith(PREFIX) and all(c.isalnum() or c in "-_." for c in token)
    assert read(SECRET, token) == PHONE
    assert read(b"t" * 32, token) is None                       # another platform's secret
    body, _, mac = token[len(PREFIX):].partition(".")
    forged = mint(SECRET, FlowRef("node-a", "tcp", "198.51.100.1", 5060))
    assert read(SECRET, f"{PREFIX}{forged[len(PREFIX):].partition('.')[0]}.{mac}") is None   # body swapped
    assert read(SECRET, "wvf1.@@@.###") is None and read(SECRET, "alice") is None and read(SECRET, PREFIX) is None


def test_an_ipv6_flow_survives_the_token():
    ref = FlowRef("node-a", "tls", "2001:db8::7", 5061)
    assert read(SECRET, mint(SECRET, ref)) == ref


# -- the decision ------------------------------------------------------------------

def decision(data: bytes, arrived=("udp", *NODE_B)):
    return decide(SECRET, "node-a", parse(data), arrived, frozenset(host for host, _ in NODES.values()))


def test_a_request_without_a_flow_token_is_not_the_edges():
    assert decision(invite("")) is None
    assert decision(invite("<sip:proxy.example;lr>")) is None


def test_a_nodes_invite_with_a_token_goes_to_the_phones_flow_with_record_route():
    forward = decision(invite(token_route() + ", <sip:next.example;lr>"))
    assert isinstance(forward, Forward)
    assert (forward.ref, forward.record_route) == (PHONE, True)
    assert forward.request.headers.get_all("Route") == ["<sip:next.example;lr>"]   # ours popped, the rest kept
    assert forward.request.max_forwards == 69


def test_an_in_dialog_request_from_a_node_is_not_record_routed():
    forward = decision(invite(token_route(), method="BYE", to_tag="p1"))
    assert isinstance(forward, Forward) and forward.ref == PHONE and not forward.record_route


def test_the_phones_own_request_goes_on_to_the_node_its_request_uri_names():
    bye = invite(f"{token_route(host='192.0.2.99:5060;transport=tcp')}, {token_route()}", method="BYE",
                 to_tag="b1", uri="sip:b2bua@127.0.0.2:5070", via="SIP/2.0/TCP 192.0.2.7:5060")
    forward = decision(bye, arrived=PHONE.key)
    assert isinstance(forward, Forward)
    assert (forward.ref, forward.host, forward.port) == (None, "127.0.0.2", 5070)
    assert forward.request.headers.get_all("Route") == []


def test_the_phone_cannot_use_the_edge_to_reach_anything_but_a_node():
    bye = invite(token_route(), method="BYE", to_tag="b1", uri="sip:victim@203.0.113.9", via="SIP/2.0/TCP 192.0.2.7:5060")
    assert decision(bye, arrived=PHONE.key) == Refuse(403, "Forbidden: a flow's requests go only to WeVoIP nodes")


def test_a_stranger_presenting_a_token_is_refused():
    assert decision(invite(token_route()), arrived=("udp", "203.0.113.5", 5060)) == \
        Refuse(403, "Forbidden: flow tokens are for WeVoIP nodes only")


def test_a_forged_token_or_another_nodes_is_refused():
    assert decision(invite(token_route(secret=b"x" * 32))) == Refuse(403, "Forbidden: the flow token is not valid")
    other = FlowRef("node-c", "tcp", "192.0.2.7", 49152)
    assert decision(invite(token_route(other))) == Refuse(404, "Not Found: the flow is held by node node-c")
    two = f"{token_route()}, {token_route(FlowRef('node-a', 'tcp', '192.0.2.8', 1))}"
    assert decision(invite(two)) == Refuse(403, "Forbidden: the route names two flows")


def test_max_forwards_runs_out_at_the_edge():
    assert decision(invite(token_route(), forwards=0)) == Refuse(483, "Too Many Hops")


# -- the proxy on a real core ----------------------------------------------------------

class Wire:
    """Datagrams the node's UDP socket sent, by destination."""

    def __init__(self):
        self.sent = []

    def write(self, data, address):
        self.sent.append((address, parse(data)))


@pytest.fixture
def node_a():
    flows = FlowTable()
    wire = Wire()
    flows.add_datagram_socket(4, ("127.0.0.1", 5060), wire.write)
    core = SipCore(Clock(), flows)
    phone_sent = []
    phone = Flow("tcp", (PHONE.host, PHONE.port), ("127.0.0.1", 5061), phone_sent.append)
    flows.add(phone)
    edge = EdgeProxy(core, "node-a")
    edge.start(SECRET, NODES["node-a"], NODES.get, lambda: frozenset(host for host, _ in NODES.values()))
    return core, edge, wire, phone, phone_sent


def from_node_b(core, data):
    sent = []
    core.receive(data, Flow("udp", NODE_B, ("127.0.0.1", 5060), sent.append))
    return [parse(message) for message in sent]


def test_a_call_passes_through_the_edge_both_ways(node_a):
    core, edge, wire, phone, phone_sent = node_a
    assert from_node_b(core, invite(token_route())) == []       # no 100 of our own: stateless
    forwarded = parse(phone_sent[0])
    assert forwarded.method == "INVITE" and str(forwarded.uri) == "sip:bob@192.0.2.7:5060;transport=tcp"
    vias = forwarded.via
    assert vias[0].transport == "TCP" and vias[0].host == "127.0.0.1" and vias[0].port == 5061
    assert vias[1].received == "127.0.0.2" and vias[1].rport == 5070
    record_route = [address.uri for address in parse_addresses(forwarded.headers.get_all("Record-Route"))]
    assert [(uri.host, uri.port, uri.param("transport")) for uri in record_route] == [
        ("127.0.0.1", 5061, "tcp"), ("127.0.0.1", 5060, None)]
    assert all(read(SECRET, uri.user) == PHONE for uri in record_route)
    assert "Route" not in forwarded.headers and forwarded.max_forwards == 69

    # the phone's 200 goes back to node B, our Via taken off
    ok = forwarded.headers.copy()
    ok.set("To", ok.get("To") + ";tag=p1")
    core.receive(serialise(parse(b"SIP/2.0 200 OK\r\n" + b"".join(
        f"{name}: {value}\r\n".encode() for name, value in ok if name != "Max-Forwards") + b"Content-Length: 0\r\n\r\n")),
        phone)
    (address, answer), = wire.sent
    assert address == NODE_B and answer.status == 200 and len(answer.via) == 1
    assert answer.top_via.branch == "z9hG4bKnodeb1"

    # node B's BYE through the route set, and the phone's BYE the other way
    b_route = ", ".join(reversed(forwarded.headers.get_all("Record-Route")))
    from_node_b(core, invite(b_route, method="BYE", to_tag="p1", branch="z9hG4bKbye1", cseq=2))
    assert parse(phone_sent[-1]).method == "BYE" and "Route" not in parse(phone_sent[-1]).headers
    phone_route = ", ".join(forwarded.headers.get_all("Record-Route"))
    core.receive(invite(phone_route, method="BYE", to_tag="b1", uri="sip:b2bua@127.0.0.2:5070",
                        via="SIP/2.0/TCP 192.0.2.7:5060", branch="z9hG4bKpbye"), phone)
    address, bye = wire.sent[-1]
    assert address == NODE_B and bye.method == "BYE" and bye.via[1].rport == PHONE.port
    assert core.stats["edge_forwarded"] == 3 and not core.transactions.servers


def test_a_phone_on_a_secure_websocket_is_record_routed_with_transport_ws(node_a):
    """RFC 7118 §5.2: a SIP URI says transport=ws over WSS too; WSS is for Via alone."""
    core, edge, wire, _, _ = node_a
    sent = []
    browser = FlowRef("node-a", "wss", "192.0.2.9", 50123)
    core.flows.add(Flow("wss", (browser.host, browser.port), ("127.0.0.1", 5063), sent.append))
    from_node_b(core, invite(token_route(browser), uri="sip:x7k2@df7jal23ls0d.invalid;transport=ws"))
    forwarded = parse(sent[0])
    assert forwarded.via[0].transport == "WSS"
    record_route = [address.uri for address in parse_addresses(forwarded.headers.get_all("Record-Route"))]
    assert [(uri.port, uri.param("transport")) for uri in record_route] == [(5063, "ws"), (5060, None)]


def test_a_cancel_follows_its_invite_with_the_same_branch(node_a):
    core, edge, wire, phone, phone_sent = node_a
    from_node_b(core, invite(token_route()))
    from_node_b(core, invite(token_route()))                    # a retransmission: the same again
    from_node_b(core, invite(token_route(), method="CANCEL"))
    branches = [parse(data).top_via.branch for data in phone_sent]
    assert len(set(branches)) == 1 and branches[0].startswith(core.branch_prefix)
    assert parse(phone_sent[2]).method == "CANCEL"


def test_a_stranger_with_a_token_gets_403_and_nothing_reaches_the_phone(node_a):
    core, edge, wire, phone, phone_sent = node_a
    sent = []
    core.receive(invite(token_route()), Flow("udp", ("203.0.113.5", 5060), ("127.0.0.1", 5060), sent.append))
    refusal = parse(sent[0])
    assert (refusal.status, refusal.reason) == (403, "Forbidden: flow tokens are for WeVoIP nodes only")
    assert phone_sent == [] and core.stats["edge_refused"] == 1


def test_a_flow_that_has_closed_gets_430(node_a):
    core, edge, wire, phone, phone_sent = node_a
    phone.close()
    refusal, = from_node_b(core, invite(token_route()))
    assert (refusal.status, refusal.reason) == (430, "Flow Failed")


def test_a_response_that_is_not_ours_is_dropped(node_a):
    core, edge, wire, phone, phone_sent = node_a
    core.receive(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKnotours\r\n"
                 b"Via: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\n"
                 b"Call-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n", phone)
    assert wire.sent == [] and core.stats["stray_dropped"] == 1


# -- the calling node ------------------------------------------------------------------

def binding(**changes):
    fields = dict(contact="sip:bob@192.0.2.7:5060;transport=tcp", key="k", q=1000, call_id="c", cseq=1,
                  expires_at=1e12, source="192.0.2.7:49152", transport="tcp", node="node-a")
    return Binding(**{**fields, **changes})


def test_node_b_routes_a_stream_binding_held_by_node_a_through_it():
    edge_b = EdgeProxy(SipCore(Clock(), FlowTable()), "node-b")
    assert edge_b.route_for(binding()) is None                  # not started: no secret yet
    edge_b.start(SECRET, NODE_B, NODES.get, lambda: frozenset())
    host, port, route = edge_b.route_for(binding())
    assert (host, port) == NODES["node-a"]
    uri = parse_addresses([route])[0].uri
    assert read(SECRET, uri.user) == PHONE and uri.has_param("lr") and (uri.host, uri.port) == NODES["node-a"]
    assert edge_b.route_for(binding(transport="udp")) is None            # B reaches a UDP phone itself
    assert edge_b.route_for(binding(node="node-b")) is None              # its own (connection gone)
    assert edge_b.route_for(binding(node="node-z")) is None              # a node that never announced itself
    assert edge_b.route_for(binding(flow=object())) is None
