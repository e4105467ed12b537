"""
The SIP core: where every message from every transport arrives, and what the rest of the
system plugs into.

bytes -> `parse` -> the gate -> RFC 3581 received/rport on the top Via -> the edge proxy
between nodes (a request naming one of this node's flow tokens, sip/edge.py) -> the transaction
layer (retransmissions and ACKs for non-2xx stop there) -> Max-Forwards (483) and loop
(482) checks -> the handler registered for the method, or the core's own answers: OPTIONS
(200 with Allow, Accept, Supported), CANCEL, 405 for a method it knows but nobody serves,
501 for one it does not know. Handlers get an `Incoming` to answer through; the core never
lets a handler's failure or a peer's bytes escape: they become a 500 or a counted drop.
"""

from __future__ import annotations

import inspect
import re
import secrets
import socket
from collections import Counter
from typing import Awaitable, Callable

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from wevoip.interfaces import ISipGate
from wevoip.sip.errors import ParseError
from wevoip.store.errors import StoreUnavailable
from wevoip.sip.flow import Flow, FlowTable
from wevoip.sip.headers import MAGIC_COOKIE, Via, parse_cseq, parse_tokens
from wevoip.sip.message import REASONS, Message, Request, Response, parse, response_headers, serialise
from wevoip.sip.tags import random_hex
from wevoip.sip.transaction import ServerTransaction
from wevoip.sip.transactions import TransactionLayer, new_branch, server_key
from wevoip.sip.uri import UnsupportedScheme, with_param

log = Logger(namespace="wevoip.sip.core")
UNAVAILABLE = "Service Unavailable: database unavailable"

KNOWN_METHODS = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK",
                           "SUBSCRIBE", "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE"})
_EXTENSIONS = ("require", "proxy-require")
_TAGGED = re.compile(r";\s*tag\s*=", re.I)

Handler = Callable[["Incoming"], "None | Awaitable[None]"]


@implementer(ISipGate)
class AdmitAll:
    def admit(self, message, flow) -> bool:
        return True


