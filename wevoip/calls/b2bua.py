"""
The B2BUA: the thin layer between the SIP core and the call machine.

An INVITE without a To tag is a new call: the caller is authenticated (a subscriber by
digest, 407 first; a carrier by its source address); in one transaction the call is
routed, authorised by billing when it costs money, and admitted against the concurrent-
call limits; its media is anchored in the relay; then a `Call` machine takes it, whose
targets are the subscriber's registered contacts (one round, rung at once) or the gateways
(a round each). This module turns the machine's actions into SIP messages on the right
dialog and flow, and SIP messages back into the machine's events. Each side is a `Dialog`
(RFC 3261 §12) indexed by (Call-ID, our tag), so requests within either dialog find
their call.

Whatever way a call ends, its row in `active_calls` goes, its CDR is written (settled by
billing, or at no price) and its media ports go back.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass, field, replace
from typing import Any, Awaitable, Callable, Sequence

from twisted.internet import defer
from twisted.logger import Logger

from wevoip.billing.calls import CallEnd, CallRefused, authorise_call, settle_call
from wevoip.billing.decks import DeckIndexes
from wevoip.calls.dialog import Dialog, contact_of, new_call_id, passed_headers, untagged
from wevoip.calls.machine import (
    AckLeg, ByeA, ByeLeg, Call, CallRecord, CallTimers, CancelLeg, Ended, PrackLeg, Relay, RelayAck, Respond,
    RespondA, StartLeg)
from wevoip.interfaces import MediaUnavailable
from wevoip.media.sdp import SdpError
from wevoip.routing.router import Feature, Gateway, Local, Outbound, Refusal, Route, origin_of, route_from_subscriber, \
    route_from_trunk
from wevoip.sip.core import Incoming, SipCore
from wevoip.sip.errors import ParseError
from wevoip.sip.flow import Flow
from wevoip.sip.message import Request, Response
from wevoip.sip.transaction import T1
from wevoip.sip.transport import connect
from wevoip.sip.uri import Address, URI, parse_uri
from wevoip.store import calls, webhooks
from wevoip.store.errors import LimitReached, NotAllowed

log = Logger(namespace="wevoip.calls")

METHODS = ("INVITE", "ACK", "BYE", "UPDATE", "INFO", "PRACK")
LINGER = 64 * T1   # a call's dialogs stay known this long after it ends, for late messages
DISPOSITIONS = {"no answer": "no_answer"}   # the machine's words where billing spells them otherwise
REFUSED = {"no_money": (402, "Payment Required"), "no_route": (503, "Service Unavailable")}


class Refused(Exception):
    """Raised out of the routing transaction so that nothing it wrote stays."""

    def __init__(self, refusal: Refusal):
        super().__init__(refusal.reason)
        self.refusal = refusal


@dataclass(frozen=True)
class Target:
    """Where a B leg goes: its Request-URI, To and From, and the way there."""

    uri: URI
    to: Address
    from_: Address
    transport: str
    host: str
    port: int
    flow: Flow | None = None        # a registered phone's own connection
    gateway: Gateway | None = None
    identity: str | None = None     # P-Asserted-Identity for a carrier


@dataclass(frozen=True)
class CallFacts:
    """A call's record with who it belongs to: what a CDR is written from."""

    record: CallRecord
    isp_id: int
    customer_id: int
    tenant_id: int
    direction: str
    caller: str
    dialled: str
    callee_e164: str | None
    carrier_id: int | None
    gateway_id: int | None
    call_ids: tuple[str, ...]


@dataclass
class Admitted:
    route: Route
    isp_id: int
    customer_id: int
    tenant_id: int
    direction: str
    active_id: int
    carrier_id: int | None = None
    targets: list[list[Target]] = field(default_factory=list)
    reservation_id: int | None = None
    max_duration_ms: int | None = None
    subscriber_id: int | None = None
    caller_e164: str | None = None
    call_id: str = ""


