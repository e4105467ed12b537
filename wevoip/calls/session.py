"""
One call on this node: the adapter between a `Call` machine and the SIP dialogs of its A
side and B legs. The machine's actions become SIP messages on the right dialog and flow;
SIP messages on either side become the machine's events, in the order they came, after
their SDP has gone through the media relay. When the machine says the call ended, the
record is handed to the B2BUA's release, which writes it and frees what the call held.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable

from twisted.internet import defer
from twisted.logger import Logger

from wevoip.billing.calls import CallEnd
from wevoip.calls.dialog import Dialog, new_call_id, passed_headers
from wevoip.calls.facts import Admitted, CallFacts, Target, utc_at
from wevoip.calls.actions import AckLeg, ByeA, ByeLeg, CancelLeg, Ended, PrackLeg, Refresh, Relay, RelayAck, Respond, \
    RespondA, RetryLeg, StartLeg
from wevoip.calls.machine import Call
from wevoip.calls.messages import contact_for, is_reliable, is_sdp, media_refusal, rack_of, rseq_of, same_session, \
    session_timer, supports_100rel, timer_headers
from wevoip.interfaces import MediaUnavailable
from wevoip.media.sdp import SdpError
from wevoip.sip.core import Incoming
from wevoip.sip.flow import Flow
from wevoip.sip.message import Request, Response
from wevoip.sip.transaction import T1

if TYPE_CHECKING:
    from wevoip.calls.b2bua import B2BUA

log = Logger(namespace="wevoip.calls")

LINGER = 64 * T1   # a call's dialogs stay known this long after it ends, for late messages
DISPOSITIONS = {"no answer": "no_answer"}   # the machine's words where billing spells them otherwise


def _reason(reason: str | None) -> tuple[tuple[str, str], ...]:
    return (("Reason", reason),) if reason else ()


@dataclass
class BLeg:
    target: Target
    dialog: Dialog
    invite: Request | None = None
    flow: Flow | None = None
    ack: Request | None = None
    offer: bytes | None = None      # the offer in WebRTC's terms, for a browser
    interval: int | None = None     # the session interval its INVITE asks for (RFC 4028)


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
        self.a_dialog = Dialog.as_uas(invite, incoming.to_tag, contact_for(self.core, incoming.flow))
        self.legs: list[BLeg] = []
        self.keys: list[tuple[str, str]] = [(invite.call_id, incoming.to_tag)]
        self._a_sent: dict[tuple[int, int | None], Response] = {}
        self._relayed: dict[Any, tuple[Dialog, Flow, int]] = {}
        self._offered: dict[Any, bool] = {}    # a relayed request carried SDP: its answer's is an answer
        timers = b2bua.timers
        if admitted.max_duration_ms is not None:
            longest = admitted.max_duration_ms / 1000
            timers = replace(timers, max_duration=min(timers.max_duration or longest, longest))
        self.call = Call(self, b2bua.reactor, admitted.targets, timers=timers, a_100rel=supports_100rel(invite),
                         a_timer=session_timer(invite))
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

        def anchored() -> defer.Deferred | None:
            if kind == "offer" and not self.call.relays(leg, request.method, bool(request.body),
                                                        session_timer(request)):
                return self._received(incoming, leg)    # refused or answered here: the relay is not told
            return self._anchor(side, request, kind, incoming).addCallback(
                lambda passed: self._received(incoming, leg) if passed else None)
        self._in_order(anchored)

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
            known = call.a_request(incoming, method, request, sdp=sdp, rack=rack_of(request),
                                   timer=session_timer(request))
        else:
            known = call.b_request(leg, incoming, method, request, sdp=sdp, timer=session_timer(request))
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
        if self.media is None or not message.body or not is_sdp(message):
            return defer.succeed(True)
        rewrite = self.media.offer if kind == "offer" else self.media.answer

        def rewritten(body: bytes) -> bool:
            message.body = body
            return True

        def refused(failure) -> bool:
            failure.trap(SdpError, MediaUnavailable)
            if incoming is not None and message.method != "ACK":
                incoming.respond(*media_refusal(failure.value))
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
        fork_answers = getattr(self.media, "fork_answers", None)
        if fork_answers is not None and (response.status >= 200 or (response.body and is_sdp(response))):
            fork_answers(leg, final=response.status >= 200)
        return self._anchor("b", response, kind).addCallback(lambda _: self._b_invite_event(leg, response))

    def _b_invite_event(self, leg: int, response: Response) -> None:
        reliable = is_reliable(response)
        early = self.a_dialog.sdp
        new_media = 200 <= response.status < 300 and bool(self.offer) and bool(early) \
            and not same_session(early, response.body)
        self.call.b_invite_response(leg, response.status, response, sdp=bool(response.body), reliable=reliable,
                                    rseq=rseq_of(response) if reliable else None, timer=session_timer(response),
                                    new_media=new_media)

    # -- actions out ---------------------------------------------------------------

    def perform(self, action) -> None:
        handler = getattr(self, f"_do_{type(action).__name__}")
        handler(action)

    def _do_StartLeg(self, action: StartLeg) -> None:  # noqa: N802 (named for the action)
        target = action.target
        invite = self.incoming.request
        dialog = Dialog.as_uac(new_call_id(self.core.sent_by(self.a_flow).rpartition(":")[0].strip("[]")), target.from_, target.to, target.uri, "")
        if target.route:
            dialog.route_set = [target.route]
        leg = BLeg(target, dialog, interval=action.session_expires)
        self.legs.append(leg)
        key = (dialog.call_id, dialog.local_tag)
        self.keys.append(key)
        self.b2bua.dialogs[key] = (self, action.leg)
        gateway = target.gateway
        if gateway is None or gateway.carrier_id == self.admitted.carrier_id:
            self._open_leg(target, action.leg, invite)
            return
        d = defer.Deferred.fromCoroutine(self.b2bua.count_against(self.admitted, gateway))
        d.addCallback(self._counted, target, action.leg, invite)
        d.addErrback(self._leg_failed, action.leg)

    def _counted(self, refusal: str | None, target: Target, index: int, invite: Request) -> None:
        """A leg to another carrier's gateway, once that carrier counts the call: or, when it
        may not, the gateway's attempt ends as a 503 and the machine goes on to the next."""
        if refusal is None:
            self._open_leg(target, index, invite)
        else:
            self.call.b_invite_response(index, 503, Response(503, refusal))

    def _open_leg(self, target: Target, index: int, invite: Request) -> None:
        d = defer.Deferred.fromCoroutine(self.b2bua.flow_to(target))
        d.addCallback(lambda flow: defer.Deferred.fromCoroutine(self._browser_offer(flow, index)))
        d.addCallback(self._send_invite, index, invite)
        d.addErrback(self._leg_failed, index)

    async def _browser_offer(self, flow: Flow | None, index: int) -> Flow | None:
        """A phone on a WebSocket is a browser: the relay gives it the offer in WebRTC's terms
        (`offer_to_browser`, when the relay bridges WebRTC), a browser leg for each fork. One it
        cannot bridge fails the leg."""
        to_browser = getattr(self.media, "offer_to_browser", None)
        if flow is None or self.legs[index].target.transport not in ("ws", "wss") or to_browser is None \
                or not self.offer:
            return flow
        try:
            self.legs[index].offer = await to_browser("b", self.offer, fork=index)
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
        leg.dialog.contact = contact_for(self.core, flow)
        headers = passed_headers(invite) + (("Supported", "timer"),)
        if leg.interval is not None:
            headers += (("Session-Expires", str(leg.interval)), ("Min-SE", str(self.call.timers.min_se)))
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

    def _do_RetryLeg(self, action: RetryLeg) -> None:  # noqa: N802
        leg = self.legs[action.leg]
        leg.interval = action.session_expires
        leg.dialog.next_invite()
        self._send_invite(leg.flow, action.leg, self.incoming.request)

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
            bye = leg.dialog.request("BYE", headers=_reason(action.reason))
            self.core.request(bye, leg.flow).addErrback(lambda _: None)

    def _do_ByeA(self, action: ByeA) -> None:  # noqa: N802
        bye = self.a_dialog.request("BYE", headers=_reason(action.reason))
        self.core.request(bye, self._a_flow()).addErrback(lambda _: None)

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
            names = ("Require", "Supported", "Allow") if action.status >= 200 else ("Allow",)
            headers = passed_headers(message, names=names)
            if action.sdp and message.body:
                headers += passed_headers(message, names=("Content-Type", "Content-Disposition"))
                self.a_dialog.sdp = message.body
        if 200 <= action.status < 300:
            headers += timer_headers(self.call.session("a"), request=False, min_se=self.call.timers.min_se)
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
        if incoming.request.method in ("INVITE", "UPDATE") and 200 <= action.status < 300:
            headers += timer_headers(self.call.session(action.side), request=False, min_se=self.call.timers.min_se)
            if body and is_sdp(message):
                dialog.sdp = body
        if action.min_se is not None:
            headers += (("Min-SE", str(action.min_se)),)
        reason = action.reason or (message.reason if message is not None else None)
        response = incoming.response(action.status, reason, headers=headers, body=body)
        if incoming.final_sent and 200 <= action.status < 300 and incoming.transaction is not None:
            self.core.transactions.respond(incoming.transaction, response)   # a re-INVITE's 2xx again
            return
        incoming.send(response)

    def _dialog_to(self, to: str, leg: int | None) -> tuple[Dialog, Flow]:
        if to == "a":
            return self.a_dialog, self._a_flow()
        return self.legs[leg].dialog, self.legs[leg].flow

    def _do_Relay(self, action: Relay) -> None:  # noqa: N802
        dialog, flow = self._dialog_to(action.to, action.leg)
        message: Request = action.message
        headers = passed_headers(message)
        if action.method == "PRACK":
            headers += (("RAck", f"{action.rseq} {dialog.invite_cseq} INVITE"),)
        self._send_into(action, dialog, flow, message.body, headers, bool(message.body) and is_sdp(message))

    def _do_Refresh(self, action: Refresh) -> None:  # noqa: N802
        """Our own re-INVITE or UPDATE: a refresh offers the description the side already
        has (unchanged, so no new negotiation, RFC 3264 §8), a correction the answering leg's."""
        dialog, flow = self._dialog_to(action.to, action.leg)
        body = b""
        if action.method == "INVITE":
            body = action.message.body if action.message is not None else dialog.sdp
        headers = (("Content-Type", "application/sdp"),) if body else ()
        self._send_into(action, dialog, flow, body, headers, bool(body))

    def _send_into(self, action: Relay | Refresh, dialog: Dialog, flow: Flow, body: bytes,
                   headers: tuple[tuple[str, str], ...], offer: bool) -> None:
        if action.method in ("INVITE", "UPDATE"):
            headers += timer_headers(self.call.session(action.to), request=True, min_se=self.call.timers.min_se)
        request = dialog.request(action.method, body=body, headers=headers)
        self._relayed[action.key] = (dialog, flow, request.cseq.number)
        self._offered[action.key] = offer
        feed = self._feed(action)
        d = self.core.request(request, flow, on_response=feed)
        d.addCallbacks(feed, lambda failure: feed(None))
        d.addErrback(self._leg_failed, action.leg)

    def _feed(self, action: Relay | Refresh) -> Callable[[Response | None], None]:
        def feed(response: Response | None) -> None:
            if response is None:
                self._in_order(lambda: fed(None))
                return
            kind = "answer" if self._offered.get(action.key) else "offer"
            self._in_order(lambda: self._anchor(action.to, response, kind).addCallback(lambda _: fed(response)))

        def fed(response: Response | None) -> None:
            status = 408 if response is None else response.status
            if action.to == "a":
                self.call.a_response(action.key, status, response, timer=session_timer(response))
            else:
                self.call.b_response(action.leg, action.key, status, response, timer=session_timer(response))
        return feed

    def _do_RelayAck(self, action: RelayAck) -> None:  # noqa: N802
        relayed = self._relayed.get(action.key)    # kept: a 2xx resent is ACKed again
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
        end = CallEnd(ended_at=utc_at(record.end_ms), disposition=DISPOSITIONS.get(record.disposition, record.disposition),
                      answered_at=utc_at(record.answer_ms) if record.answer_ms is not None else None,
                      sip_code=record.status, hangup_by=record.hung_up_by,
                      b_call_id=self.legs[record.answered_leg].dialog.call_id if record.answered_leg is not None
                      else None, carrier_id=facts.carrier_id, gateway_id=facts.gateway_id,
                      tenant_id=admitted.tenant_id, caller_dialled=(invite.from_.uri.user or "")[:64],
                      caller_e164=admitted.caller_e164, callee_dialled=facts.dialled[:64])
        b2bua._release(admitted, self.media, end, after=self._marked, started_at=utc_at(record.start_ms))
        log.info("call {call_id} ended: {disposition} {status}, hung up by {by} ({reason})", call_id=invite.call_id,
                 disposition=record.disposition, status=record.status, by=record.hung_up_by, reason=record.reason)
        if b2bua.on_record is not None:
            try:
                b2bua.on_record(facts)
            except Exception:
                log.failure("recording call {call_id} failed", call_id=invite.call_id)
        b2bua.reactor.callLater(LINGER, b2bua.forget, self)
