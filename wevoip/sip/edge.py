"""
The edge proxy between nodes (RFC 5626 §5.3, RFC 3327's idea of the edge on the path).

A phone registered over TCP, TLS, WS or WSS is reachable only over the connection it opened,
and that connection ends on one node. Another node that wants to call it sends the INVITE to
that node (UDP between nodes) with a Route header whose URI carries a *flow token*: the
phone's flow (transport, address, port) and the node holding it, signed with a secret every
node shares (`node_secrets`). The holding node recognises the token, checks that the request
came from a known node, and forwards it over the flow; it Record-Routes itself twice
(RFC 5658), once on the side facing the phone and once on the side facing the other node,
both URIs carrying the token, so every later request of the dialog in either direction
comes back through it. It proxies statelessly (RFC 3261 §16.11): its Via's branch is derived
from the incoming one, so a CANCEL or a retransmission follows its INVITE, and responses find
their way back by the Via alone.

Who may use a token: a request arriving on the token's own flow (the phone, in its dialog)
may go on only to a known node; any other request must come from a known node. Anyone else
gets 403, and nothing is forwarded. The decision is sans-IO (`decide`); `EdgeProxy` sends.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Callable

from twisted.logger import Logger

from wevoip.sip.errors import ParseError
from wevoip.sip.flow import RELIABLE, Flow, normalise_host
from wevoip.sip.headers import Via, parse_addresses, split_commas
from wevoip.sip.message import Request, Response, response_headers, serialise
from wevoip.sip.tags import random_hex
from wevoip.sip.uri import with_param

log = Logger(namespace="wevoip.sip.edge")

PREFIX = "wvf1."        # a flow token in a URI's user part starts so
_CONTEXT = b"wevoip flow token|"


@dataclass(frozen=True)
class FlowRef:
    """A phone's flow as the node holding it keys it (`Flow.key`), and that node's name."""

    node: str
    transport: str
    host: str
    port: int

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.transport, self.host, self.port)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mint(secret: bytes, ref: FlowRef) -> str:
    """A token naming `ref`, usable as a URI user part (base64url and dots only)."""
    payload = "|".join((ref.node, ref.transport, normalise_host(ref.host), str(ref.port))).encode()
    mac = hmac.new(secret, _CONTEXT + payload, hashlib.sha256).digest()[:16]
    return f"{PREFIX}{_b64(payload)}.{_b64(mac)}"


def read(secret: bytes, token: str) -> FlowRef | None:
    """The flow a token names, or None when it is not one of ours or its signature is wrong."""
    if not token.startswith(PREFIX):
        return None
    body, _, signature = token[len(PREFIX):].partition(".")
    try:
        payload, mac = _unb64(body), _unb64(signature)
    except (ValueError, TypeError):
        return None
    if not hmac.compare_digest(mac, hmac.new(secret, _CONTEXT + payload, hashlib.sha256).digest()[:16]):
        return None
    try:
        node, transport, host, port = payload.decode().split("|")
        return FlowRef(node, transport, host, int(port))
    except ValueError:
        return None


@dataclass(frozen=True)
class Forward:
    """Send `request` (its Routes to us popped, Max-Forwards down by one) over the phone's
    flow `ref`, or (`ref` None) to the node at `host`:`port` over UDP; `record_route` for a
    dialog-creating request going to the phone."""

    request: Request
    token: str
    ref: FlowRef | None = None
    host: str = ""
    port: int = 0
    record_route: bool = False


@dataclass(frozen=True)
class Refuse:
    status: int
    reason: str


def decide(secret: bytes, node: str, request: Request, arrived: tuple[str, str, int],
           node_hosts: frozenset[str]) -> Forward | Refuse | None:
    """What the edge does with a request that came on the flow keyed `arrived`: None when
    its top Route carries no flow token (the request is not the edge's). The Route lines
    are read here; a malformed one raises ParseError (the core answers 400)."""
    routes = parse_addresses(request.headers.get_all("Route"))
    token, ref, used = "", None, 0
    for route in routes:
        user = route.uri.user or ""
        if not user.startswith(PREFIX):
            break
        named = read(secret, user)
        if named is None:
            return Refuse(403, "Forbidden: the flow token is not valid")
        if named.node != node:
            if ref is None:
                return Refuse(404, f"Not Found: the flow is held by node {named.node}")
            break
        if ref is not None and named != ref:
            return Refuse(403, "Forbidden: the route names two flows")
        token, ref, used = user, named, used + 1
    if ref is None:
        return None
    forwards = request.max_forwards
    if forwards is not None and forwards <= 0:
        return Refuse(483, "Too Many Hops")
    outgoing = Request(request.method, request.uri, request.headers.copy(), request.body)
    outgoing.headers.remove("Route")
    for route in routes[used:]:
        outgoing.headers.add("Route", str(route))
    outgoing.headers.set("Max-Forwards", str(69 if forwards is None else forwards - 1))
    if arrived == ref.key:
        hop = routes[used].uri if len(routes) > used else request.uri
        host = normalise_host(hop.host)
        if host not in node_hosts:
            return Refuse(403, "Forbidden: a flow's requests go only to WeVoIP nodes")
        return Forward(outgoing, token, host=host, port=hop.port or 5060)
    if arrived[1] not in node_hosts:
        return Refuse(403, "Forbidden: flow tokens are for WeVoIP nodes only")
    return Forward(outgoing, token, ref=ref,
                   record_route=request.method == "INVITE" and request.to.tag is None)


class EdgeProxy:
    """The node's edge: `route_for` tells the B2BUA how to reach a binding another node holds;
    `request` and `response` are the core's hooks for the messages that pass through this
    node on their way to or from a phone it holds. Usable once `start` has given it the
    shared secret, this node's name and address, and the other nodes (`hosts`)."""

    def __init__(self, core, node: str):
        self.core = core
        self.node = node
        self.secret = b""
        self.address: tuple[str, int] | None = None
        self.nodes: Callable[[str], tuple[str, int] | None] = lambda name: None
        self.hosts: Callable[[], frozenset[str]] = frozenset
        self._branch = ""

    def start(self, secret: bytes, address: tuple[str, int] | None,
              nodes: Callable[[str], tuple[str, int] | None], hosts: Callable[[], frozenset[str]]) -> None:
        self.secret, self.address, self.nodes, self.hosts = secret, address, nodes, hosts
        self._branch = self.core.branch_prefix + "x"
        self.core.proxy = self.request
        self.core.on_stray_response = self.response

    # -- the calling node's side -------------------------------------------------------

    def route_for(self, binding) -> tuple[str, int, str] | None:
        """For a stream binding whose connection another node holds: that node's address and
        the Route (with its flow token) that has it forward over the connection."""
        if not self.secret or binding.flow is not None or binding.transport not in RELIABLE \
                or not binding.node or binding.node == self.node:
            return None
        address = self.nodes(binding.node)
        if address is None:
            return None
        host, _, port = binding.source.rpartition(":")
        token = mint(self.secret, FlowRef(binding.node, binding.transport, normalise_host(host), int(port)))
        return address[0], address[1], f"<sip:{token}@{_hostport(*address)};lr>"

    # -- the holding node's side -------------------------------------------------------

    def request(self, request: Request, flow: Flow) -> bool:
        """True when the request was the edge's (forwarded or refused)."""
        route = request.headers.get("Route")
        if route is None or PREFIX not in route or not self.secret or self.address is None:
            return False
        decision = decide(self.secret, self.node, request, flow.key, self.hosts())
        if decision is None:
            return False
        stats = self.core.stats
        if isinstance(decision, Refuse):
            stats["edge_refused"] += 1
            log.info("edge refused {method} from {source}: {reason}", method=request.method,
                     source=flow.remote[0], reason=decision.reason)
            self._refuse(request, flow, decision)
            return True
        if decision.ref is not None:
            out = self.core.flows.find(*decision.ref.key)
            if out is None:
                stats["edge_flow_gone"] += 1
                self._refuse(request, flow, Refuse(430, "Flow Failed"))
                return True
        else:
            out = self.core.flows.datagram(decision.host, decision.port)
            if out is None:
                self._refuse(request, flow, Refuse(503, "Service Unavailable: no UDP socket to the node"))
                return True
        outgoing = decision.request
        via = outgoing.top_via      # responses come back over the very connection (§18.2.2)
        outgoing.set_top_via(Via(via.transport, via.host, via.port, with_param(
            with_param(via.params, "received", flow.remote[0]), "rport", str(flow.remote[1]))))
        if decision.record_route:
            outgoing.headers.prepend("Record-Route", f"<sip:{decision.token}@{_hostport(*self.address)};lr>")
            transport = "" if out.transport == "udp" else f";transport={out.uri_transport}"
            outgoing.headers.prepend("Record-Route",
                                     f"<sip:{decision.token}@{self.core.sent_by(out)}{transport};lr>")
        outgoing.headers.prepend("Via", f"SIP/2.0/{out.via_transport} {self.core.sent_by(out)};"
                                        f"branch={self._branch_of(request)};rport")
        stats["edge_forwarded"] += 1
        out.send(serialise(outgoing))
        return True

    def _branch_of(self, request: Request) -> str:
        """§16.11: the same for a retransmission, and for a CANCEL or non-2xx ACK as for its INVITE."""
        via = request.top_via
        seed = f"{via.branch}|{via.host}|{via.port}".encode()
        return self._branch + hashlib.sha256(seed).hexdigest()[:20]

    def _refuse(self, request: Request, flow: Flow, refusal: Refuse) -> None:
        if request.method == "ACK":
            return
        headers = response_headers(request.headers, refusal.status, random_hex(5))
        flow.send(serialise(Response(refusal.status, refusal.reason, headers)))

    def response(self, response: Response, flow: Flow) -> None:
        """A response with our proxy Via on top goes to the Via below it (§16.11, §18.2.2):
        the connection it names, or its received/rport address over UDP."""
        try:
            vias = response.via
        except ParseError:
            return
        if len(vias) < 2 or not (vias[0].branch or "").startswith(self._branch or "\0"):
            self.core.stats["stray_dropped"] += 1
            return
        below = vias[1]
        host, port = below.received or below.host_bare, below.rport or below.port or 5060
        transport = below.transport.lower()
        out = self.core.flows.find(transport, host, port) if transport in RELIABLE \
            else self.core.flows.datagram(host, port)
        if out is None:
            self.core.stats["edge_response_undeliverable"] += 1
            return
        remaining = [part for value in response.headers.get_all("Via") for part in split_commas(value)][1:]
        response.headers.remove("Via")
        for value in reversed(remaining):
            response.headers.prepend("Via", value)
        out.send(serialise(response))


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