class B2BUA:
    """`authenticate(request, flow)` gives sip-auth's Decision; `contacts(subscriber_id)`
    the registrar's live bindings; `rules(isp_id)` the ISP's dialplan rules; `relay` an
    `IMediaRelay` to anchor media through (None passes SDP end to end). Calls that cost
    money (out through a carrier, in to a DID) are authorised and settled by billing, with
    `indexes` (the node's rate decks) and `max_call_ms` (the longest call). A call routed
    to a feature goes to `applications` once admitted."""

    def __init__(self, reactor, core: SipCore, database, *, node: str,
                 authenticate: Callable[[Request, Flow], Awaitable[Any]],
                 contacts: Callable[[int], Sequence[Any]], rules: Callable[[int], Sequence[Any]],
                 timers: CallTimers = CallTimers(), on_record: Callable[[CallFacts], None] | None = None,
                 relay=None, indexes: DeckIndexes | None = None, max_call_ms: int = 7_200_000,
                 applications=None):
        self.reactor = reactor
        self.core = core
        self.database = database
        self.node = node
        self.authenticate = authenticate
        self.contacts = contacts
        self.rules = rules
        self.timers = timers
        self.on_record = on_record
        self.relay = relay
        self.indexes = indexes if indexes is not None else DeckIndexes()
        self.max_call_ms = max_call_ms
        self.applications = applications     # `calls.applications.Applications`: calls the server answers
        self.dialogs: dict[tuple[str, str], tuple[Session, int | None]] = {}
        self.sessions: dict[Incoming, Session] = {}
        self._releasing: set[defer.Deferred] = set()

    def install(self) -> None:
        for method in METHODS:
            self.core.register(method, self.receive)
        if "100rel" not in self.core.supported:
            self.core.supported.extend(["100rel", "timer"])

    def receive(self, incoming: Incoming):
        request = incoming.request
        if request.method == "INVITE" and request.to.tag is None:
            return defer.Deferred.fromCoroutine(self._new_call(incoming))
        self._in_dialog(incoming)
        return None

    def _in_dialog(self, incoming: Incoming) -> None:
        request = incoming.request
        found = self.dialogs.get((request.call_id, request.to.tag or ""))
        if found is None:
            if request.method != "ACK":
                incoming.respond(481)
            return
        session, leg = found
        session.received(incoming, leg)

    # -- a new call ----------------------------------------------------------------

    async def _new_call(self, incoming: Incoming) -> None:
        request = incoming.request
        incoming.on_cancel(lambda: self._cancelled(incoming))
        decision = await self.authenticate(request, incoming.flow)
        if decision.drop:
            return
        if decision.status:
            incoming.respond(decision.status, decision.reason, headers=tuple(decision.headers or ()))
            return
        try:
            admitted = await self.database.transact(self._route_and_admit, request, incoming.flow, decision)
        except Refused as refused:
            incoming.respond(refused.refusal.status, refused.refusal.reason)
            return
        except Exception:
            log.failure("routing a call failed (Call-ID {call_id})", call_id=request.call_id)
            incoming.respond(500, "Server Internal Error: routing failed")
            return
        if isinstance(admitted.route, Feature):
            self.applications.take(self, incoming, admitted)
            return
        media, offer = None, request.body
        if self.relay is not None:
            try:
                media = await self.relay.allocate(request.call_id, lambda reason: self._media_lost(incoming, reason))
                if offer and _is_sdp(request):
                    offer = await media.offer("a", offer)
            except (SdpError, MediaUnavailable) as error:
                status, reason = _media_refusal(error)
                incoming.respond(status, reason)
                self._release(admitted, media, CallEnd(ended_at=self._now(), disposition="failed", sip_code=status,
                                                       hangup_by="system"))
                return
        if incoming.final_sent:     # cancelled while it was routed
            self._release(admitted, media, CallEnd(ended_at=self._now(), disposition="cancelled", sip_code=487,
                                                   hangup_by="caller"))
            return
        session = Session(self, incoming, admitted, media, offer)
        self.sessions[incoming] = session
        session.start()

    def _media_lost(self, incoming: Incoming, reason: str) -> None:
        session = self.sessions.get(incoming)
        if session is not None:
            session.call.media_lost(reason)

    def _cancelled(self, incoming: Incoming) -> None:
        """A CANCEL before the call is routed is answered here; after, by the machine."""
        session = self.sessions.get(incoming)
        if session is None:
            incoming.respond(487)
        else:
            session.call.a_cancel()

    async def _route_and_admit(self, tx, request: Request, flow: Flow, decision) -> Admitted:
        """Route, authorise (billing) and admit (limits) in one transaction; a refusal at any
        step is raised, so no reservation or active call is left behind."""
        dialled = request.uri.user or ""
        caller = decision.subscriber
        origin = None
        if caller is not None:
            origin = await origin_of(tx, caller.isp_id, caller.subscriber_id)
            code = self.applications.code(dialled) if self.applications is not None else None
            route = Feature(origin.isp_id, origin.customer_id, origin.tenant_id, code, None) if code else \
                await route_from_subscriber(tx, origin, dialled, self.rules(caller.isp_id))
            payer = (origin.isp_id, origin.customer_id, origin.tenant_id)
        else:
            isp_id, route = await route_from_trunk(tx, flow.remote[0], dialled)
            payer = (isp_id, getattr(route, "customer_id", None), getattr(route, "tenant_id", None))
        if isinstance(route, Refusal):
            raise Refused(route)
        if isinstance(route, Feature) and (self.applications is None or not self.applications.serves(route.feature)):
            raise Refused(Refusal(480, f"Temporarily Unavailable: no application serves '{route.feature}'"))
        isp_id, customer_id, tenant_id = payer
        authorisation = await self._authorise(tx, request, isp_id, customer_id, caller, route)
        if authorisation is not None and isinstance(route, Outbound):
            route = await route_from_subscriber(tx, origin, dialled, self.rules(isp_id),
                                                carrier_order=authorisation.carriers)
            if isinstance(route, Refusal):
                raise Refused(route)
        targets = [] if isinstance(route, Feature) else self._targets(request, route, flow)
        if not targets and not isinstance(route, Feature):
            raise Refused(Refusal(480, "Temporarily Unavailable: the called subscriber has no registered contact"))
        direction = "outbound" if isinstance(route, Outbound) else "internal" if caller else "inbound"
        carrier_id = route.gateways[0].carrier_id if isinstance(route, Outbound) else \
            None if caller else decision.trunk.carrier_id
        try:
            row = await calls.admit_call(tx, isp_id, customer_id=customer_id, tenant_id=tenant_id,
                                         call_id=request.call_id, node=self.node, direction=direction,
                                         carrier_id=carrier_id)
        except LimitReached as error:
            raise Refused(Refusal(503, f"Service Unavailable: {error.limit} of {error.value} reached")) from None
        except NotAllowed as error:
            raise Refused(Refusal(403, f"Forbidden: {error.reason}")) from None
        return Admitted(route, isp_id, customer_id, tenant_id, direction, row["id"], carrier_id, targets,
                        authorisation.reservation_id if authorisation else None,
                        authorisation.max_duration_ms if authorisation else None,
                        caller.subscriber_id if caller else None, origin.e164 if origin else None, request.call_id)

    async def _authorise(self, tx, request: Request, isp_id: int, customer_id: int, caller, route: Route):
        """Billing's word on a call that costs money: out through a carrier, or in to a DID.
        On-net calls between subscribers are free and not authorised."""
        did_id = None
        if isinstance(route, Outbound):
            direction = "outbound"
        elif caller is None:
            if route.did_id is None:
                return None
            direction, did_id = "inbound", route.did_id
        else:
            return None
        try:
            return await authorise_call(tx, isp_id, customer_id=customer_id, destination=route.e164,
                                        call_id=request.call_id, node=self.node, indexes=self.indexes, at=self._now(),
                                        subscriber_id=caller.subscriber_id if caller else None,
                                        direction=direction, did_id=did_id, max_call_ms=self.max_call_ms)
        except CallRefused as refused:
            status, phrase = REFUSED.get(refused.reason, (403, "Forbidden"))
            raise Refused(Refusal(status, f"{phrase}: {refused.message}")) from None

    def _targets(self, request: Request, route: Route, flow: Flow) -> list[list[Target]]:
        local = self.core.sent_by(flow).rpartition(":")[0]     # our address as the peer sees it
        if isinstance(route, Local):
            caller = untagged(request.from_)
            found = []
            for binding in self.contacts(route.subscriber_id):
                try:
                    uri = parse_uri(binding.contact)
                except ParseError:
                    continue
                host, _, port = binding.source.rpartition(":")
                found.append(Target(uri, untagged(request.to), caller, binding.transport,
                                    host.strip("[]"), int(port or 5060), flow=binding.flow))
            return [found] if found else []
        rounds = []
        for gateway in route.gateways:
            host = f"[{gateway.host}]" if ":" in gateway.host else gateway.host
            uri = parse_uri(f"sip:{gateway.number}@{host}:{gateway.port}")
            shown = route.caller_id or "anonymous"
            identity = f"<sip:{shown}@{local};user=phone>"
            rounds.append([Target(uri, Address(uri), Address(parse_uri(f"sip:{shown}@{local}")),
                                  gateway.transport, gateway.host, gateway.port, gateway=gateway,
                                  identity=identity if route.caller_id else None)])
        return rounds

    def _release(self, admitted: Admitted, media, end: CallEnd, after: defer.Deferred | None = None,
                 started_at: datetime.datetime | None = None) -> None:
        """Every end of a call comes here: its row in active_calls goes, and in the same
        transaction its reservation is settled into a CDR and a charge (a free call, on-net
        or to a subscriber's own number, gets its CDR at no price); its ports go back.
        `after`: what must be written first (the answer's mark). Should the record fail,
        the active call still goes, so limits never keep a call that ended."""
        async def work(tx):
            await calls.end_call(tx, admitted.isp_id, admitted.active_id)
            if admitted.reservation_id is not None:
                cdr = await settle_call(tx, admitted.isp_id, admitted.reservation_id, end, indexes=self.indexes)
            elif started_at is not None:
                cdr = await calls.insert_cdr(tx, admitted.isp_id, free_record(admitted, end, started_at, self.node))
            else:
                return
            await announce_end(tx, admitted.isp_id, cdr)

        def unrecorded(failure):
            log.failure("recording a call failed; it is ended without its record", failure)
            return defer.Deferred.fromCoroutine(
                self.database.transact(calls.end_call, admitted.isp_id, admitted.active_id))

        done = (after or defer.succeed(None)).addBoth(
            lambda _: defer.Deferred.fromCoroutine(self.database.transact(work)))
        done.addErrback(unrecorded)
        done.addErrback(lambda failure: log.failure("ending an active call failed", failure))
        if media is not None:
            done = defer.gatherResults([done, media.release()])
            done.addErrback(lambda failure: log.failure("releasing media failed", failure))
        self._releasing.add(done)
        done.addBoth(lambda _: self._releasing.discard(done))

    def _now(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self.reactor.seconds(), datetime.timezone.utc)

    def answered(self, admitted: Admitted) -> defer.Deferred:
        """Billing bills a call the node never ended up to its last heartbeat, from here."""
        if admitted.reservation_id is None:
            return defer.succeed(None)
        done = defer.Deferred.fromCoroutine(self.database.alone(
            calls.mark_answered, admitted.isp_id, admitted.reservation_id, self._now()))
        return done.addErrback(lambda failure: log.failure("marking a call answered failed", failure))

    def settled(self) -> defer.Deferred:
        """Fires when every ended call's row is gone (for a clean stop, and for tests)."""
        return defer.DeferredList(list(self._releasing))

    def forget(self, session: Session) -> None:
        self.sessions.pop(session.incoming, None)
        for key in session.keys:
            self.dialogs.pop(key, None)

    # -- flows ---------------------------------------------------------------------

    async def flow_to(self, target: Target) -> Flow | None:
        """A phone's own connection or NAT pinhole; a gateway's address (resolved if a name),
        over a TCP or TLS connection opened (or reused) for it, TLS checked against the
        gateway's name. None when there is no way: the leg counts as timed out."""
        if target.flow is not None and not target.flow.closed:
            return target.flow
        host = target.host
        try:
            ipaddress.ip_address(host)
        except ValueError:
            try:
                host = await self.reactor.resolve(host)
            except Exception:
                return None
        if target.gateway is not None and target.transport in ("tcp", "tls"):
            try:
                return await connect(self.reactor, self.core, self.core.flows, target.transport, host, target.port,
                                     server_name=target.host, timeout=self.timers.progress or 10.0)
            except Exception as error:
                log.info("no {transport} connection to gateway {host}:{port}: {error}", transport=target.transport,
                         host=target.host, port=target.port, error=error)
                return None
        return self.core.flows.find(target.transport, host, target.port)


