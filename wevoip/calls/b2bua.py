"""
The B2BUA: the thin layer between the SIP core and the call machine.

An INVITE without a To tag is a new call: the caller is authenticated (a subscriber by
digest, 407 first; a carrier by its source address); in one transaction the call is
routed, authorised by billing when it costs money, and admitted against the concurrent-
call limits; its media is anchored in the relay; then a `Call` machine takes it, whose
targets are the subscriber's registered contacts (one round, rung at once) or the gateways
(a round each), and a `Session` (session.py) carries the call from there. Each side of a
call is a `Dialog` (RFC 3261 §12) indexed here by (Call-ID, our tag), so requests within
either dialog find their call.

Whatever way a call ends, its row in `active_calls` goes, its CDR is written (settled by
billing, or at no price) and its media ports go back.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import replace
from typing import Any, Awaitable, Callable, Sequence

from twisted.internet import defer
from twisted.logger import Logger

from wevoip.billing.calls import Assessment, CallEnd, CallRefused, FraudLock, FraudLocked, assess_call, \
    write_fraud_lock
from wevoip.billing.decks import DeckIndexes
from wevoip.calls.dialog import untagged
from wevoip.calls.facts import Admitted, CallFacts, Durable, Target, media_flow
from wevoip.calls.machine import CallTimers
from wevoip.calls.messages import is_sdp, media_refusal, too_brief
from wevoip.calls.records import CallRecords, PendingRecord
from wevoip.calls.refusals import Attempt, Refusals
from wevoip.calls.session import Session
from wevoip.interfaces import MediaUnavailable
from wevoip.media.sdp import SdpError
from wevoip.routing.cache import RoutingCache
from wevoip.routing.router import Feature, Gateway, Local, Outbound, Refusal, Route, origin_of, \
    route_from_subscriber, route_from_trunk
from wevoip.sip.core import Incoming, SipCore
from wevoip.sip.errors import ParseError
from wevoip.sip.flow import Flow
from wevoip.sip.message import Request
from wevoip.sip.transport import connect
from wevoip.sip.uri import Address, parse_uri, websocket_uri
from wevoip.store import calls
from wevoip.store.errors import LimitReached, NotAllowed, NotFound, StoreUnavailable, quiet_when_unavailable

log = Logger(namespace="wevoip.calls")

METHODS = ("INVITE", "ACK", "BYE", "UPDATE", "INFO", "PRACK")
REFUSED = {"no_money": (402, "Payment Required"), "no_route": (503, "Service Unavailable")}


class Refused(Exception):
    """Raised out of the routing transaction so that nothing it wrote stays; `fraud_lock`:
    what the fraud guard locks, written after the refusal in a transaction of its own."""

    def __init__(self, refusal: Refusal, fraud_lock: FraudLock | None = None):
        super().__init__(refusal.reason)
        self.refusal = refusal
        self.fraud_lock = fraud_lock


class B2BUA:
    """`authenticate(request, flow)` gives sip-auth's Decision; `contacts(subscriber_id)`
    the registrar's live bindings; `rules(isp_id)` the ISP's dialplan rules; `relay` an
    `IMediaRelay` to anchor media through (None passes SDP end to end). Calls that cost
    money (out through a carrier, in to a DID) are authorised and settled by billing, with
    `indexes` (the node's rate decks) and `max_call_ms` (the longest call); `routes` is
    the node's routing cache (kept fresh once attached to its notifier). A call routed to
    a feature goes to `applications` once admitted."""

    def __init__(self, reactor, core: SipCore, database, *, node: str,
                 authenticate: Callable[[Request, Flow], Awaitable[Any]],
                 contacts: Callable[[int], Sequence[Any]], rules: Callable[[int], Sequence[Any]],
                 timers: CallTimers = CallTimers(), on_record: Callable[[CallFacts], None] | None = None,
                 relay=None, indexes: DeckIndexes | None = None, max_call_ms: int = 7_200_000,
                 applications=None, edge=None, routes: RoutingCache | None = None, locator=None,
                 records: CallRecords | None = None, refusals: Refusals | None = None):
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
        self.routes = routes if routes is not None else RoutingCache()
        self.max_call_ms = max_call_ms
        self.applications = applications     # `calls.applications.Applications`: calls the server answers
        self.edge = edge                     # `sip.edge.EdgeProxy`: phones connected to other nodes
        self.locator = locator               # `sip.locate.Locator`: gateways given by DNS name (RFC 3263)
        # where ended calls' records go: a node's keeps in its data directory those the
        # database does not take; one built here keeps them in memory
        self.records = records if records is not None else CallRecords(reactor, database, folder=None,
                                                                       indexes=self.indexes)
        self.refusals = refusals if refusals is not None else Refusals(reactor)
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
            self.refusals.refused_anonymous()
            return
        if decision.status:
            incoming.respond(decision.status, decision.reason, headers=tuple(decision.headers or ()))
            if decision.status not in (401, 407):   # a challenge is the digest's first step, no refusal
                self.refusals.refused_anonymous()
            return
        attempt = _attempt(request, incoming.flow, decision)
        if too_brief(request, self.timers.min_se):
            incoming.respond(422, "Session Interval Too Small", headers=(("Min-SE", str(self.timers.min_se)),))
            self._refused(attempt, 422, "Session Interval Too Small")
            return
        try:
            admitted, committed = await self.database.decide(self._route_and_admit, request, incoming.flow, decision,
                                                             attempt)
        except Refused as refused:
            incoming.respond(refused.refusal.status, refused.refusal.reason)
            self._refused(attempt, refused.refusal.status, refused.refusal.reason)
            if refused.fraud_lock is not None:
                self._write_fraud_lock(refused.fraud_lock, request.call_id)
            return
        except StoreUnavailable as error:
            incoming.respond(503, "Service Unavailable: database unavailable",
                             headers=(("Retry-After", str(error.retry_after)),))
            return
        except Exception:
            log.failure("routing a call failed (Call-ID {call_id})", call_id=request.call_id)
            incoming.respond(500, "Server Internal Error: routing failed")
            self._refused(attempt, 500, "Server Internal Error: routing failed")
            return
        admitted.durable = Durable(committed)
        if isinstance(admitted.route, Feature):
            if await admitted.durable.wait():
                self.applications.take(self, incoming, admitted)
            else:
                incoming.respond(500, "Server Internal Error: the call's admission could not be written")
            return
        media, offer = None, request.body
        if self.relay is not None:
            try:
                media = await self.relay.allocate(request.call_id, lambda reason, failed_setup=False:
                                                  self._media_lost(incoming, reason, failed_setup))
                if offer and is_sdp(request):
                    offer = await media.offer("a", offer)
            except (SdpError, MediaUnavailable) as error:
                status, reason = media_refusal(error)
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
        admitted.durable.wait().addCallback(lambda ok: ok or session.call.store_lost("not committed"))

    def _media_lost(self, incoming: Incoming, reason: str, failed_setup: bool) -> None:
        session = self.sessions.get(incoming)
        if session is None:
            return
        if failed_setup:
            session.call.media_failed(reason)
        else:
            session.call.media_lost(reason)

    def _cancelled(self, incoming: Incoming) -> None:
        """A CANCEL before the call is routed is answered here; after, by the machine."""
        session = self.sessions.get(incoming)
        if session is None:
            incoming.respond(487)
        else:
            session.call.a_cancel()

    def _refused(self, attempt: Attempt, status: int, reason: str) -> None:
        """A call refused before admission: its log line, and its record when it named an
        ISP (within the record rate, `refusals.Refusals`); a record that cannot be written
        is only logged (it carries no money)."""
        if not self.refusals.to_record(attempt, status, reason):
            return
        written = defer.Deferred.fromCoroutine(self.database.alone(
            calls.insert_refusal, attempt.isp_id, call_id=attempt.call_id, node=self.node,
            direction=attempt.direction, sip_code=status, reason=reason, at=self._now(),
            customer_id=attempt.customer_id, tenant_id=attempt.tenant_id, subscriber_id=attempt.subscriber_id,
            carrier_id=attempt.carrier_id, caller_dialled=attempt.caller_dialled, caller_e164=attempt.caller_e164,
            callee_dialled=attempt.dialled))
        written.addErrback(lambda failure: log.failure("recording refused call {call_id} failed", failure,
                                                       call_id=attempt.call_id))
        self._releasing.add(written)
        written.addBoth(lambda _: self._releasing.discard(written))

    async def _route_and_admit(self, tx, request: Request, flow: Flow, decision, attempt: Attempt) -> Admitted:
        """Route, assess (billing) and admit (limits) in one transaction; a refusal at any
        step is raised, so no reservation or active call is left behind. Routing reads the
        node's cache; billing reads the locked account in one round trip; the admission,
        with billing's reservation, is one more and carries the COMMIT (a free call's is
        the transaction's only statement)."""
        dialled = request.uri.user or ""
        caller = decision.subscriber
        origin = None
        if caller is not None:
            origin = await origin_of(tx, caller.isp_id, caller.subscriber_id, cache=self.routes)
            code = self.applications.code(dialled) if self.applications is not None else None
            route = Feature(origin.isp_id, origin.customer_id, origin.tenant_id, code, None) if code else \
                await route_from_subscriber(tx, origin, dialled, self.rules(caller.isp_id), cache=self.routes)
            payer = (origin.isp_id, origin.customer_id, origin.tenant_id)
            attempt.customer_id, attempt.caller_e164 = origin.customer_id, origin.e164
            if isinstance(route, Outbound):
                attempt.direction = "outbound"
        else:
            isp_id, route = await route_from_trunk(tx, flow.remote[0], dialled, cache=self.routes)
            payer = (isp_id, getattr(route, "customer_id", None), getattr(route, "tenant_id", None))
            if isp_id is not None:
                attempt.isp_id, attempt.customer_id, attempt.tenant_id = payer
        if isinstance(route, Refusal):
            raise Refused(route)
        if isinstance(route, Feature) and (self.applications is None or not self.applications.serves(route.feature)):
            raise Refused(Refusal(480, f"Temporarily Unavailable: no application serves '{route.feature}'"))
        isp_id, customer_id, tenant_id = payer
        assessment = await self._assess(tx, isp_id, customer_id, caller, route)
        if assessment is not None and isinstance(route, Outbound):
            route = await route_from_subscriber(tx, origin, dialled, self.rules(isp_id),
                                                carrier_order=assessment.carriers, cache=self.routes)
            if isinstance(route, Refusal):
                raise Refused(route)
        targets = [] if isinstance(route, Feature) else self._targets(request, route, flow)
        if not targets and not isinstance(route, Feature):
            raise Refused(Refusal(480, "Temporarily Unavailable: the called subscriber has no registered contact"))
        direction = "outbound" if isinstance(route, Outbound) else "internal" if caller else "inbound"
        carriers = list(dict.fromkeys(gateway.carrier_id for gateway in route.gateways)) \
            if isinstance(route, Outbound) else [None if caller else decision.trunk.carrier_id]

        def admit(carrier_id: int | None, targets: list[list[Target]]):
            return calls.admit_call(
                tx, isp_id, customer_id=customer_id, tenant_id=tenant_id, call_id=request.call_id, node=self.node,
                direction=direction, carrier_id=carrier_id, subscriber_id=caller.subscriber_id if caller else None,
                did_id=getattr(route, "did_id", None),
                gateway_id=targets[0][0].gateway.gateway_id if isinstance(route, Outbound) else None,
                caller_dialled=(request.from_.uri.user or "")[:64], caller_e164=origin.e164 if origin else None,
                callee_dialled=dialled[:64], callee_e164=getattr(route, "e164", None),
                reservation=assessment.reservation if assessment else None, last=True)
        row, carrier_id, targets = await _admitted_by_a_carrier(carriers, targets, admit)
        return Admitted(route, isp_id, customer_id, tenant_id, direction, row["id"], carrier_id, targets,
                        row["reservation_id"], assessment.reservation.max_duration_ms if assessment else None,
                        caller.subscriber_id if caller else None, origin.e164 if origin else None, request.call_id)

    async def _assess(self, tx, isp_id: int, customer_id: int, caller, route: Route) -> Assessment | None:
        """Billing's word on a call that costs money: out through a carrier, or in to a DID.
        On-net calls between subscribers are free and not assessed."""
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
            return await assess_call(tx, isp_id, customer_id=customer_id, destination=route.e164,
                                     indexes=self.indexes, at=self._now(),
                                     subscriber_id=caller.subscriber_id if caller else None,
                                     direction=direction, did_id=did_id, max_call_ms=self.max_call_ms)
        except CallRefused as refused:
            status, phrase = REFUSED.get(refused.reason, (403, "Forbidden"))
            raise Refused(Refusal(status, f"{phrase}: {refused.message}"),
                          refused.lock if isinstance(refused, FraudLocked) else None) from None

    def _write_fraud_lock(self, lock: FraudLock, call_id: str) -> None:
        """The call is refused already; its lock must stay even so (once: another node or
        call may have written it first). Tracked with the releases, so a stop waits for it."""
        writing = defer.Deferred.fromCoroutine(self.database.transact(write_fraud_lock, lock, _retry=True))
        writing.addErrback(quiet_when_unavailable(log, "writing the fraud guard's lock for call {call_id} failed",
                                                  call_id=call_id))
        self._releasing.add(writing)
        writing.addBoth(lambda _: self._releasing.discard(writing))

    async def count_against(self, admitted: Admitted, gateway: Gateway) -> str | None:
        """Count a call that fails over to another carrier's gateway against that carrier,
        within its limit (one statement, on failover only). None when done, else the reason
        the carrier cannot take the call, for a 503 from that gateway."""
        if not await admitted.durable.wait():
            return "Service Unavailable: the call's admission could not be written"
        try:
            await self.database.alone(calls.move_to_carrier, admitted.isp_id, admitted.active_id,
                                      gateway.carrier_id, gateway.gateway_id, _retry=True)
        except LimitReached as error:
            return f"Service Unavailable: {error.limit} of {error.value} reached"
        except (NotAllowed, NotFound) as error:
            return f"Service Unavailable: {error}"
        except Exception:
            log.failure("counting call {call_id} against carrier {carrier} failed", call_id=admitted.call_id,
                        carrier=gateway.carrier_id)
            return "Service Unavailable: the carrier's calls could not be counted"
        admitted.carrier_id = gateway.carrier_id
        return None

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
                if binding.transport in ("ws", "wss"):
                    uri = websocket_uri(uri)
                host, _, port = binding.source.rpartition(":")
                through = self.edge.route_for(binding) if self.edge is not None else None
                if through is not None:     # its connection ends on another node: via that node
                    node_host, node_port, route = through
                    found.append(Target(uri, untagged(request.to), caller, binding.transport, node_host, node_port,
                                        route=route))
                    continue
                found.append(Target(uri, untagged(request.to), caller, binding.transport,
                                    host.strip("[]"), int(port or 5060), flow=binding.flow))
            return [found] if found else []
        rounds = []
        for gateway in route.gateways:
            host = f"[{gateway.host}]" if ":" in gateway.host else gateway.host
            port = "" if gateway.port is None else f":{gateway.port}"     # none: SRV finds it
            uri = parse_uri(f"sip:{gateway.number}@{host}{port}")
            shown = route.caller_id or "anonymous"
            identity = f"<sip:{shown}@{local};user=phone>"
            rounds.append([Target(uri, Address(uri), Address(parse_uri(f"sip:{shown}@{local}")),
                                  gateway.transport, gateway.host, gateway.port, gateway=gateway,
                                  identity=identity if route.caller_id else None)])
        return rounds

    def _release(self, admitted: Admitted, media, end: CallEnd, after: defer.Deferred | None = None,
                 started_at: datetime.datetime | None = None) -> None:
        """Every end of a call comes here: its ports go back, then its row in active_calls
        goes, and in the same transaction its reservation is settled into a CDR and a charge
        (a free call, on-net or to a subscriber's own number, gets its CDR at no price),
        with which ways its media went, which the relay knows once it has let go of the
        ports. `after`: what must be written first (the answer's mark). A record the
        database does not take is kept and written later (`records.CallRecords`); the
        active call still goes if it can, so limits never keep a call that ended. A call
        whose admission was never committed has no row to end and nothing to record."""
        def record(_):
            if not admitted.durable.ok:
                return None
            return defer.Deferred.fromCoroutine(self.records.write(PendingRecord(
                admitted.isp_id, admitted.active_id, admitted.reservation_id, admitted.customer_id,
                admitted.tenant_id, admitted.subscriber_id, self.node, admitted.direction,
                getattr(admitted.route, "e164", None), admitted.call_id, started_at,
                replace(end, media_flow=media_flow(media, end)))))

        released = defer.maybeDeferred(media.release) if media is not None else defer.succeed(None)
        released.addErrback(lambda failure: log.failure("releasing media failed", failure))
        done = defer.DeferredList([after or defer.succeed(None), released, admitted.durable.wait()],
                                  consumeErrors=True)
        done.addCallback(record)
        done.addErrback(lambda failure: log.failure("recording call {call_id} failed", failure,
                                                    call_id=admitted.call_id))
        self._releasing.add(done)
        done.addBoth(lambda _: self._releasing.discard(done))

    def _now(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self.reactor.seconds(), datetime.timezone.utc)

    def answered(self, admitted: Admitted) -> defer.Deferred:
        """Should the node die, recovery closes the call as answered at its last heartbeat
        from here (and billing bills it so); after the 200, so set-up waits for none of it."""
        at = self._now()

        async def mark() -> None:
            if await admitted.durable.wait():
                await self.database.alone(calls.mark_answered, admitted.isp_id, active_call_id=admitted.active_id,
                                          reservation_id=admitted.reservation_id, at=at, _retry=True)
        done = defer.Deferred.fromCoroutine(mark())
        return done.addErrback(lambda failure: log.failure("marking a call answered failed", failure))

    def settled(self) -> defer.Deferred:
        """Fires when every ended call's row is gone (for a clean stop, and for tests)."""
        return defer.DeferredList(list(self._releasing))

    def carries(self, flow: Flow) -> bool:
        """Whether a call's dialog runs over `flow` (either side): such a connection is not
        closed as idle, however quiet the call (sip/lifetime.py asks, once one has been
        idle for connections.idle_seconds)."""
        return any(session.a_flow is flow or any(leg.flow is flow for leg in session.legs)
                   for session in self.sessions.values())

    def forget(self, session: Session) -> None:
        self.sessions.pop(session.incoming, None)
        for key in session.keys:
            self.dialogs.pop(key, None)

    # -- flows ---------------------------------------------------------------------

    async def flow_to(self, target: Target) -> Flow | None:
        """A phone's own connection or NAT pinhole, or the node holding its connection; a
        gateway's address (resolved if a name), over a TCP or TLS connection opened (or
        reused) for it, TLS checked against the gateway's name. None when there is no way:
        the leg counts as timed out."""
        if target.flow is not None and not target.flow.closed:
            return target.flow
        if target.route is not None:        # the node holding the phone's connection, over UDP
            return self.core.flows.datagram(target.host, target.port)
        host, port = target.host, target.port
        try:
            ipaddress.ip_address(host)
        except ValueError:
            located = await self._locate(target)
            if located is None:
                return None
            host, port = located
        if target.gateway is not None and target.transport in ("tcp", "tls"):
            try:
                return await connect(self.reactor, self.core, self.core.flows, target.transport, host, port,
                                     server_name=target.host, timeout=self.timers.progress or 10.0)
            except Exception as error:
                log.info("no {transport} connection to gateway {host}:{port}: {error}", transport=target.transport,
                         host=target.host, port=port, error=error)
                return None
        return self.core.flows.find(target.transport, host, port)

    async def _locate(self, target: Target) -> tuple[str, int] | None:
        """A gateway's name through RFC 3263 (SRV, then A/AAAA; only the latter when it has
        a port): its first target, in SRV priority and weight order."""
        if self.locator is None:
            return None
        found = await self.locator.locate(target.host, target.port, target.transport)
        if not found:
            log.info("gateway {host} resolves to no address", host=target.host)
            return None
        return found[0].address, found[0].port


def _attempt(request: Request, flow: Flow, decision) -> Attempt:
    """What authentication identified: a subscriber (ISP, tenant) or a carrier (ISP)."""
    attempt = Attempt(request.call_id, f"{flow.remote[0]}:{flow.remote[1]}", (request.uri.user or "")[:64],
                      (request.from_.uri.user or "")[:64])
    if decision.subscriber is not None:
        caller = decision.subscriber
        attempt.isp_id, attempt.tenant_id, attempt.subscriber_id = caller.isp_id, caller.tenant_id, caller.subscriber_id
        attempt.direction = "internal"
    elif decision.trunk is not None:
        attempt.isp_id, attempt.carrier_id = decision.trunk.isp_id, decision.trunk.carrier_id
    return attempt


async def _admitted_by_a_carrier(carriers: list[int | None], targets: list[list[Target]], admit):
    """The call admitted against the first of `carriers` with room: a full (or disabled)
    carrier's gateways leave the call's rounds and the next carrier is tried; any other
    refusal, or the last carrier's, is raised. (row, carrier, the rounds left)."""
    refusal = None
    for carrier_id in carriers:
        try:
            return await admit(carrier_id, targets), carrier_id, targets
        except LimitReached as error:
            refusal = Refusal(503, f"Service Unavailable: {error.limit} of {error.value} reached")
            if not error.limit.startswith("carrier "):
                raise Refused(refusal) from None
        except NotAllowed as error:
            refusal = Refusal(403, f"Forbidden: {error.reason}")
            if error.reason != "carrier disabled":
                raise Refused(refusal) from None
        targets = [round_ for round_ in targets if round_[0].gateway is None
                   or round_[0].gateway.carrier_id != carrier_id]
    raise Refused(refusal)
