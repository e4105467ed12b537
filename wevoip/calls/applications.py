"""
Calls the server answers itself: a DID routed to a feature, or a feature code dialled,
handed to a call application (`ICallApplication`, a plugin).

The B2BUA routes, bills and admits such a call like any other, then gives it to
`Applications.take`. Here the call has one dialog (the caller's) and no B leg: a
`MediaEndpoint` (ports from the relay's pool) answers the offer in a 200, resent until the
ACK (RFC 3261 §13.3.1.4); after the ACK the application gets an `ICallHandle` and drives
the media through it. A BYE from the caller, the application hanging up, the maximum call
duration, or no ACK in 64*T1 end the call; whichever way, the endpoint's ports go back,
the active call goes and the CDR is written (answered, no carrier) by the B2BUA's release.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from wevoip.billing.calls import CallEnd
from wevoip.calls.facts import CallFacts, utc_at
from wevoip.calls.messages import contact_for, is_sdp
from wevoip.calls.session import LINGER
from wevoip.calls.dialog import Dialog
from wevoip.calls.actions import CallRecord
from wevoip.interfaces import ICallHandle
from wevoip.media.sdp import SdpError
from wevoip.sip.core import Incoming
from wevoip.sip.transaction import T1, T2

log = Logger(namespace="wevoip.calls")


class Applications:
    """The node's call applications by name, how to make a media endpoint, and the feature
    codes subscribers may dial (a code such as '*43' names an application)."""

    def __init__(self, found: dict[str, Any], endpoint: Callable[[], Any], codes: dict[str, str] | None = None):
        self.found = found
        self.endpoint = endpoint
        self.codes = dict(codes or {})

    def serves(self, feature: str) -> bool:
        """A DID's feature is 'name' or 'name:argument' ('voicemail:100')."""
        return feature.partition(":")[0] in self.found

    def code(self, dialled: str) -> str | None:
        """The feature a dialled feature code names, or None."""
        return self.codes.get(dialled.strip())

    def take(self, b2bua, incoming: Incoming, admitted) -> None:
        name, _, argument = admitted.route.feature.partition(":")
        AppCall(b2bua, incoming, admitted, self.found[name], argument, self.endpoint()).start()


class _Ports:
    """The endpoint as the B2BUA's release sees media: something to `release()`."""

    def __init__(self, endpoint: Any):
        self.endpoint = endpoint

    def release(self) -> defer.Deferred:
        return self.endpoint.close()

    def flow(self) -> None:
        """The server is one end of the call itself: no relay stands between two parties."""
        return None


@implementer(ICallHandle)
class Handle:
    """What an application may do with its call, and nothing more."""

    def __init__(self, call: AppCall, argument: str):
        self._call = call
        self.argument = argument
        self.caller = str(call.incoming.request.from_.uri)
        self.called = call.admitted.route.e164 or call.incoming.request.uri.user or ""
        self.clock = call.b2bua.reactor
        self.ended: defer.Deferred = defer.Deferred()

    def play(self, path) -> defer.Deferred:
        return self._call.endpoint.play(path)

    def record(self, path, max_ms=None) -> defer.Deferred:
        return self._call.endpoint.record(path, max_ms)

    def stop_recording(self) -> defer.Deferred:
        return self._call.endpoint.stop_recording()

    def collect_digits(self, count=None, terminator="#", timeout_ms=5000) -> defer.Deferred:
        return self._call.endpoint.collect_digits(count, terminator, timeout_ms)

    def echo(self, on=True) -> None:
        self._call.endpoint.echoing = bool(on)

    def hang_up(self) -> None:
        self._call.hang_up("callee", "the application hung up")