def session_expires(message: Response | Request | None) -> int | None:
    value = message.headers.get("Session-Expires") if message is not None else None
    if not value:
        return None
    head = value.split(";", 1)[0].strip()
    return int(head) if head.isdigit() and 0 < int(head) < 2 ** 31 else None


def _rack(request: Request) -> int | None:
    parts = (request.headers.get("RAck") or "").split()
    return int(parts[0]) if parts and parts[0].isdigit() else None


def _is_reliable(response: Response) -> bool:
    require = ",".join(response.headers.get_all("Require")).lower()
    return "100rel" in require and 100 < response.status < 200 and (response.headers.get("RSeq") or "").isdigit()


def _supports_100rel(request: Request) -> bool:
    values = ",".join(request.headers.get_all("Supported") + request.headers.get_all("Require")).lower()
    return "100rel" in [item.strip() for item in values.split(",")]


def _media_refusal(error: Exception) -> tuple[int, str]:
    """488 for a description the relay cannot read, 503 when it has no room for the call."""
    if isinstance(error, SdpError):
        return 488, f"Not Acceptable Here: {error}"
    return 503, f"Service Unavailable: {error}"


def _is_sdp(message: Request | Response) -> bool:
    return (message.headers.get("Content-Type") or "").split(";")[0].strip().lower() == "application/sdp"