class Incoming:
    """A request in the hands of its handler, with the way to answer it."""

    def __init__(self, core: SipCore, request: Request, flow: Flow, transaction: ServerTransaction | None):
        self.core = core
        self.request = request
        self.flow = flow
        self.transaction = transaction
        self.to_tag = random_hex(5)
        self.final_sent = False
        self.cancelled = False
        self._on_cancel: list[Callable[[], None]] = []

    def response(self, status: int, reason: str | None = None, *,
                 headers: tuple[tuple[str, str], ...] = (), body: bytes = b"") -> Response:
        """A response to this request: the copied headers, our To tag, then `headers`."""
        built = Response(status, reason or REASONS.get(status, "Unknown"),
                         response_headers(self.request.headers, status, self.to_tag), body)
        for name, value in headers:
            built.headers.add(name, value)
        return built

    def respond(self, status: int, reason: str | None = None, *,
                headers: tuple[tuple[str, str], ...] = (), body: bytes = b"") -> Response:
        response = self.response(status, reason, headers=headers, body=body)
        self.send(response)
        return response

    def send(self, response: Response) -> None:
        """Through the server transaction; a second final response is ignored, as there."""
        if self.final_sent:
            return
        if response.status >= 200:
            self.final_sent = True
        if self.transaction is not None:
            self.core.transactions.respond(self.transaction, response)
            if self.final_sent:
                self.transaction.incoming = None
        else:
            self.core.send_response(response, self.flow)

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Called when a CANCEL for this INVITE arrives; without one the core answers 487."""
        self._on_cancel.append(callback)

    def cancel(self) -> None:
        self.cancelled = True
        if not self._on_cancel:
            self.respond(487)
        for callback in self._on_cancel:
            callback()


class SipCore:
    def __init__(self, clock, flows: FlowTable, *, gate=None, server: str = "WeVoIP",
                 force_rport: bool = True, advertise: str = ""):
        self.clock = clock
        self.flows = flows
        self.advertise = advertise
        self._sources: dict[str, str] = {}
        self.gate = gate if gate is not None else AdmitAll()
        self.server = server
        self.force_rport = force_rport
        self.stats: Counter = Counter()
        self.handlers: dict[str, Handler] = {}
        self.supported: list[str] = []
        self.transactions = TransactionLayer(clock, self.stats, self.send_bytes)
        self.branch_prefix = MAGIC_COOKIE + secrets.token_hex(3) + "."
        self.on_stray_response: Callable[[Response, Flow], None] | None = None
        # The edge proxy between nodes (sip/edge.py): a request it takes (True) is its own.
        self.proxy: Callable[[Request, Flow], bool] | None = None
        self._options_headers: tuple[tuple[str, str, str], ...] = ()
        self._refresh_capabilities()

    # The rest of the system plugs in here.

    def register(self, method: str, handler: Handler) -> None:
        """Serve `method` with `handler(incoming)`; it may return an awaitable."""
        self.handlers[method] = handler
        self._refresh_capabilities()

    def allowed(self) -> list[str]:
        methods = set(self.handlers) | {"OPTIONS"}
        if "INVITE" in methods:
            methods |= {"ACK", "CANCEL"}
        return sorted(methods)

    def new_branch(self) -> str:
        """A branch that also marks our own Via, so a request that loops back is seen (482)."""
        return new_branch(self.branch_prefix)

    def send(self, message: Message, flow: Flow) -> bool:
        """Statelessly: no retransmission, no matching of answers."""
        return flow.send(serialise(message))

    def request(self, request: Request, flow: Flow, *,
                on_response: Callable[[Response], None] | None = None) -> defer.Deferred[Response]:
        """Send through a client transaction; fires with the final response (or fails with
        TransactionTimeout). Provisional responses, and further 2xx to an INVITE, go to
        `on_response`. A Via with a fresh branch is added on top for `flow`."""
        request.headers.prepend("Via", f"SIP/2.0/{flow.via_transport} {self.sent_by(flow)};"
                                       f"branch={self.new_branch()};rport")
        if "Max-Forwards" not in request.headers:
            request.headers.add("Max-Forwards", "70")
        return self.transactions.new_client(request, flow, on_response)

    def sent_by(self, flow: Flow) -> str:
        """host:port for our Via (and Contact) on `flow`: sip.advertise, else the socket's
        address, else (a wildcard listener) the local address routed to the peer."""
        host, port = flow.local
        if self.advertise:
            host = self.advertise
        elif host in ("0.0.0.0", "::"):
            host = self._route_source(flow.remote[0])
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def _route_source(self, remote: str) -> str:
        """A connected UDP socket sends nothing; it only asks the kernel for the route."""
        source = self._sources.get(remote)
        if source is None:
            family = socket.AF_INET6 if ":" in remote else socket.AF_INET
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                try:
                    probe.connect((remote, 9))
                    source = probe.getsockname()[0]
                except OSError:
                    source = "::1" if family == socket.AF_INET6 else "127.0.0.1"
            if len(self._sources) > 4096:
                self._sources.clear()
            self._sources[remote] = source
        return source

    def send_response(self, response: Response, flow: Flow) -> None:
        self.send_bytes(serialise(response), flow)

    def send_bytes(self, data: bytes, flow: Flow) -> None:
        """To where RFC 3261 §18.2.2 and RFC 3581 say: the connection the request came on
        (or a newer one from the same peer), or for UDP the source address and port."""
        if flow.closed:
            flow = self.flows.find(flow.transport, *flow.remote) or flow
        if not flow.send(data):
            self.stats["responses_undeliverable"] += 1

    # Everything from the network comes in here.

    def receive(self, data: bytes, flow: Flow) -> None:
        stats = self.stats
        stats["received"] += 1
        try:
            message = parse(data)
        except ParseError as error:
            self._malformed(error, flow)
            return
        if not self.gate.admit(message, flow):
            stats["gated"] += 1
            return
        if type(message) is Response:
            if not self.transactions.receive_response(message):
                stats["stray_responses"] += 1
                if self.on_stray_response is not None:
                    self.on_stray_response(message, flow)
            return
        try:
            self._stamp_source(message, flow)
            if message.method == "OPTIONS" and "OPTIONS" not in self.handlers \
                    and not _TAGGED.search(message.headers.get("to")):
                refusal = self._refusal(message, fast=True)
                if refusal is None:
                    self._answer_options(message, flow)
                else:
                    self._answer_refusal(message, flow, refusal)
                return
            self._request(message, flow)
        except ParseError as error:
            error.headers, error.is_request = message.headers, True
            self._malformed(error, flow)

    def _malformed(self, error: ParseError, flow: Flow) -> None:
        """400 (or the error's status) when there is enough to address it; else drop."""
        self.stats["malformed"] += 1
        if not self.gate.admit(error, flow):
            self.stats["gated"] += 1
            return
        response = self._error_response(error)
        if response is None:
            self.stats["dropped_malformed"] += 1
            return
        flow.send(serialise(response))

    @staticmethod
    def _error_response(error: ParseError) -> Response | None:
        """The response to a malformed request, if it can be addressed: a request (not an
        ACK, which is never answered) with a Via line, even a malformed one (RFC 4475
        §3.1.2.1), going back where it came from. Via, From, To, Call-ID and CSeq are
        copied as written, those missing left out (RFC 4475 §3.3.1 asks for a 400 even so)."""
        headers = error.headers
        if not error.is_request or headers is None or not headers.get("Via"):
            return None
        try:
            if parse_cseq(headers.get("CSeq") or "").method == "ACK":
                return None
        except ParseError:
            pass
        return Response(error.status, error.reason, response_headers(headers, error.status, random_hex(5)))

    def _stamp_source(self, request: Request, flow: Flow) -> None:
        """RFC 3581: received= when the source differs from the Via, rport= when asked."""
        via = request.top_via
        host, port = flow.remote
        wants_rport = via.wants_rport
        if not wants_rport and via.host_bare.lower() == host:
            return
        params = with_param(via.params, "received", host)
        if wants_rport:
            params = with_param(params, "rport", str(port))
        request.set_top_via(Via(via.transport, via.host, via.port, params))

    def _reply_flow(self, request: Request, flow: Flow) -> Flow:
        """For UDP without rport and without force_rport, the Via's port (RFC 3261 §18.2.2)."""
        if flow.reliable or self.force_rport or request.top_via.wants_rport:
            return flow
        port = request.top_via.port or 5060
        if port == flow.remote[1]:
            return flow
        return self.flows.datagram(flow.remote[0], port) or flow

    def _answer_options(self, request: Request, flow: Flow) -> None:
        """The hot path of keep-alive pings and monitoring: stateless (RFC 3261 §8.2.7), as
        a retransmitted OPTIONS can safely be answered again."""
        self.stats["options"] += 1
        headers = response_headers(request.headers, 200, random_hex(5))
        headers._items.extend(self._options_headers)
        self._reply_flow(request, flow).send(serialise(Response(200, "OK", headers)))

    def _answer_refusal(self, request: Request, flow: Flow, refusal) -> None:
        status, reason, extra = refusal
        headers = response_headers(request.headers, status, random_hex(5))
        for name, value in extra:
            headers.add(name, value)
        self._reply_flow(request, flow).send(serialise(Response(status, reason, headers)))

    def _refusal(self, request: Request, *, fast: bool = False) -> tuple[int, str, tuple] | None:
        """RFC 3261 §8.2.2, header inspection, before any handler sees the request: a
        Request-URI of a scheme we do not serve (416) or with headers in it (400, they are
        not allowed there, RFC 3261 §19.1.1), an option-tag in Require or Proxy-Require we
        do not support (420 with Unsupported: a B2BUA is the UAS of its callers and their
        outbound proxy), and From and To that do not parse (400). The fast OPTIONS path
        skips From and To, which its answer does not read."""
        try:
            uri = request.uri
            if uri.headers:
                return 400, "Headers are not allowed in the Request-URI", ()
            if not fast:
                _ = request.from_, request.to
        except UnsupportedScheme as error:
            return 416, f"Unsupported URI Scheme: {error.scheme[:32]}", ()
        except ParseError as error:
            return error.status, error.reason, ()
        items = request.headers._items
        if any(item[0] in _EXTENSIONS for item in items):
            supported = {tag.lower() for tag in self.supported}
            unknown = dict.fromkeys(tag for item in items if item[0] in _EXTENSIONS
                                    for tag in parse_tokens([item[2]]) if tag.lower() not in supported)
            if unknown:
                return 420, "Bad Extension", (("Unsupported", ", ".join(unknown)),)
        return None

    def _refresh_capabilities(self) -> None:
        self._options_headers = tuple((name.lower(), name, value) for name, value in (
            ("Allow", ", ".join(self.allowed())), ("Accept", "application/sdp"),
            ("Supported", ", ".join(self.supported)), ("Server", self.server)))

    def _request(self, request: Request, flow: Flow) -> None:
        if self.proxy is not None and self._proxied(request, flow):
            return
        layer = self.transactions
        key = server_key(request)
        existing = layer.servers.get(key)
        if request.method == "ACK":
            if existing is not None:
                existing.handle("ack", request)
            elif "ACK" in self.handlers:
                self._dispatch(self.handlers["ACK"], Incoming(self, request, flow, None))
            return
        if existing is not None:
            self.stats["retransmissions"] += 1
            existing.handle("retransmission", request)
            return
        reply_flow = self._reply_flow(request, flow)
        if request.method == "CANCEL":
            self._cancel(request, reply_flow)
            return
        transaction = layer.new_server(request, reply_flow, key)
        incoming = Incoming(self, request, reply_flow, transaction)
        if request.max_forwards == 0 and request.method != "OPTIONS":
            incoming.respond(483)
        elif self._looped(request, transaction):
            incoming.respond(482)
        elif request.method not in self.handlers and request.method != "OPTIONS":
            allow = (("Allow", ", ".join(self.allowed())),)
            incoming.respond(405 if request.method in KNOWN_METHODS else 501, headers=allow)
        elif (refusal := self._refusal(request)) is not None:
            status, reason, headers = refusal
            incoming.respond(status, reason, headers=headers)
        elif request.method == "OPTIONS":
            incoming.respond(200, headers=tuple((name, value) for _, name, value in self._options_headers))
        else:
            if request.method == "INVITE":
                self._start_invite(transaction, incoming)
            self._dispatch(self.handlers[request.method], incoming)

    def _proxied(self, request: Request, flow: Flow) -> bool:
        """A malformed header goes up as a 400; any other failure of the proxy is a bug,
        logged, and the request dropped (the sender retransmits or gives up)."""
        try:
            return self.proxy(request, flow)
        except ParseError:
            raise
        except Exception:
            self.stats["proxy_errors"] += 1
            log.failure("the edge proxy failed on {method} (Call-ID {call_id})", method=request.method,
                        call_id=request.headers.get("Call-ID"))
            return True

    def _start_invite(self, transaction: ServerTransaction, incoming: Incoming) -> None:
        """100 Trying at once (the handler may take a while), and keep the Incoming on the
        transaction for a CANCEL to find; a 2xx ACK the transaction sees goes to "ACK"."""
        transaction.incoming = incoming
        self.transactions.respond(transaction, incoming.response(100))
        ack_handler = self.handlers.get("ACK")
        if ack_handler is not None:
            transaction.owner.on_ack = lambda ack: self._dispatch(
                ack_handler, Incoming(self, ack, incoming.flow, None))

    def _looped(self, request: Request, transaction: ServerTransaction) -> bool:
        prefix = self.branch_prefix
        return self.transactions.merged(request, transaction) or any(
            (via.branch or "").startswith(prefix) for via in request.via)

    def _cancel(self, cancel: Request, flow: Flow) -> None:
        transaction = self.transactions.new_server(cancel, flow)
        answer = Incoming(self, cancel, flow, transaction)
        invite = self.transactions.find_invite(cancel)
        if invite is None:
            answer.respond(481)
            return
        incoming = getattr(invite, "incoming", None)
        if incoming is None:
            answer.respond(200)
            return
        answer.to_tag = incoming.to_tag
        answer.respond(200)
        incoming.cancel()

    def _dispatch(self, handler: Handler, incoming: Incoming) -> None:
        try:
            result = handler(incoming)
        except Exception:
            self._handler_failed(incoming, Failure())
            return
        if isinstance(result, defer.Deferred) or inspect.iscoroutine(result):
            defer.ensureDeferred(result).addErrback(lambda failure: self._handler_failed(incoming, failure))

    def _handler_failed(self, incoming: Incoming, failure: Failure) -> None:
        """A header the handler read was malformed: 400 with its reason; the database is lost
        for now: 503 with Retry-After (RFC 3261 21.5.4), not logged, as the store logs the
        loss once; otherwise a bug: 500."""
        error = failure.value
        if isinstance(error, ParseError):
            self.stats["malformed"] += 1
            if incoming.request.method != "ACK" and not incoming.final_sent:
                incoming.respond(error.status, error.reason)
            return
        if isinstance(error, StoreUnavailable):
            self.stats["store_unavailable"] += 1
            if incoming.request.method != "ACK" and not incoming.final_sent:
                incoming.respond(503, UNAVAILABLE, headers=(("Retry-After", str(error.retry_after)),))
            return
        self.stats["handler_errors"] += 1
        log.failure("handler for {method} failed (Call-ID {call_id})", failure,
                    method=incoming.request.method, call_id=incoming.request.call_id)
        if incoming.request.method != "ACK" and not incoming.final_sent:
            incoming.respond(500)
