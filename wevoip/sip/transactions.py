"""
The transaction layer: which machine a message belongs to (RFC 3261 §17.1.3, §17.2.3),
and the glue between the machines in `transaction.py` and flows.

Requests are matched by the top Via's branch and sent-by and the method (an ACK belongs to
its INVITE); a branch without the RFC 3261 magic cookie falls back to the RFC 2543 rule
(Request-URI, From tag, Call-ID, CSeq, top Via). Responses are matched by branch and CSeq
method. A retransmitted request never reaches the core twice: its transaction absorbs it
and repeats the last response, and a non-2xx final response to an INVITE is acknowledged
here, as the RFC puts it in the transaction.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet import defer
from twisted.logger import Logger

from wevoip.sip.flow import Flow
from wevoip.sip.tags import random_hex
from wevoip.sip.timerwheel import TimerWheel
from wevoip.sip.headers import MAGIC_COOKIE
from wevoip.sip.message import Headers, Message, Request, Response, serialise
from wevoip.sip.transaction import (
    ClientInviteTransaction, ClientNonInviteTransaction, ClientTransaction, ServerInviteTransaction,
    ServerNonInviteTransaction, ServerTransaction)

log = Logger(namespace="wevoip.sip.transactions")


class TransactionTimeout(Exception):
    """No final response before Timer B or F, or the transport failed."""


def new_branch(prefix: str = MAGIC_COOKIE) -> str:
    return prefix + random_hex(8)


def server_key(request: Request) -> tuple:
    via = request.top_via
    method = "INVITE" if request.method == "ACK" else request.method
    if via.rfc3261:
        return (via.branch, via.host.lower(), via.port, method)
    return ("2543", str(request.uri), request.from_.tag, request.call_id, request.cseq.number,
            str(via), method)


def client_key(message: Message) -> tuple:
    method = message.cseq.method
    return (message.top_via.branch, "INVITE" if method == "ACK" else method)


def ack_for(request: Request, response: Response) -> Request:
    """The ACK for a non-2xx final response (RFC 3261 §17.1.1.3): same Request-URI, top
    Via, From, Call-ID, CSeq number and Route as the INVITE; To from the response."""
    headers = Headers([("Via", request.headers.get_all("Via")[0]), ("Max-Forwards", "70"),
                       ("From", request.headers.get("From")), ("To", response.headers.get("To")),
                       ("Call-ID", request.call_id), ("CSeq", f"{request.cseq.number} ACK")])
    for route in request.headers.get_all("Route"):
        headers.add("Route", route)
    return Request("ACK", request.uri, headers)


class _ServerOwner:
    """Responses reach the machine already serialised: a finished transaction keeps only
    the bytes to repeat, not the request and response objects."""

    __slots__ = ("layer", "flow", "on_ack")

    def __init__(self, layer: TransactionLayer, flow: Flow):
        self.layer = layer
        self.flow = flow
        self.on_ack: Callable[[Request], None] | None = None

    def send(self, data: bytes) -> None:
        self.layer.send_bytes(data, self.flow)

    def deliver(self, transaction: ServerTransaction, ack: Request) -> None:
        """An ACK for a 2xx reaching an Accepted INVITE transaction goes to the dialog."""
        if self.on_ack is not None:
            self.on_ack(ack)

    def timed_out(self, transaction: ServerTransaction) -> None:
        self.layer.stats["server_timeouts"] += 1

    def terminated(self, transaction: ServerTransaction) -> None:
        self.layer.forget_server(transaction)


class _ClientOwner:
    __slots__ = ("layer", "flow", "final", "on_response")

    def __init__(self, layer: TransactionLayer, flow: Flow, on_response: Callable[[Response], None] | None):
        self.layer = layer
        self.flow = flow
        self.final: defer.Deferred[Response] = defer.Deferred()
        self.on_response = on_response

    def send(self, request: Request) -> None:
        if not self.flow.send(serialise(request)):
            self.layer.clock.callLater(0, self.layer.transport_failed, self.flow)

    def deliver(self, transaction: ClientTransaction, response: Response) -> None:
        if response.status >= 200 and not self.final.called:
            self.final.callback(response)
        elif self.on_response is not None:
            self.on_response(response)

    def timed_out(self, transaction: ClientTransaction) -> None:
        if not self.final.called:
            self.final.errback(TransactionTimeout(f"no final response to {transaction.request.method}"))

    def terminated(self, transaction: ClientTransaction) -> None:
        self.layer.forget_client(transaction)


class TransactionLayer:
    def __init__(self, clock, stats: dict, send_bytes: Callable[[bytes, Flow], None]):
        self.clock = clock
        self.wheel = TimerWheel(clock)
        self.stats = stats
        self.send_bytes = send_bytes
        self.servers: dict[tuple, ServerTransaction] = {}
        self.clients: dict[tuple, ClientTransaction] = {}
        self._merged: dict[tuple, tuple] = {}

    def find_invite(self, cancel: Request) -> ServerTransaction | None:
        """The INVITE transaction a CANCEL names (same branch and sent-by, RFC 3261 §9.2)."""
        key = server_key(cancel)
        return self.servers.get(key[:-1] + ("INVITE",))

    def merged(self, request: Request, transaction: ServerTransaction | None = None) -> bool:
        """RFC 3261 §8.2.2.2: a tagless request whose From tag, Call-ID and CSeq match a live
        transaction it does not belong to arrived twice by different paths (a loop or a fork).
        `transaction`, the request's own, saves working its keys out again."""
        if request.to.tag is not None:
            return False
        if transaction is None:
            dialog_id, key = _dialog_id(request), server_key(request)
        else:
            dialog_id, key = transaction.dialog_id, transaction.key
        known = self._merged.get(dialog_id)
        return known is not None and known != key

    def new_server(self, request: Request, flow: Flow, key: tuple | None = None) -> ServerTransaction:
        """Timer J (32 s of absorbing retransmissions) runs on the coarse wheel. `key` is
        the request's `server_key`, when the caller has it already."""
        if key is None:
            key = server_key(request)
        if request.method == "INVITE":
            transaction: ServerTransaction = ServerInviteTransaction(
                key, _ServerOwner(self, flow), self.clock, request, reliable=flow.reliable)
        else:
            transaction = ServerNonInviteTransaction(
                key, _ServerOwner(self, flow), self.wheel, request, reliable=flow.reliable)
        transaction.dialog_id = _dialog_id(request)
        self.servers[key] = transaction
        self._merged.setdefault(transaction.dialog_id, key)
        return transaction

    def respond(self, transaction: ServerTransaction, response: Response) -> bool:
        """Send a response through its transaction; after a final one the transaction
        keeps only its bytes (and no longer the request)."""
        handled = transaction.respond(serialise(response), response.status)
        if response.status >= 200:
            transaction.request = None
        return handled

    def forget_server(self, transaction: ServerTransaction) -> None:
        self.servers.pop(transaction.key, None)
        if self._merged.get(transaction.dialog_id) == transaction.key:
            del self._merged[transaction.dialog_id]

    def new_client(self, request: Request, flow: Flow,
                   on_response: Callable[[Response], None] | None = None) -> defer.Deferred[Response]:
        """Send `request` (its top Via must carry a fresh branch) through a new client
        transaction; the Deferred fires with the first final response."""
        owner = _ClientOwner(self, flow, on_response)
        key = client_key(request)
        if request.method == "INVITE":
            transaction: ClientTransaction = ClientInviteTransaction(
                key, owner, self.clock, request, reliable=flow.reliable,
                make_ack=lambda response: ack_for(request, response))
        else:
            transaction = ClientNonInviteTransaction(key, owner, self.clock, request, reliable=flow.reliable)
        self.clients[key] = transaction
        transaction.start()
        return owner.final

    def receive_response(self, response: Response) -> bool:
        """False when no client transaction matches (a stray or late response)."""
        transaction = self.clients.get(client_key(response))
        if transaction is None:
            return False
        transaction.receive_response(response, response.status)
        return True

    def forget_client(self, transaction: ClientTransaction) -> None:
        self.clients.pop(transaction.key, None)

    def transport_failed(self, flow: Flow) -> None:
        for transaction in [t for t in self.clients.values() if t.owner.flow is flow]:
            transaction.handle("transport_error")


def _dialog_id(request: Request) -> tuple:
    return (request.from_.tag, request.call_id, request.cseq.number, request.cseq.method)