def _contact(core: SipCore, flow: Flow) -> str:
    transport = "" if flow.transport == "udp" else f";transport={flow.transport}"
    return f"<sip:b2bua@{core.sent_by(flow)}{transport}>"


@dataclass
class BLeg:
    target: Target
    dialog: Dialog
    invite: Request | None = None
    flow: Flow | None = None
    ack: Request | None = None
    offer: bytes | None = None      # the offer in WebRTC's terms, for a browser


class Session:
    """One call: the A side's INVITE and dialog, the B legs, and the machine between them."""

    def __init__(self, b2bua: B2BUA, incoming: Incoming, admitted: Admitted, media=None, offer: bytes = b""):
        self.b2bua = b2bua
        self.media = media
        self.offer = offer
        self._order: defer.Deferred = defer.succeed(None)
        self.core = b2bua.core
        self.incoming = incoming
        self.admitted = admitted
        invite = incoming.request
        self.a_flow = incoming.flow
        self.a_dialog = Dialog.as_uas(invite, incoming.to_tag, _contact(self.core, incoming.flow))
        self.legs: list[BLeg] = []
        self.keys: list[tuple[str, str]] = [(invite.call_id, incoming.to_tag)]
        self._a_sent: dict[tuple[int, int | None], Response] = {}
        self._relayed: dict[Any, tuple[Dialog, Flow, int]] = {}
        self._offered: dict[Any, bool] = {}    # a relayed request carried SDP: its answer's is an answer
        timers = b2bua.timers
        if admitted.max_duration_ms is not None:
            longest = admitted.max_duration_ms / 1000
            timers = replace(timers, max_duration=min(timers.max_duration or longest, longest))
        self.call = Call(self, b2bua.reactor, admitted.targets, timers=timers, a_100rel=_supports_100rel(invite))
        self._marked: defer.Deferred = defer.succeed(None)
        b2bua.dialogs[self.keys[0]] = (self, None)

    def start(self) -> None:
        self.call.start()

    # -- messages in ---------------------------------------------------------------

    def received(self, incoming: Incoming, leg: int | None) -> None:
        request = incoming.request
        dialog = self.a_dialog if leg is None else self.legs[leg].dialog
        if not dialog.accepts(request):
            incoming.respond(500, "Server Internal Error: CSeq out of order")
            return
        if request.method in ("INVITE", "UPDATE"):
            dialog.refresh_target(request)
        side = "a" if leg is None else "b"
        kind = "answer" if request.method == "ACK" else "offer"
        self._in_order(lambda: self._anchor(side, request, kind, incoming).addCallback(
            lambda anchored: self._received(incoming, leg) if anchored else None))

    def _received(self, incoming: Incoming, leg: int | None) -> None:
        request = incoming.request
        method, sdp = request.method, bool(request.body)
        call = self.call
        if method == "ACK":
            call.a_ack(request) if leg is None else call.b_ack(leg, request)
            return
        if method == "BYE":
            known = call.a_bye(incoming, request) if leg is None else call.b_bye(leg, incoming, request)
        elif leg is None:
            known = call.a_request(incoming, method, request, sdp=sdp, rack=_rack(request))
        else:
            known = call.b_request(leg, incoming, method, request, sdp=sdp)
        if not known:
            incoming.respond(481)

    def _in_order(self, work: Callable[[], Any]) -> None:
        """Messages reach the machine in the order they came, though rewriting SDP through
        the relay may take a while; without a relay this runs at once."""
        self._order.addCallback(lambda _: work())
        self._order.addErrback(lambda failure: log.failure("call {call_id} failed on a message", failure,
                                                           call_id=self.incoming.request.call_id))

    def _anchor(self, side: str, message: Request | Response, kind: str,
                incoming: Incoming | None = None) -> defer.Deferred:
        """Point the other side at the relay: the message's SDP goes through the session
        as an offer or an answer from `side`, and its body is replaced. Fires with whether
        the message may go on; a request whose offer the relay refuses gets 488 here."""
        if self.media is None or not message.body or not _is_sdp(message):
            return defer.succeed(True)
        rewrite = self.media.offer if kind == "offer" else self.media.answer

        def rewritten(body: bytes) -> bool:
            message.body = body
            return True

        def refused(failure) -> bool:
            failure.trap(SdpError, MediaUnavailable)
            if incoming is not None and message.method != "ACK":
                incoming.respond(*_media_refusal(failure.value))
                return False
            log.warn("call {call_id}: SDP from {side} passed unanchored: {error}",
                     call_id=self.incoming.request.call_id, side=side, error=failure.getErrorMessage())
            return True
        return defer.maybeDeferred(rewrite, side, message.body).addCallbacks(rewritten, refused)

    def _b_invite_response(self, leg: int, response: Response) -> None:
        self.legs[leg].dialog.learn(response)
        self._in_order(lambda: self._b_invite_anchored(leg, response))

    def _b_invite_anchored(self, leg: int, response: Response) -> defer.Deferred | None:
        """Only the SDP that reaches A goes through the relay: a 2xx while ringing, and the
        provisionals of the leg whose early media A has (or the first to send some)."""
        call = self.call
        counts = (200 <= response.status < 300 and call.winner is None) or \
            (response.status < 200 and call.early_leg in (None, leg))
        if not counts:
            self._b_invite_event(leg, response)
            return None
        kind = "answer" if self.offer else "offer"
        return self._anchor("b", response, kind).addCallback(lambda _: self._b_invite_event(leg, response))

    def _b_invite_event(self, leg: int, response: Response) -> None:
        rseq = response.headers.get("RSeq")
        reliable = _is_reliable(response)
        self.call.b_invite_response(leg, response.status, response, sdp=bool(response.body), reliable=reliable,
                                    rseq=int(rseq) if reliable else None,
                                    session_expires=session_expires(response))

    # -- actions out ---------------------------------------------------------------

    def perform(self, action) -> None:
        handler = getattr(self, f"_do_{type(action).__name__}")
        handler(action)

    def _do_StartLeg(self, action: StartLeg) -> None:  # noqa: N802 (named for the action)
        target = action.target
        invite = self.incoming.request
        dialog = Dialog.as_uac(new_call_id(self.core.sent_by(self.a_flow).rpartition(":")[0].strip("[]")), target.from_, target.to, target.uri, "")
        leg = BLeg(target, dialog)
        self.legs.append(leg)
        key = (dialog.call_id, dialog.local_tag)
        self.keys.append(key)
        self.b2bua.dialogs[key] = (self, action.leg)
        d = defer.Deferred.fromCoroutine(self.b2bua.flow_to(target))
        d.addCallback(lambda flow: defer.Deferred.fromCoroutine(self._browser_offer(flow, action.leg)))
        d.addCallback(self._send_invite, action.leg, invite)
        d.addErrback(self._leg_failed, action.leg)

    async def _browser_offer(self, flow: Flow | None, index: int) -> Flow | None:
        """A phone on a WebSocket is a browser: the relay gives it the offer in WebRTC's terms
        (`offer_to_browser`, when the relay bridges WebRTC). One it cannot bridge fails the leg."""
        to_browser = getattr(self.media, "offer_to_browser", None)
        if flow is None or flow.transport not in ("ws", "wss") or to_browser is None or not self.offer:
            return flow
        try:
            self.legs[index].offer = await to_browser("b", self.offer)
        except (SdpError, MediaUnavailable) as error:
            log.info("no offer for browser leg {leg} of {call_id}: {error}", leg=index,
                     call_id=self.incoming.request.call_id, error=error)
            return None
        return flow

    def _send_invite(self, flow: Flow | None, index: int, invite: Request) -> None:
        if flow is None:
            self.call.b_timeout(index)
            return
        leg = self.legs[index]
        leg.flow = flow
        leg.dialog.contact = _contact(self.core, flow)
        headers = passed_headers(invite)
        if leg.target.identity:
            headers += (("P-Asserted-Identity", leg.target.identity),)
        request = leg.dialog.invite(body=self.offer if leg.offer is None else leg.offer, headers=headers)
        forwards = invite.max_forwards
        request.headers.set("Max-Forwards", str(max(0, (70 if forwards is None else forwards) - 1)))
        leg.invite = request
        d = self.core.request(request, flow, on_response=lambda response: self._b_invite_response(index, response))
        d.addCallbacks(lambda response: self._b_invite_response(index, response),
                       lambda failure: self.call.b_timeout(index))
        d.addErrback(self._leg_failed, index)

    def _leg_failed(self, failure, index: int) -> None:
        log.failure("B leg {leg} of {call_id} failed", failure, leg=index, call_id=self.incoming.request.call_id)

    def _do_CancelLeg(self, action: CancelLeg) -> None:  # noqa: N802
        leg = self.legs[action.leg]
        if leg.invite is None or leg.flow is None:
            return
        cancel = Request("CANCEL", leg.invite.uri, leg.invite.headers.copy())
        for name in ("Contact", "Content-Type", "Supported", "Require", "Session-Expires", "Min-SE", "Allow",
                     "P-Asserted-Identity", "Content-Disposition"):
            cancel.headers.remove(name)
        cancel.headers.set("CSeq", f"{leg.invite.cseq.number} CANCEL")
        cancel.headers.set("To", leg.invite.headers.get("To"))
        self.core.transactions.new_client(cancel, leg.flow).addErrback(lambda _: None)

    def _do_AckLeg(self, action: AckLeg) -> None:  # noqa: N802
        leg = self.legs[action.leg]
        if leg.ack is None or action.message is not None:
            body, headers = b"", ()
            if action.message is not None and action.message.body:
                body, headers = action.message.body, passed_headers(action.message, names=("Content-Type",))
            leg.ack = self._stateless(leg.dialog.ack(leg.dialog.invite_cseq, body=body, headers=headers), leg.flow)
        self.core.send(leg.ack, leg.flow)

    def _stateless(self, request: Request, flow: Flow) -> Request:
        request.headers.prepend("Via", f"SIP/2.0/{flow.via_transport} {self.core.sent_by(flow)};"
                                       f"branch={self.core.new_branch()};rport")
        return request

    def _do_PrackLeg(self, action: PrackLeg) -> None:  # noqa: N802
        leg = self.legs[action.leg]
        prack = leg.dialog.request("PRACK", headers=(("RAck", f"{action.rseq} {leg.dialog.invite_cseq} INVITE"),))
        self.core.request(prack, leg.flow).addErrback(lambda _: None)

    def _do_ByeLeg(self, action: ByeLeg) -> None:  # noqa: N802
        leg = self.legs[action.leg]
        if leg.flow is not None:
            self.core.request(leg.dialog.request("BYE"), leg.flow).addErrback(lambda _: None)

    def _do_ByeA(self, action: ByeA) -> None:  # noqa: N802
        self.core.request(self.a_dialog.request("BYE"), self._a_flow()).addErrback(lambda _: None)

    def _a_flow(self) -> Flow:
        flow = self.a_flow
        if flow.closed:
            flow = self.core.flows.find(flow.transport, *flow.remote) or flow
        return flow

    def _do_RespondA(self, action: RespondA) -> None:  # noqa: N802
        """Resent responses (2xx until the ACK, reliable provisionals until PRACK) go
        straight to the INVITE's transaction, which sends them again."""
        key = (action.status, action.rseq)
        again = self._a_sent.get(key) if action.status >= 200 or action.reliable else None
        if again is not None:
            self.core.transactions.respond(self.incoming.transaction, again)
            return
        message = action.message
        reason = action.reason or (message.reason if message is not None else None)
        headers: tuple[tuple[str, str], ...] = ()
        if message is not None:
            names = ("Session-Expires", "Require", "Supported", "Allow") if action.status >= 200 else ("Allow",)
            headers = passed_headers(message, names=names)
            if action.sdp and message.body:
                headers += passed_headers(message, names=("Content-Type", "Content-Disposition"))
        if action.reliable:
            headers += (("Require", "100rel"), ("RSeq", str(action.rseq)))
        if 100 < action.status < 300:
            headers += (("Contact", self.a_dialog.contact),)
        body = message.body if (message is not None and action.sdp) else b""
        response = self.incoming.response(action.status, reason, headers=headers, body=body)
        if action.status >= 200 or action.reliable:
            self._a_sent[key] = response
        if 200 <= action.status < 300:
            self._marked = self.b2bua.answered(self.admitted)
        self.incoming.send(response)

    def _do_Respond(self, action: Respond) -> None:  # noqa: N802
        incoming: Incoming = action.key
        message = action.message
        headers: tuple[tuple[str, str], ...] = ()
        body = b""
        if message is not None:
            headers = passed_headers(message)
            body = message.body
        dialog = self.a_dialog if action.side == "a" else self.legs[action.leg].dialog
        if incoming.request.method in ("INVITE", "UPDATE") and 100 < action.status < 300:
            headers += (("Contact", dialog.contact),)
        reason = action.reason or (message.reason if message is not None else None)
        response = incoming.response(action.status, reason, headers=headers, body=body)
        if incoming.final_sent and 200 <= action.status < 300 and incoming.transaction is not None:
            self.core.transactions.respond(incoming.transaction, response)   # a re-INVITE's 2xx again
            return
        incoming.send(response)

    def _do_Relay(self, action: Relay) -> None:  # noqa: N802
        if action.to == "a":
            dialog, flow = self.a_dialog, self._a_flow()
        else:
            leg = self.legs[action.leg]
            dialog, flow = leg.dialog, leg.flow
        message: Request = action.message
        headers = passed_headers(message)
        if action.method == "PRACK":
            headers += (("RAck", f"{action.rseq} {dialog.invite_cseq} INVITE"),)
        request = dialog.request(action.method, body=message.body, headers=headers)
        self._relayed[action.key] = (dialog, flow, request.cseq.number)
        self._offered[action.key] = bool(message.body) and _is_sdp(message)
        feed = self._feed(action)
        d = self.core.request(request, flow, on_response=feed)
        d.addCallbacks(feed, lambda failure: feed(None))
        d.addErrback(self._leg_failed, action.leg)

    def _feed(self, action: Relay) -> Callable[[Response | None], None]:
        def feed(response: Response | None) -> None:
            if response is None:
                self._in_order(lambda: fed(None))
                return
            kind = "answer" if self._offered.get(action.key) else "offer"
            self._in_order(lambda: self._anchor(action.to, response, kind).addCallback(lambda _: fed(response)))

        def fed(response: Response | None) -> None:
            status = 408 if response is None else response.status
            if action.to == "a":
                self.call.a_response(action.key, status, response, session_expires=session_expires(response))
            else:
                self.call.b_response(action.leg, action.key, status, response,
                                     session_expires=session_expires(response))
        return feed

    def _do_RelayAck(self, action: RelayAck) -> None:  # noqa: N802
        relayed = self._relayed.pop(action.key, None)
        if relayed is None:
            return
        dialog, flow, cseq = relayed
        message = action.message
        body = message.body if message is not None else b""
        headers = passed_headers(message, names=("Content-Type",)) if body else ()
        self.core.send(self._stateless(dialog.ack(cseq, body=body, headers=headers), flow), flow)

    def _do_Ended(self, action: Ended) -> None:  # noqa: N802
        admitted = self.admitted
        b2bua = self.b2bua
        record = action.record
        gateway = None
        if record.answered_leg is not None:
            gateway = self.legs[record.answered_leg].target.gateway
        elif self.legs:
            gateway = self.legs[-1].target.gateway
        invite = self.incoming.request
        route = admitted.route
        facts = CallFacts(record, admitted.isp_id, admitted.customer_id, admitted.tenant_id, admitted.direction,
                          str(invite.from_.uri), invite.uri.user or "", getattr(route, "e164", None),
                          gateway.carrier_id if gateway else admitted.carrier_id,
                          gateway.gateway_id if gateway else None,
                          (invite.call_id, *(leg.dialog.call_id for leg in self.legs)))
        end = CallEnd(ended_at=_at(record.end_ms), disposition=DISPOSITIONS.get(record.disposition, record.disposition),
                      answered_at=_at(record.answer_ms) if record.answer_ms is not None else None,
                      sip_code=record.status, hangup_by=record.hung_up_by,
                      b_call_id=self.legs[record.answered_leg].dialog.call_id if record.answered_leg is not None
                      else None, carrier_id=facts.carrier_id, gateway_id=facts.gateway_id,
                      tenant_id=admitted.tenant_id, caller_dialled=(invite.from_.uri.user or "")[:64],
                      caller_e164=admitted.caller_e164, callee_dialled=facts.dialled[:64])
        b2bua._release(admitted, self.media, end, after=self._marked, started_at=_at(record.start_ms))
        log.info("call {call_id} ended: {disposition} {status}, hung up by {by}", call_id=invite.call_id,
                 disposition=record.disposition, status=record.status, by=record.hung_up_by)
        if b2bua.on_record is not None:
            try:
                b2bua.on_record(facts)
            except Exception:
                log.failure("recording call {call_id} failed", call_id=invite.call_id)
        b2bua.reactor.callLater(LINGER, b2bua.forget, self)