class AppCall:
    """One call answered by an application; indexed in the B2BUA's dialogs like a `Session`
    (`received`, `incoming`, `keys`), so in-dialog requests find it."""

    def __init__(self, b2bua, incoming: Incoming, admitted, application: Any, argument: str, endpoint: Any):
        self.b2bua = b2bua
        self.incoming = incoming
        self.admitted = admitted
        self.application = application
        self.endpoint = endpoint
        self.clock = b2bua.reactor
        self.dialog = Dialog.as_uas(incoming.request, incoming.to_tag, contact_for(b2bua.core, incoming.flow))
        self.keys = [(incoming.request.call_id, incoming.to_tag)]
        self.handle = Handle(self, argument)
        self.start_ms = self._ms()
        self.answer_ms: int | None = None
        self.late_offer = False
        self.done = False
        self._ok = None
        self._resend = None
        self._interval = T1
        self._marked: defer.Deferred = defer.succeed(None)
        self._timers: list[Any] = []

    def _ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    # -- answering ---------------------------------------------------------------------

    def start(self) -> None:
        request = self.incoming.request
        if self.incoming.final_sent:       # cancelled while it was routed
            self._end("caller", 487, "cancelled", "cancelled")
            return
        try:
            if request.body and is_sdp(request):
                body = self.endpoint.answer(request.body)
            else:
                self.late_offer, body = True, self.endpoint.offer()
        except SdpError as error:
            self.incoming.respond(488, f"Not Acceptable Here: {error}")
            self._end("system", 488, "failed", f"no media: {error}")
            return
        self.b2bua.dialogs[self.keys[0]] = (self, None)
        self._ok = self.incoming.response(200, headers=(("Contact", self.dialog.contact),
                                                        ("Content-Type", "application/sdp")), body=body)
        self.answer_ms = self._ms()
        self._marked = self.b2bua.answered(self.admitted)
        self.incoming.send(self._ok)
        self._resend = self.clock.callLater(T1, self._again)
        self._timers.append(self.clock.callLater(64 * T1, self._no_ack))
        longest = self.admitted.max_duration_ms or self.b2bua.max_call_ms
        self._timers.append(self.clock.callLater(longest / 1000, self.hang_up, "system", "maximum duration"))
        log.info("call {call_id} answered by the {name} application", call_id=request.call_id,
                 name=self.application.name)

    def _again(self) -> None:
        """The 2xx again until the ACK, from T1 doubling to T2."""
        self.b2bua.core.transactions.respond(self.incoming.transaction, self._ok)
        self._interval = min(2 * self._interval, T2)
        self._resend = self.clock.callLater(self._interval, self._again)

    def _no_ack(self) -> None:
        if self._resend is not None:
            self.hang_up("system", "no ACK")

    def _acked(self, request) -> None:
        if self._resend is None:
            return
        self._resend.cancel()
        self._resend = None
        if self.late_offer:
            try:
                self.endpoint.answered(request.body)
            except SdpError as error:
                self.hang_up("system", f"no media: {error}")
                return
        running = defer.maybeDeferred(self.application.answer, self.handle)
        running.addErrback(self._failed)

    def _failed(self, failure) -> None:
        log.failure("the {name} application failed on call {call_id}", failure, name=self.application.name,
                    call_id=self.incoming.request.call_id)
        self.hang_up("system", "the application failed")

    # -- in the dialog -----------------------------------------------------------------

    def received(self, incoming: Incoming, leg: int | None) -> None:
        request = incoming.request
        if not self.dialog.accepts(request):
            incoming.respond(500, "Server Internal Error: CSeq out of order")
            return
        method = request.method
        if method == "ACK":
            self._acked(request)
        elif self.done:
            incoming.respond(200 if method == "BYE" else 481)
        elif method == "BYE":
            incoming.respond(200)
            self._end("caller", 200, "answered", "the caller hung up")
        elif method == "INFO":
            self._info(incoming)
        elif method in ("INVITE", "UPDATE"):
            self._offer(incoming)
        else:
            incoming.respond(481)

    def _info(self, incoming: Incoming) -> None:
        request = incoming.request
        try:
            self.endpoint.info_dtmf(request.headers.get("Content-Type") or "", request.body)
        except ValueError as error:
            incoming.respond(415, f"Unsupported Media Type: {error}")
            return
        incoming.respond(200)

    def _offer(self, incoming: Incoming) -> None:
        """A re-INVITE or UPDATE (hold, resume, a new address) gets the endpoint's answer."""
        request = incoming.request
        self.dialog.refresh_target(request)
        if not request.body:
            incoming.respond(200, headers=(("Contact", self.dialog.contact),))
            return
        try:
            body = self.endpoint.answer(request.body)
        except SdpError as error:
            incoming.respond(488, f"Not Acceptable Here: {error}")
            return
        incoming.respond(200, headers=(("Contact", self.dialog.contact), ("Content-Type", "application/sdp")),
                         body=body)

    # -- the end -----------------------------------------------------------------------

    def hang_up(self, by: str = "callee", reason: str = "") -> None:
        if self.done:
            return
        bye = self.dialog.request("BYE")
        flow = self.incoming.flow
        if flow.closed:
            flow = self.b2bua.core.flows.find(flow.transport, *flow.remote) or flow
        self.b2bua.core.request(bye, flow).addErrback(lambda _: None)
        self._end(by, 200, "answered", reason)

    def _end(self, by: str, status: int, disposition: str, reason: str) -> None:
        if self.done:
            return
        self.done = True
        for timer in [self._resend, *self._timers]:
            if timer is not None and timer.active():
                timer.cancel()
        self._resend = None
        b2bua, admitted, invite = self.b2bua, self.admitted, self.incoming.request
        end_ms = self._ms()
        record = CallRecord(self.start_ms, self.answer_ms, end_ms, disposition, status, by, reason, None, ())
        end = CallEnd(ended_at=utc_at(end_ms), disposition=disposition,
                      answered_at=utc_at(self.answer_ms) if self.answer_ms is not None else None,
                      sip_code=status, hangup_by=by, tenant_id=admitted.tenant_id,
                      caller_dialled=(invite.from_.uri.user or "")[:64], caller_e164=admitted.caller_e164,
                      callee_dialled=(invite.uri.user or "")[:64], carrier_id=admitted.carrier_id)
        b2bua._release(admitted, _Ports(self.endpoint), end, after=self._marked, started_at=utc_at(self.start_ms))
        log.info("call {call_id} to the {name} application ended: {reason}, hung up by {by}",
                 call_id=invite.call_id, name=self.application.name, reason=reason, by=by)
        if b2bua.on_record is not None:
            try:
                b2bua.on_record(CallFacts(record, admitted.isp_id, admitted.customer_id, admitted.tenant_id,
                                          admitted.direction, str(invite.from_.uri), invite.uri.user or "",
                                          admitted.route.e164, admitted.carrier_id, None, (invite.call_id,)))
            except Exception:
                log.failure("recording call {call_id} failed", call_id=invite.call_id)
        if self.answer_ms is not None:
            self.handle.ended.callback(by)
        b2bua.reactor.callLater(LINGER, b2bua.forget, self)
