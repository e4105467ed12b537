"""
A B2BUA call as a sans-IO state machine: the caller's leg (A) and the legs it rings (B).

The A leg is the caller's INVITE server transaction and the dialog it makes; each B leg is
one client INVITE and its dialog. The call is one transition table,
`(call state, leg state, event) -> (next call state, next leg state, actions)`, where
the leg state is None for events of the call or of the A side. Rows read like RFC 3261
(§9.1 CANCEL only after a provisional, §13.3.1.4 the UAS resends its 2xx until the ACK,
§15 BYE, §16.7 choosing the best response), RFC 3262 (reliable provisionals), RFC 3311
(UPDATE) and RFC 4028 (session timers, negotiated on each side on its own: the B2BUA is
the UAS of A's dialog and the UAC of B's). An event the table has no row for is absorbed
and the event method returns False, so the adapter can answer a stray request with 481.

Messages are opaque: the adapter says what an event is (a 180 with SDP, a 503, a re-INVITE
with an offer) and passes the message along so that actions can name it ("relay this 183
to A"). Actions go to an owner one by one, in order. Events an action causes (a leg that fails
may start the next gateway) are handled inside it; events the owner feeds back from
inside `perform` queue behind the one being handled. Every timer runs on the injected clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Protocol, Sequence

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from wevoip.calls.actions import (
    AckLeg, Attempt, ByeA, ByeLeg, CallRecord, CancelLeg, Ended, PrackLeg, Refresh, Relay, RelayAck, Respond, RespondA,
    RetryLeg, StartLeg)
from wevoip.sip.transaction import T1, T2


class CallState(enum.Enum):
    CALLING = "Calling"        # A's INVITE is pending; B legs ring
    ANSWERING = "Answering"    # a B leg answered; the 2xx went to A, whose ACK is awaited
    CONFIRMED = "Confirmed"    # both dialogs confirmed; in-dialog requests pass through
    ENDED = "Ended"            # over for billing; stray responses and BYEs still get answers


class LegState(enum.Enum):
    INVITING = "Inviting"          # INVITE sent, nothing heard
    PROCEEDING = "Proceeding"      # a provisional came, so a CANCEL may be sent (§9.1)
    ANSWERED = "Answered"          # a 2xx came; its ACK waits for A's (which may carry SDP)
    CONFIRMED = "Confirmed"        # ACKed
    CANCEL_WANTED = "Cancel wanted"  # given up before any provisional: CANCEL must wait
    CANCELLING = "Cancelling"      # CANCEL sent; a racing 2xx gets ACK and BYE
    FAILED = "Failed"              # a final non-2xx, or no answer at all
    ENDED = "Ended"                # answered, then BYE from either side


class Owner(Protocol):
    def perform(self, action: Any) -> None: ...


@dataclass(frozen=True)
class CallTimers:
    """Seconds; None turns a timer off. `progress` is how long a leg may stay silent
    before the next gateway is tried; `max_duration` counts from the answer.
    `session_expires` is the session interval (RFC 4028) the B2BUA asks for on a side that
    asks for none; `min_se` the shortest it accepts (an offer below gets 422)."""

    no_answer: float | None = None
    max_duration: float | None = None
    progress: float | None = None
    session_expires: int | None = None
    min_se: int = 90


@dataclass(frozen=True)
class Timer:
    """What one message says of session timers (RFC 4028): its Session-Expires interval
    and refresher parameter, its Min-SE, whether its sender supports 'timer', and whether
    it allows UPDATE (so that a refresh needs no session description)."""

    interval: int | None = None
    refresher: str | None = None     # "uac" or "uas", as written
    min_se: int | None = None
    supported: bool = False
    update: bool = False


@dataclass(frozen=True)
class SessionTimer:
    """One side's negotiated session timer: its interval, whether the B2BUA is the refresher
    there, and what the peer takes (UPDATE; 'timer', so that 2xx responses say Require)."""

    interval: int
    we_refresh: bool
    update: bool
    supported: bool


C, L = CallState, LegState


@dataclass(frozen=True)
class Step:
    call: CallState
    leg: LegState | None = None
    actions: tuple[str, ...] = ()


Row = tuple[CallState, LegState | None, str]
LIVE = (L.INVITING, L.PROCEEDING)
SETTLING = (L.CANCEL_WANTED, L.CANCELLING)
ALL = tuple(CallState)


def _each(calls, legs, events, step: Callable[[CallState, LegState], Step]) -> dict[Row, Step]:
    return {(c, l, e): step(c, l) for c in calls for l in legs for e in events}


_HANG_UP = ("respond_ok", "hang_up_winner", "fail_pending")

TABLE: dict[Row, Step] = {
    # A's side while B legs ring.
    (C.CALLING, None, "a_cancel"): Step(C.ENDED, None, ("respond_a_487", "give_up_legs", "end_cancelled")),
    (C.CALLING, None, "a_bye"): Step(C.ENDED, None, ("respond_ok", "respond_a_487", "give_up_legs",
                                                     "end_cancelled")),
    (C.CALLING, None, "a_request"): Step(C.CALLING, None, ("relay_early_request",)),
    (C.CALLING, None, "a_update"): Step(C.CALLING, None, ("relay_early_request",)),
    (C.CALLING, None, "a_too_brief"): Step(C.CALLING, None, ("respond_422",)),
    (C.CALLING, None, "a_response"): Step(C.CALLING, None, ("relay_response",)),
    (C.CALLING, None, "no_answer"): Step(C.ENDED, None, ("respond_a_no_answer", "give_up_legs",
                                                         "end_no_answer")),
    (C.CALLING, None, "resend_1xx"): Step(C.CALLING, None, ("resend_1xx",)),
    (C.CALLING, None, "no_prack"): Step(C.ENDED, None, ("respond_a_no_prack", "give_up_legs",
                                                        "end_no_prack")),
    (C.CALLING, None, "lost"): Step(C.ENDED, None, ("note_cause", "respond_a_lost", "give_up_legs", "end_lost")),
    (C.CALLING, None, "next_round"): Step(C.CALLING, None, ("start_round",)),
    (C.CALLING, None, "exhausted"): Step(C.ENDED, None, ("respond_a_best", "end_unanswered")),
    (C.CALLING, None, "declined"): Step(C.ENDED, None, ("respond_a_best", "give_up_legs",
                                                        "end_unanswered")),

    # B legs while they ring.
    **_each([C.CALLING], [L.INVITING], ["trying"], lambda c, l: Step(c, L.PROCEEDING, ("stop_progress",))),
    **_each([C.CALLING], LIVE, ["provisional"],
            lambda c, l: Step(c, L.PROCEEDING, ("stop_progress", "relay_provisional"))),
    **_each([C.CALLING], LIVE, ["success"], lambda c, l: Step(C.ANSWERING, L.ANSWERED, ("stop_progress", "answer"))),
    **_each([C.CALLING], LIVE, ["failure"], lambda c, l: Step(c, L.FAILED, ("stop_progress", "leg_failed"))),
    **_each([C.CALLING], LIVE, ["timeout"], lambda c, l: Step(c, L.FAILED, ("stop_progress", "leg_failed"))),
    **_each([C.CALLING], LIVE, ["decline"], lambda c, l: Step(c, L.FAILED, ("stop_progress", "leg_declined"))),
    # RFC 4028 §7.3: a 422 names the leg's Min-SE; the INVITE goes again asking for that.
    **_each([C.CALLING], LIVE, ["interval_too_small"], lambda c, l: Step(c, L.INVITING, ("stop_progress",
                                                                                         "retry_leg"))),
    (C.CALLING, L.INVITING, "no_progress"): Step(C.CALLING, L.CANCEL_WANTED, ("leg_failed",)),
    (C.CALLING, L.PROCEEDING, "request"): Step(C.CALLING, L.PROCEEDING, ("relay_early_from_leg",)),
    (C.CALLING, L.PROCEEDING, "update"): Step(C.CALLING, L.PROCEEDING, ("relay_early_from_leg",)),
    (C.CALLING, L.PROCEEDING, "too_brief"): Step(C.CALLING, L.PROCEEDING, ("respond_422",)),
    (C.CALLING, L.PROCEEDING, "response"): Step(C.CALLING, L.PROCEEDING, ("relay_response",)),

    # Answered, waiting for A's ACK (§13.3.1.4).
    (C.ANSWERING, None, "a_ack"): Step(C.CONFIRMED, None, ("stop_2xx", "confirm_winner", "correct_a")),
    (C.ANSWERING, None, "resend_2xx"): Step(C.ANSWERING, None, ("resend_2xx",)),
    (C.ANSWERING, None, "no_ack"): Step(C.ENDED, None, ("bye_a", "hang_up_winner", "end_no_ack")),
    (C.ANSWERING, None, "a_bye"): Step(C.ENDED, None, ("stop_2xx",) + _HANG_UP + ("end_by_caller",)),
    (C.ANSWERING, None, "a_request"): Step(C.ANSWERING, None, ("relay_to_winner",)),
    (C.ANSWERING, None, "a_glare"): Step(C.ANSWERING, None, ("respond_491",)),
    (C.ANSWERING, None, "a_update"): Step(C.ANSWERING, None, ("answer_refresh",)),
    (C.ANSWERING, None, "a_too_brief"): Step(C.ANSWERING, None, ("respond_422",)),
    (C.ANSWERING, None, "a_response"): Step(C.ANSWERING, None, ("relay_response",)),
    (C.ANSWERING, None, "max_duration"): Step(C.ENDED, None, ("stop_2xx", "bye_a", "hang_up_winner",
                                                              "fail_pending", "end_max_duration")),
    (C.ANSWERING, None, "lost"): Step(C.ENDED, None, ("note_cause", "stop_2xx", "bye_a", "hang_up_winner",
                                                      "fail_pending", "end_lost")),
    (C.ANSWERING, None, "session_expired"): Step(C.ENDED, None, ("stop_2xx", "bye_a", "hang_up_winner",
                                                                 "fail_pending", "end_session_expired")),
    (C.ANSWERING, None, "refresh"): Step(C.ANSWERING, None, ("send_refresh",)),
    (C.ANSWERING, L.ANSWERED, "success"): Step(C.ANSWERING, L.ANSWERED, ()),
    (C.ANSWERING, L.ANSWERED, "bye"): Step(C.ENDED, L.ENDED, ("stop_2xx", "respond_ok", "bye_a",
                                                              "fail_pending", "end_by_callee")),
    (C.ANSWERING, L.ANSWERED, "request"): Step(C.ANSWERING, L.ANSWERED, ("relay_to_a",)),
    (C.ANSWERING, L.ANSWERED, "glare"): Step(C.ANSWERING, L.ANSWERED, ("respond_491",)),
    (C.ANSWERING, L.ANSWERED, "update"): Step(C.ANSWERING, L.ANSWERED, ("answer_refresh",)),
    (C.ANSWERING, L.ANSWERED, "too_brief"): Step(C.ANSWERING, L.ANSWERED, ("respond_422",)),
    (C.ANSWERING, L.ANSWERED, "response"): Step(C.ANSWERING, L.ANSWERED, ("relay_response",)),
    (C.CONFIRMED, L.ANSWERED, "confirm"): Step(C.CONFIRMED, L.CONFIRMED, ("ack_leg_with_a_ack",)),

    # Both dialogs up: in-dialog requests pass through; hang-ups end both sides (§15).
    (C.CONFIRMED, None, "a_bye"): Step(C.ENDED, None, _HANG_UP + ("end_by_caller",)),
    (C.CONFIRMED, None, "a_request"): Step(C.CONFIRMED, None, ("relay_to_winner",)),
    (C.CONFIRMED, None, "a_glare"): Step(C.CONFIRMED, None, ("respond_491",)),
    (C.CONFIRMED, None, "a_update"): Step(C.CONFIRMED, None, ("answer_refresh",)),
    (C.CONFIRMED, None, "a_too_brief"): Step(C.CONFIRMED, None, ("respond_422",)),
    (C.CONFIRMED, None, "a_ack"): Step(C.CONFIRMED, None, ("relay_ack",)),
    (C.CONFIRMED, None, "a_response"): Step(C.CONFIRMED, None, ("relay_response",)),
    (C.CONFIRMED, None, "max_duration"): Step(C.ENDED, None, ("bye_a", "hang_up_winner", "fail_pending",
                                                              "end_max_duration")),
    # RFC 4028 §10: each side's session is refreshed by whoever it negotiated, the B2BUA
    # included; with no refresh in time, or a refresh met with 408 or 481 (the dialog is
    # gone, RFC 3261 §12.2.1.2), both sides get BYE.
    (C.CONFIRMED, None, "refresh"): Step(C.CONFIRMED, None, ("send_refresh",)),
    (C.CONFIRMED, None, "session_expired"): Step(C.ENDED, None, ("bye_a", "hang_up_winner", "fail_pending",
                                                                 "end_session_expired")),
    (C.CONFIRMED, None, "side_gone"): Step(C.ENDED, None, ("bye_a", "hang_up_winner", "fail_pending",
                                                           "end_side_gone")),
    (C.CONFIRMED, None, "lost"): Step(C.ENDED, None, ("note_cause", "bye_a", "hang_up_winner", "fail_pending",
                                                      "end_lost")),
    (C.CONFIRMED, L.CONFIRMED, "success"): Step(C.CONFIRMED, L.CONFIRMED, ("ack_leg_again",)),
    (C.CONFIRMED, L.CONFIRMED, "bye"): Step(C.ENDED, L.ENDED, ("respond_ok", "bye_a", "fail_pending",
                                                               "end_by_callee")),
    (C.CONFIRMED, L.CONFIRMED, "request"): Step(C.CONFIRMED, L.CONFIRMED, ("relay_to_a",)),
    (C.CONFIRMED, L.CONFIRMED, "glare"): Step(C.CONFIRMED, L.CONFIRMED, ("respond_491",)),
    (C.CONFIRMED, L.CONFIRMED, "update"): Step(C.CONFIRMED, L.CONFIRMED, ("answer_refresh",)),
    (C.CONFIRMED, L.CONFIRMED, "too_brief"): Step(C.CONFIRMED, L.CONFIRMED, ("respond_422",)),
    (C.CONFIRMED, L.CONFIRMED, "ack"): Step(C.CONFIRMED, L.CONFIRMED, ("relay_ack",)),
    (C.CONFIRMED, L.CONFIRMED, "response"): Step(C.CONFIRMED, L.CONFIRMED, ("relay_response",)),

    # Over: BYEs that crossed ours get 200, anything else in the dialogs 481.
    (C.ENDED, None, "a_bye"): Step(C.ENDED, None, ("respond_ok",)),
    (C.ENDED, None, "a_request"): Step(C.ENDED, None, ("respond_481",)),
    (C.ENDED, None, "a_glare"): Step(C.ENDED, None, ("respond_481",)),
    (C.ENDED, None, "a_update"): Step(C.ENDED, None, ("respond_481",)),
    (C.ENDED, None, "a_too_brief"): Step(C.ENDED, None, ("respond_481",)),
    (C.ENDED, L.ANSWERED, "hang_up"): Step(C.ENDED, L.ENDED, ("ack_leg", "bye_leg")),
    (C.ENDED, L.CONFIRMED, "hang_up"): Step(C.ENDED, L.ENDED, ("bye_leg",)),
    (C.ENDED, L.ENDED, "bye"): Step(C.ENDED, L.ENDED, ("respond_ok",)),
    (C.ENDED, L.ENDED, "success"): Step(C.ENDED, L.ENDED, ("ack_leg",)),
    (C.ENDED, L.ENDED, "request"): Step(C.ENDED, L.ENDED, ("respond_481",)),
    (C.ENDED, L.ENDED, "glare"): Step(C.ENDED, L.ENDED, ("respond_481",)),
    (C.ENDED, L.ENDED, "update"): Step(C.ENDED, L.ENDED, ("respond_481",)),
    (C.ENDED, L.ENDED, "too_brief"): Step(C.ENDED, L.ENDED, ("respond_481",)),

    # Legs given up on, in whatever state the call is: CANCEL once allowed (§9.1), and a
    # 2xx that races the CANCEL is taken and hung up at once.
    **_each(ALL, [L.INVITING], ["give_up"], lambda c, l: Step(c, L.CANCEL_WANTED, ("stop_progress",))),
    **_each(ALL, [L.PROCEEDING], ["give_up"], lambda c, l: Step(c, L.CANCELLING, ("stop_progress", "cancel_leg"))),
    **_each(ALL, [L.CANCEL_WANTED], ["trying", "provisional"], lambda c, l: Step(c, L.CANCELLING, ("cancel_leg",))),
    **_each(ALL, SETTLING, ["success"], lambda c, l: Step(c, L.ENDED, ("ack_leg", "bye_leg"))),
    **_each(ALL, SETTLING, ["failure", "decline", "timeout"], lambda c, l: Step(c, L.FAILED, ())),
    **_each(ALL, [L.CANCELLING], ["trying", "provisional"], lambda c, l: Step(c, L.CANCELLING, ())),
    **_each(ALL, SETTLING, ["request", "update", "too_brief"], lambda c, l: Step(c, l, ("respond_481",))),
}

# Responses after which the next gateway is tried (issue 4: timeout, 408, 5xx and 503).
TIMEOUT = 408


def fails_over(status: int) -> bool:
    return status == TIMEOUT or 500 <= status < 600


def status_for_a(status: int) -> tuple[int, str | None]:
    """What A is told for a leg's final response, and a reason when it is not relayed.

    The B2BUA follows no redirects, and a callee's challenge is for the B2BUA, not for A.
    """
    if 300 <= status < 400:
        return 480, "Temporarily Unavailable: redirect not followed"
    if status in (401, 407):
        return 403, "Forbidden: the called side asked for credentials"
    return status, None


@dataclass(frozen=True)
class Answer:
    """A leg's final non-2xx; `heard` is False for a timeout the B2BUA made up."""

    status: int
    message: Any
    heard: bool
    round: int