async def announce_end(tx, isp_id: int, cdr: dict) -> None:
    """The ISP's `call.ended` webhook, from the record just written, in its transaction."""
    await webhooks.call_ended(
        tx, isp_id, call_id=cdr["a_call_id"], customer_id=cdr["customer_id"], tenant_id=cdr["tenant_id"],
        caller=cdr["caller_e164"] or cdr["caller_dialled"] or "", callee=cdr["callee_e164"] or cdr["callee_dialled"] or "",
        direction=cdr["direction"], started_at=cdr["started_at"], answered_at=cdr["answered_at"],
        ended_at=cdr["ended_at"], duration_ms=cdr["duration_ms"], end_reason=cdr["disposition"],
        charge=cdr["price"])


def free_record(admitted: Admitted, end: CallEnd, started_at: datetime.datetime, node: str) -> dict:
    """The CDR of a call billing does not price: on-net, or in to a subscriber's own number."""
    ended_at = max(end.ended_at, started_at)
    talk_ms = int((ended_at - end.answered_at).total_seconds() * 1000) if end.answered_at else 0
    return {"customer_id": admitted.customer_id, "tenant_id": admitted.tenant_id,
            "subscriber_id": admitted.subscriber_id, "carrier_id": end.carrier_id, "node": node,
            "direction": admitted.direction, "caller_dialled": end.caller_dialled, "caller_e164": end.caller_e164,
            "callee_dialled": end.callee_dialled, "callee_e164": getattr(admitted.route, "e164", None),
            "started_at": started_at, "answered_at": end.answered_at, "ended_at": ended_at,
            "duration_ms": int((ended_at - started_at).total_seconds() * 1000), "talk_ms": max(talk_ms, 0),
            "disposition": end.disposition, "sip_code": end.sip_code, "hangup_by": end.hangup_by,
            "a_call_id": admitted.call_id, "b_call_id": end.b_call_id}


def _at(ms: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