def best(answers: Sequence[Answer]) -> Answer:
    """RFC 3261 §16.7 step 6: any 6xx, else the lowest class, the first of a class winning;
    but a response heard beats a timeout the B2BUA made up (a 503 says more than silence)."""
    return min(answers, key=lambda a: (a.status < 600, not a.heard, a.status // 100))


REASONS = {200: "OK", 480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
           487: "Request Terminated", 491: "Request Pending", 408: "Request Timeout",
           422: "Session Interval Too Small",
           500: "Server Internal Error"}
_LOST = {"media": "Service Unavailable: the media relay lost the call",
         "store": "Service Unavailable: the call's admission could not be written",
         "setup": "Service Unavailable: the media could not be set up"}


@dataclass
class Leg:
    index: int
    target: Any
    round: int
    state: LegState = LegState.INVITING
    answer: Any = None          # its 2xx, kept for A's 200 and re-ACKs
    rseqs: set[int] = field(default_factory=set)
    progress: IDelayedCall | None = None
    interval: int | None = None     # the session interval its INVITE asks for


@dataclass
class Pending:
    """A request received on one side and relayed to the other, or one of the B2BUA's own,
    awaiting its final answer."""

    side: str                   # where its response goes: "a", "b", or "own" (the B2BUA's)
    leg: int | None
    method: str
    offer: bool
    to: str                     # the side it went to
    timer: Timer | None = None  # what the request said of session timers
    answered: bool = False      # a 2xx to a re-INVITE came; it stays until its ACK


@dataclass
class Event:
    name: str
    leg: Leg | None = None
    message: Any = None
    status: int | None = None
    key: Any = None
    method: str | None = None
    sdp: bool = False
    reliable: bool = False
    rseq: int | None = None
    timer: Timer | None = None
    side: str | None = None     # the side a session timer fired for
    new_media: bool = False     # a 2xx whose SDP is not the early media's A has


class Call:
    """One B2BUA call. `rounds` are tried in turn (gateways); the targets of a round ring
    at once (a subscriber's contacts). `a_100rel` is whether A's INVITE allows 100rel;
    `a_timer` what it says of session timers."""

    def __init__(self, owner: Owner, clock: IReactorTime, rounds: Sequence[Sequence[Any]], *,
                 timers: CallTimers = CallTimers(), a_100rel: bool = False, a_timer: Timer = Timer()):
        if not rounds or not all(rounds):
            raise ValueError("a call needs at least one target in every round")
        self.owner = owner
        self.clock = clock
        self.rounds = [list(targets) for targets in rounds]
        self.timers = timers
        self.a_100rel = a_100rel
        self.a_timer = a_timer
        self.sessions: dict[str, SessionTimer] = {}    # "a" and "b": each side's session timer
        self._own = 0
        self._tell_a = False        # A's early media was not the answer: a re-INVITE tells it
        self.state = CallState.CALLING
        self.legs: list[Leg] = []
        self.winner: Leg | None = None
        self.record: CallRecord | None = None
        self._round = -1
        self._answers: list[Answer] = []
        self._attempts: dict[int, Attempt] = {}
        self._early_leg: int | None = None
        self._start_ms = self._now()
        self._answer_ms: int | None = None
        self._pending: dict[Any, Pending] = {}
        self._reliable_out: list[tuple[Leg, int, Any, int, bool]] = []   # queued reliable 1xx
        self._reliable_sent: dict[int, tuple[Leg, int]] = {}            # A's RSeq -> leg's
        self._rseq = 0
        self._unacked_rseq: int | None = None
        self._timers: dict[str, IDelayedCall] = {}
        self._intervals: dict[str, float] = {}
        self._queue: list[Event] = []
        self._busy = False
        self._event = Event("start")
        self._answer_a: RespondA | None = None
        self._last_reliable: RespondA | None = None
        self._final_status = 0
        self._cause: str | None = None      # the Reason (RFC 3326) of the B2BUA's own BYEs

    @property
    def started_ms(self) -> int:
        return self._start_ms

    @property
    def answered_ms(self) -> int | None:
        return self._answer_ms

    # -- events from the adapter ------------------------------------------------------

    def start(self) -> None:
        if self.timers.no_answer:
            self._schedule("no_answer", self.timers.no_answer)
        self._start_round()

    def a_cancel(self) -> bool:
        return self._handle(Event("a_cancel"))

    def a_ack(self, message: Any = None) -> bool:
        return self._handle(Event("a_ack", message=message))

    def a_bye(self, key: Any, message: Any = None) -> bool:
        return self._handle(Event("a_bye", message=message, key=key, method="BYE"))

    def a_request(self, key: Any, method: str, message: Any = None, *, sdp: bool = False,
                  rack: int | None = None, timer: Timer | None = None) -> bool:
        """Any other request in A's dialog: re-INVITE, UPDATE, PRACK (with its RAck), INFO..."""
        name = "a_" + self._kind(method, sdp, timer)
        return self._handle(Event(name, message=message, key=key, method=method, sdp=sdp, rseq=rack, timer=timer))

    def a_response(self, key: Any, status: int, message: Any = None, *, timer: Timer | None = None) -> bool:
        """A's response to a request relayed or sent to it (`key` as in the Relay or Refresh action)."""
        return self._handle(Event("a_response", message=message, key=key, status=status, timer=timer))

    def media_lost(self, reason: str) -> bool:
        """The media relay saw no packets for too long, or lost the session."""
        return self._handle(Event("lost", key="media", method=reason))

    def media_failed(self, reason: str) -> bool:
        """The media never got going: a browser leg's ICE or DTLS failed, or did not complete
        in time. Before the answer the call fails; after it, both sides get BYE with the
        cause, and the record says failed (no talk to bill: nothing could be heard)."""
        return self._handle(Event("lost", key="setup", method=reason))

    def store_lost(self, reason: str) -> bool:
        """The call's admission was never committed: it has no row to be counted or
        recorded by, so it may not go on."""
        return self._handle(Event("lost", key="store", method=reason))

    @property
    def early_leg(self) -> int | None:
        """The leg whose early media A has, if any: its SDP is the one that counts."""
        return self._early_leg

    def b_invite_response(self, leg: int, status: int, message: Any = None, *, sdp: bool = False,
                          reliable: bool = False, rseq: int | None = None, timer: Timer | None = None,
                          new_media: bool = False) -> bool:
        """`new_media`: a 2xx whose SDP differs from the early media A was given (another
        leg's 183, or this leg's changing its mind), which A, having taken the first
        description as the answer (RFC 3261 §13.2.1), has to be told of."""
        if status == 100:
            name = "trying"
        elif status < 200:
            name = "provisional"
        elif status < 300:
            name = "success"
        elif status == 422 and self._may_retry(self.legs[leg], timer):
            name = "interval_too_small"
        else:
            name = "decline" if status >= 600 else "failure"
        return self._handle(Event(name, self.legs[leg], message, status, sdp=sdp, reliable=reliable,
                                  rseq=rseq, timer=timer, new_media=new_media))

    def b_timeout(self, leg: int) -> bool:
        """The leg's INVITE timed out (timer B) or its transport failed."""
        return self._handle(Event("timeout", self.legs[leg], status=TIMEOUT))

    def b_bye(self, leg: int, key: Any, message: Any = None) -> bool:
        return self._handle(Event("bye", self.legs[leg], message, key=key, method="BYE"))

    def b_request(self, leg: int, key: Any, method: str, message: Any = None, *, sdp: bool = False,
                  timer: Timer | None = None) -> bool:
        name = self._kind(method, sdp, timer)
        return self._handle(Event(name, self.legs[leg], message, key=key, method=method, sdp=sdp, timer=timer))

    def b_ack(self, leg: int, message: Any = None) -> bool:
        """The ACK for the 2xx of a re-INVITE B sent (relayed from A)."""
        return self._handle(Event("ack", self.legs[leg], message))

    def b_response(self, leg: int, key: Any, status: int, message: Any = None, *,
                   timer: Timer | None = None) -> bool:
        """The leg's response to a request relayed or sent to it (`key` as in the Relay or
        Refresh action)."""
        return self._handle(Event("response", self.legs[leg], message, status, key=key, timer=timer))

    def relays(self, leg: int | None, method: str, sdp: bool, timer: Timer | None) -> bool:
        """Whether a request from A (`leg` None) or a leg would go on to the other side as it
        stands, so that its SDP should pass the media relay first; one refused (491, 422,
        481) or answered here must leave the relay as it is."""
        name = self._kind(method, sdp, timer)
        row = (self.state, None, "a_" + name) if leg is None else (self.state, self.legs[leg].state, name)
        step = TABLE.get(row)
        return step is not None and any(action.startswith("relay") for action in step.actions)

    def session(self, side: str) -> SessionTimer | None:
        """The session timer negotiated on "a" or "b", for the headers of what goes there."""
        return self.sessions.get(side)

    # -- the machine ------------------------------------------------------------------

    def _handle(self, event: Event) -> bool:
        known = self._step(event, apply=False)
        self._queue.append(event)
        if not self._busy:
            self._busy = True
            try:
                while self._queue:
                    self._step(self._queue.pop(0), apply=True)
            finally:
                self._busy = False
        return known

    def _step(self, event: Event, *, apply: bool) -> bool:
        leg_state = event.leg.state if event.leg is not None else None
        step = TABLE.get((self.state, leg_state, event.name))
        if step is None or not apply:
            return step is not None
        self.state = step.call
        if event.leg is not None and step.leg is not None:
            event.leg.state = step.leg
        outer, self._event = self._event, event
        for action in step.actions:
            getattr(self, f"_{action}")()
        self._event = outer
        return True

    def _fire(self, name: str, leg: Leg | None = None, message: Any = None) -> None:
        """An event an action causes is handled at once, inside the action."""
        self._step(Event(name, leg, message), apply=True)

    def _now(self) -> int:
        return int(round(self.clock.seconds() * 1000))

    def _kind(self, method: str, sdp: bool, timer: Timer | None) -> str:
        """A second offer while one is in flight either way is refused with 491 (§14.1); a
        session interval below our Min-SE with 422 (RFC 4028 §9); an UPDATE without a
        body is a session refresh of its own dialog only (RFC 4028 §10), not the other's."""
        offering = method == "INVITE" or (method == "UPDATE" and sdp)
        if offering and any(p.offer and not p.answered for p in self._pending.values()):
            return "glare"
        if method in ("INVITE", "UPDATE") and timer is not None and timer.interval is not None \
                and timer.interval < self.timers.min_se:
            return "too_brief"
        return "update" if method == "UPDATE" and not sdp else "request"

    def _may_retry(self, leg: Leg, timer: Timer | None) -> bool:
        """A 422 is worth a second INVITE when it asks for more than we asked (§7.3)."""
        return self.state is C.CALLING and leg.state in LIVE and timer is not None \
            and timer.min_se is not None and timer.min_se > (leg.interval or 0)

    # -- timers ---------------------------------------------------------------------

    def _schedule(self, name: str, delay: float, event: Event | None = None) -> None:
        self._cancel_timer(name)
        self._timers[name] = self.clock.callLater(delay, self._handle, event or Event(name))

    def _cancel_timer(self, name: str) -> None:
        call = self._timers.pop(name, None)
        if call is not None and call.active():
            call.cancel()

    def _backoff(self, name: str, give_up: str) -> None:
        self._intervals[name] = T1
        self._schedule(name, T1)
        self._schedule(give_up, 64 * T1)

    def _again(self, name: str, cap: float | None) -> None:
        interval = self._intervals[name] * 2
        self._intervals[name] = min(interval, cap) if cap else interval
        self._schedule(name, self._intervals[name])

    # -- actions: legs ----------------------------------------------------------------

    def _start_round(self) -> None:
        self._round += 1
        for target in self.rounds[self._round]:
            leg = Leg(len(self.legs), target, self._round, interval=self._offered_interval())
            self.legs.append(leg)
            self._attempts[leg.index] = Attempt(leg.index, target)
            self._watch_progress(leg)
            self.owner.perform(StartLeg(leg.index, target, leg.interval))

    def _watch_progress(self, leg: Leg) -> None:
        if self.timers.progress:
            leg.progress = self.clock.callLater(self.timers.progress, self._handle, Event("no_progress", leg))

    def _retry_leg(self) -> None:
        leg = self._event.leg
        leg.interval = self._event.timer.min_se
        self._watch_progress(leg)
        self.owner.perform(RetryLeg(leg.index, leg.interval))

    def _stop_progress(self) -> None:
        leg = self._event.leg
        if leg.progress is not None and leg.progress.active():
            leg.progress.cancel()
        leg.progress = None

    def _leg_failed(self) -> None:
        """Wait for the round's other legs; then fail over, or give A the best answer."""
        leg = self._event.leg
        self._heard(leg, self._event.status or TIMEOUT, self._event.name == "failure")
        if any(other.state in LIVE for other in self.legs if other.round == leg.round):
            return
        round_best = best([answer for answer in self._answers if answer.round == leg.round])
        if fails_over(round_best.status) and self._round + 1 < len(self.rounds):
            self._fire("next_round")
        else:
            self._fire("exhausted")

    def _leg_declined(self) -> None:
        self._heard(self._event.leg, self._event.status, True)
        self._fire("declined")

    def _heard(self, leg: Leg, status: int, heard: bool) -> None:
        self._attempts[leg.index] = Attempt(leg.index, leg.target, status)
        self._answers.append(Answer(status, self._event.message if heard else None, heard, leg.round))

    def _give_up_legs(self) -> None:
        for leg in self.legs:
            if leg.state in LIVE:
                self._fire("give_up", leg)

    def _cancel_leg(self) -> None:
        self.owner.perform(CancelLeg(self._event.leg.index))

    def _ack_leg(self) -> None:
        self.owner.perform(AckLeg(self._event.leg.index))

    def _ack_leg_with_a_ack(self) -> None:
        self.owner.perform(AckLeg(self._event.leg.index, self._event.message))

    def _ack_leg_again(self) -> None:
        self.owner.perform(AckLeg(self._event.leg.index))

    def _bye_leg(self) -> None:
        self.owner.perform(ByeLeg(self._event.leg.index, self._cause))

    def _hang_up_winner(self) -> None:
        self._fire("hang_up", self.winner)

    def _confirm_winner(self) -> None:
        self._fire("confirm", self.winner, self._event.message)

    # -- actions: A's INVITE ----------------------------------------------------------

    def _relay_provisional(self) -> None:
        """Early media comes from one leg only: the first to send SDP."""
        event, leg = self._event, self._event.leg
        sdp = event.sdp
        if sdp and self._early_leg is None:
            self._early_leg = leg.index
        sdp = sdp and self._early_leg == leg.index
        if event.reliable:
            if event.rseq in leg.rseqs:
                return
            leg.rseqs.add(event.rseq)
            if not self.a_100rel:
                self.owner.perform(PrackLeg(leg.index, event.rseq))
                self.owner.perform(RespondA(event.status, "", event.message, sdp))
                return
            self._reliable_out.append((leg, event.rseq, event.message, event.status, sdp))
            if self._unacked_rseq is None:
                self._send_reliable()
            return
        self.owner.perform(RespondA(event.status, "", event.message, sdp))

    def _send_reliable(self) -> None:
        """RFC 3262 §3: one unacknowledged reliable provisional at a time, resent until PRACK."""
        leg, leg_rseq, message, status, sdp = self._reliable_out.pop(0)
        self._rseq += 1
        self._unacked_rseq = self._rseq
        self._reliable_sent[self._rseq] = (leg, leg_rseq)
        self._last_reliable = RespondA(status, "", message, sdp, reliable=True, rseq=self._rseq)
        self.owner.perform(self._last_reliable)
        self._backoff("resend_1xx", "no_prack")

    def _resend_1xx(self) -> None:
        self.owner.perform(self._last_reliable)
        self._again("resend_1xx", None)

    def _prack_received(self, rseq: int) -> None:
        if rseq != self._unacked_rseq:
            return
        self._unacked_rseq = None
        self._cancel_timer("resend_1xx")
        self._cancel_timer("no_prack")
        if self._reliable_out:
            self._send_reliable()

    def _answer(self) -> None:
        event, leg = self._event, self._event.leg
        self.winner = leg
        leg.answer = event.message
        self._attempts[leg.index] = Attempt(leg.index, leg.target, 200)
        self._answer_ms = self._now()
        self._cancel_timer("no_answer")
        self._stop_reliable()
        self._from_request("a", self.a_timer)
        self._from_response("b", event.timer, leg.interval)
        self._tell_a = event.sdp and event.new_media
        self._answer_a = RespondA(event.status, "", event.message, event.sdp)
        self.owner.perform(self._answer_a)
        self._backoff("resend_2xx", "no_ack")
        if self.timers.max_duration:
            self._schedule("max_duration", self.timers.max_duration)
        self._give_up_legs()

    def _stop_reliable(self) -> None:
        self._reliable_out.clear()
        self._unacked_rseq = None
        self._cancel_timer("resend_1xx")
        self._cancel_timer("no_prack")

    def _resend_2xx(self) -> None:
        self.owner.perform(self._answer_a)
        self._again("resend_2xx", T2)

    def _stop_2xx(self) -> None:
        self._cancel_timer("resend_2xx")
        self._cancel_timer("no_ack")

    def _correct_a(self) -> None:
        """RFC 3261 §13.2.1: A took the first description it got, the early media's, as the
        answer and ignores the 2xx's. When the answering leg's differs (another fork answered,
        RFC 3960 §3), a re-INVITE after A's ACK offers A the answering leg's; A's answer goes
        nowhere, as that leg already has its answer (A's first offer)."""
        if self._tell_a:
            self._tell_a = False
            self._send_own("a", "INVITE", self.winner.answer)

    # -- session timers (RFC 4028), each side on its own ---------------------------------

    def _offered_interval(self) -> int | None:
        """What a leg's INVITE asks for: A's interval, else ours; never below our Min-SE."""
        wanted = self.a_timer.interval or self.timers.session_expires
        return max(wanted, self.timers.min_se) if wanted else None

    def _from_request(self, side: str, asked: Timer | None) -> None:
        """A request from `side` succeeded, its answer ours (we are its UAS, §9): its
        interval, or ours when it names none. The peer refreshes when it supports timers (it
        says so now or said so before) and did not name us (refresher=uas); one without
        'timer' cannot, so the B2BUA does."""
        asked = asked or Timer()
        known = self.sessions.get(side)
        supported = asked.supported or (known is not None and known.supported)
        if asked.interval:
            interval, ours = asked.interval, not supported or asked.refresher == "uas"
        else:
            interval, ours = known.interval if known else self._offered_interval(), not supported
        self._run(side, interval, ours, asked, known)

    def _from_response(self, side: str, got: Timer | None, asked: int | None) -> None:
        """Our request to `side` got a 2xx (we are its UAC, §7.2): the interval and refresher
        it names; a 2xx naming none comes from a peer without timers, which the B2BUA then
        refreshes itself at the interval it asked for."""
        got = got or Timer()
        if got.interval:
            interval, ours = got.interval, got.refresher != "uas"
        else:
            interval, ours = asked, True
        self._run(side, interval, ours, got, self.sessions.get(side))

    def _run(self, side: str, interval: int | None, ours: bool, said: Timer, known: SessionTimer | None) -> None:
        """The refresh goes at half the interval (§10); without one, BYE at
        interval - min(32, interval/3), whoever the refresher."""
        if not interval:
            self.sessions.pop(side, None)
            self._cancel_timer(f"refresh_{side}")
            self._cancel_timer(f"expire_{side}")
            return
        update = said.update or (known is not None and known.update)
        supported = said.supported or (known is not None and known.supported)
        self.sessions[side] = SessionTimer(interval, ours, update, supported)
        self._schedule(f"expire_{side}", interval - min(32, interval / 3), Event("session_expired", side=side))
        if ours:
            self._schedule(f"refresh_{side}", interval / 2, Event("refresh", side=side))
        else:
            self._cancel_timer(f"refresh_{side}")

    def _send_refresh(self) -> None:
        """UPDATE without a body where the peer allows it, else a re-INVITE with the same
        description; while another request is in flight in that dialog, a little later (its
        2xx would do, and a re-INVITE now could only meet 491)."""
        side = self._event.side
        known = self.sessions.get(side)
        if known is None:
            return
        busy = any(not p.answered and side in (p.side, p.to) for p in self._pending.values())
        if self.state is not C.CONFIRMED or busy:
            self._schedule(f"refresh_{side}", T2, Event("refresh", side=side))
            return
        self._send_own(side, "UPDATE" if known.update else "INVITE")

    def _send_own(self, side: str, method: str, message: Any = None) -> None:
        self._own += 1
        key = ("own", self._own)
        leg = self.winner.index if side == "b" else None
        self._pending[key] = Pending("own", leg, method, method == "INVITE", side)
        self.owner.perform(Refresh(side, key, method, leg, message))

    def _own_response(self, pending: Pending, event: Event) -> None:
        """The answer to a request of ours: a 2xx refreshes that side (a re-INVITE's is
        ACKed, again when resent); a 422 raises the interval and tries again (§7.3); 408 or
        481 say the dialog is gone (RFC 3261 §12.2.1.2), which ends the call."""
        status, side = event.status, pending.to
        if status < 200:
            return
        known = self.sessions.get(side)
        if status < 300:
            if pending.method == "INVITE":
                self.owner.perform(RelayAck(side, event.key, None, pending.leg))
                if pending.answered:
                    return
                pending.answered = True
            else:
                del self._pending[event.key]
            self._from_response(side, event.timer, known.interval if known else None)
            return
        del self._pending[event.key]
        timer = event.timer
        if status == 422 and known is not None and timer is not None and (timer.min_se or 0) > known.interval:
            self.sessions[side] = replace(known, interval=timer.min_se)
            self._send_own(side, pending.method, None)
        elif status in (408, 481):
            self._step(Event("side_gone", status=status, side=side), apply=True)

    def _answer_refresh(self) -> None:
        """An UPDATE without a body refreshes its own dialog's session: answered here."""
        self._from_request("a" if self._event.leg is None else "b", self._event.timer)
        self._respond(200)

    def _respond_422(self) -> None:
        event = self._event
        self.owner.perform(Respond("a" if event.leg is None else "b", event.key, 422, REASONS[422],
                                   leg=event.leg.index if event.leg else None, min_se=self.timers.min_se))

    def _respond_a_487(self) -> None:
        self._stop_reliable()
        self.owner.perform(RespondA(487, REASONS[487]))

    def _respond_a_no_answer(self) -> None:
        self._stop_reliable()
        self.owner.perform(RespondA(480, "Temporarily Unavailable: no answer"))

    def _respond_a_lost(self) -> None:
        self._stop_reliable()
        reason = _LOST[self._event.key]
        if self._event.key == "setup":
            reason = f"{reason}: {self._event.method}"
        self.owner.perform(RespondA(503, reason))

    def _note_cause(self) -> None:
        """A media set-up that failed is said in the BYEs (RFC 3326), so both ends and any
        proxy between see why the call went."""
        if self._event.key == "setup":
            text = self._event.method.replace("\\", "\\\\").replace('"', '\\"')
            self._cause = f'SIP ;cause=503 ;text="{text}"'

    def _respond_a_no_prack(self) -> None:
        self._stop_reliable()
        self.owner.perform(RespondA(500, "Server Internal Error: no PRACK for a reliable provisional"))

    def _respond_a_best(self) -> None:
        self._stop_reliable()
        self._cancel_timer("no_answer")
        answer = best(self._answers)
        status = answer.status
        relayed, reason = status_for_a(status)
        if reason is not None:
            self.owner.perform(RespondA(relayed, reason))
        elif answer.heard:
            self.owner.perform(RespondA(status, "", answer.message))
        else:
            self.owner.perform(RespondA(status, "Request Timeout: no answer from the called side"))
        self._final_status = relayed

    def _bye_a(self) -> None:
        self.owner.perform(ByeA(self._cause))

    # -- actions: in-dialog requests --------------------------------------------------

    def _respond(self, status: int, reason: str | None = None) -> None:
        event = self._event
        side = "a" if event.leg is None else "b"
        self.owner.perform(Respond(side, event.key, status, reason or REASONS[status],
                                   leg=event.leg.index if event.leg else None))

    def _respond_ok(self) -> None:
        self._respond(200)

    def _respond_481(self) -> None:
        self._respond(481)

    def _respond_491(self) -> None:
        self._respond(491)

    def _relay(self, to: str, leg: Leg | None, rseq: int | None = None) -> None:
        event = self._event
        self._pending[event.key] = Pending("b" if to == "a" else "a",
                                           event.leg.index if event.leg else None, event.method,
                                           event.method == "INVITE" or (event.method == "UPDATE" and event.sdp),
                                           to, event.timer)
        self.owner.perform(Relay(to, event.key, event.method, event.message,
                                 leg.index if leg else None, rseq))

    def _relay_to_winner(self) -> None:
        if self._event.method == "PRACK":     # A's PRACK crossed the 2xx
            self._relay_prack()
            return
        self._relay("b", self.winner)

    def _relay_to_a(self) -> None:
        self._relay("a", None)

    def _relay_prack(self) -> None:
        """A's PRACK goes to the leg whose provisional it acknowledges, with that leg's RSeq;
        one for a leg given up on since (another fork answered) is answered here, as the
        reliable provisional A acknowledges was ours (RFC 3262 §3)."""
        event = self._event
        sent = self._reliable_sent.get(event.rseq)
        if sent is None:
            self._respond(481)
            return
        leg, rseq = sent
        if leg.state in LIVE + (L.ANSWERED, L.CONFIRMED):
            self._relay("b", leg, rseq)
        else:
            self._respond(200)
        self._prack_received(event.rseq)

    def _relay_early_request(self) -> None:
        """A PRACK goes to the leg whose provisional it acknowledges; UPDATE and INFO to the
        leg whose early media A has."""
        if self._event.method == "PRACK":
            self._relay_prack()
            return
        if self._early_leg is None:
            self._respond(481)
            return
        self._relay("b", self.legs[self._early_leg])

    def _relay_early_from_leg(self) -> None:
        if self._event.leg.index != self._early_leg:
            self._respond(491)
            return
        self._relay("a", None)

    def _relay_response(self) -> None:
        event = self._event
        pending = self._pending.get(event.key)
        if pending is not None and pending.side == "own":
            self._own_response(pending, event)
            return
        if pending is None or pending.answered:
            if pending is not None and 200 <= event.status < 300:
                self._send_back(pending, event)   # a re-INVITE's 2xx again: its ACK was lost
            return
        if pending.method in ("INVITE", "UPDATE") and 200 <= event.status < 300 and self.state is C.CONFIRMED:
            known = self.sessions.get(pending.to)     # both dialogs saw the session refreshed
            self._from_request(pending.side, pending.timer)
            self._from_response(pending.to, event.timer, known.interval if known else None)
        asked = event.timer.min_se if event.status == 422 and event.timer is not None else None
        if asked is not None and pending.to in self.sessions:
            # The far side wants a longer session (§7.3): our next request there asks for it,
            # and the requester, told the same Min-SE, may try again.
            known = self.sessions[pending.to]
            self.sessions[pending.to] = replace(known, interval=max(known.interval, asked))
        self._send_back(pending, event, asked)
        if event.status < 200:
            return
        if pending.method == "INVITE" and event.status < 300:
            pending.answered = True
        else:
            del self._pending[event.key]

    def _send_back(self, pending: Pending, event: Event, min_se: int | None = None) -> None:
        self.owner.perform(Respond(pending.side, event.key, event.status, "", event.message, pending.leg, min_se))

    def _relay_ack(self) -> None:
        """The ACK of a relayed re-INVITE's 2xx goes where the re-INVITE went."""
        event = self._event
        from_side = "a" if event.leg is None else "b"
        for key, pending in list(self._pending.items()):
            if pending.side == from_side and pending.method == "INVITE" and pending.answered:
                del self._pending[key]
                to = "b" if from_side == "a" else "a"
                leg = self.winner.index if to == "b" else None
                self.owner.perform(RelayAck(to, key, event.message, leg))
                return

    def _fail_pending(self) -> None:
        """A request still waiting for the other side when the call ends gets 487 (§15.1.2)."""
        for key, pending in list(self._pending.items()):
            if not pending.answered and pending.side != "own":
                self.owner.perform(Respond(pending.side, key, 487, REASONS[487], leg=pending.leg))
        self._pending.clear()

    # -- actions: the record ----------------------------------------------------------

    def _end(self, disposition: str, status: int, hung_up_by: str, reason: str) -> None:
        for name in list(self._timers):
            self._cancel_timer(name)
        for leg in self.legs:
            if leg.progress is not None and leg.progress.active():
                leg.progress.cancel()
        self.record = CallRecord(self._start_ms, self._answer_ms, self._now(), disposition, status,
                                 hung_up_by, reason, self.winner.index if self.winner else None,
                                 tuple(self._attempts[index] for index in sorted(self._attempts)))
        self.owner.perform(Ended(self.record))

    def _end_cancelled(self) -> None:
        self._end("cancelled", 487, "caller", "cancelled")

    def _end_no_answer(self) -> None:
        self._end("no answer", 480, "system", "no answer")

    def _end_no_prack(self) -> None:
        self._end("failed", 500, "system", "no PRACK")

    def _end_unanswered(self) -> None:
        status = self._final_status
        disposition = {486: "busy", 600: "busy", 408: "no answer", 480: "no answer"}.get(status, "failed")
        heard = best(self._answers).heard
        self._end(disposition, status, "callee" if heard else "system", f"final response {status}")

    def _end_answered(self, hung_up_by: str, reason: str) -> None:
        self._end("answered", 200, hung_up_by, reason)

    def _end_by_caller(self) -> None:
        self._end_answered("caller", "caller hung up")

    def _end_by_callee(self) -> None:
        self._end_answered("callee", "callee hung up")

    def _end_no_ack(self) -> None:
        self._end_answered("system", "no ACK from the caller")

    def _end_max_duration(self) -> None:
        self._end_answered("system", "maximum duration")

    def _end_lost(self) -> None:
        reason = f"{self._event.key}: {self._event.method}"
        if self.winner is None:
            self._end("failed", 503, "system", reason)
        elif self._event.key == "setup":
            self._end("failed", 200, "system", reason)     # answered, but nothing could be heard
        else:
            self._end_answered("system", reason)

    def _end_session_expired(self) -> None:
        self._end_answered("system", f"session expired on side {self._event.side}")

    def _end_side_gone(self) -> None:
        self._end_answered("system", f"side {self._event.side} gone: {self._event.status} to a refresh")
