"""Whatever the legs and the caller send, in whatever order, the call machine keeps the RFC's
promises: one final answer to A, one record, no CANCEL before a provisional, no leg left
ringing or answered once the call is over, and every call over in the end."""

from hypothesis import given, settings, strategies as st
from twisted.internet.task import Clock

from wevoip.calls.actions import ByeLeg, CancelLeg, Ended, RespondA, StartLeg
from wevoip.calls.machine import LIVE, Call, CallState, CallTimers, LegState, Timer

STATUSES = [100, 180, 180, 183, 200, 200, 200, 302, 404, 408, 422, 486, 487, 500, 503, 603]

ARGUMENTS = {
    "response": st.tuples(st.just("response"), st.integers(0, 2), st.sampled_from(STATUSES), st.booleans(),
                          st.booleans()),
    "timeout": st.tuples(st.just("timeout"), st.integers(0, 2)),
    "cancel": st.tuples(st.just("cancel")),
    "ack": st.tuples(st.just("ack")),
    "a_bye": st.tuples(st.just("a_bye")),
    "b_bye": st.tuples(st.just("b_bye"), st.integers(0, 2)),
    "a_request": st.tuples(st.just("a_request"), st.sampled_from(["INVITE", "UPDATE", "INFO", "PRACK"]), st.booleans()),
    "b_request": st.tuples(st.just("b_request"), st.integers(0, 2), st.sampled_from(["INVITE", "UPDATE", "INFO"]),
                           st.booleans()),
    "a_response": st.tuples(st.just("a_response"), st.integers(0, 20), st.sampled_from([100, 200, 488])),
    "b_response": st.tuples(st.just("b_response"), st.integers(0, 2), st.integers(0, 20),
                            st.sampled_from([100, 200, 488])),
    "advance": st.tuples(st.just("advance"), st.floats(0.1, 40)),
    "media_lost": st.tuples(st.just("media_lost")),
    "media_failed": st.tuples(st.just("media_failed")),
    "own_response": st.tuples(st.just("own_response"), st.sampled_from("ab"), st.integers(1, 4),
                              st.sampled_from([100, 200, 408, 422, 481, 500])),
}
TIMERS = st.sampled_from([None, Timer(90, "uac", supported=True), Timer(120, "uas", 90, True, True),
                          Timer(min_se=300)])
# Responses from the legs are most of what a call hears; the kind is drawn first so that
# each kind comes up as often as its weight says.
KINDS = ["response"] * 8 + [kind for kind in ARGUMENTS if kind != "response"]
events = st.lists(st.sampled_from(KINDS).flatmap(ARGUMENTS.__getitem__), max_size=30)


class Owner:
    def __init__(self):
        self.actions = []
        self.provisional = set()     # legs that have sent a provisional so far

    def perform(self, action):
        if isinstance(action, CancelLeg):
            assert action.leg in self.provisional, "CANCEL before any provisional (RFC 3261 §9.1)"
        self.actions.append(action)


@settings(max_examples=500, deadline=None)
@given(rounds=st.lists(st.integers(1, 3), min_size=1, max_size=3), steps=events, a_100rel=st.booleans(),
       a_timer=TIMERS, b_timer=TIMERS)
def test_any_sequence_of_events_keeps_the_calls_promises(rounds, steps, a_100rel, a_timer, b_timer):
    clock, owner = Clock(), Owner()
    targets = [[f"r{r}t{t}" for t in range(size)] for r, size in enumerate(rounds)]
    call = Call(owner, clock, targets, timers=CallTimers(no_answer=60, max_duration=600, progress=5,
                                                         session_expires=120),
                a_100rel=a_100rel, a_timer=a_timer or Timer())
    call.start()
    keys = iter(range(10_000))
    for step in steps:
        legs = len(call.legs)
        kind = step[0]
        if kind == "response":
            _, leg, status, sdp, reliable = step
            if status < 200 and status != 100 and reliable:
                reliable_rseq = leg + 1
            else:
                reliable, reliable_rseq = False, None
            if status < 200:
                owner.provisional.add(leg % legs)
            call.b_invite_response(leg % legs, status, f"{status}", sdp=sdp, reliable=reliable, rseq=reliable_rseq,
                                   timer=b_timer, new_media=sdp)
        elif kind == "timeout":
            call.b_timeout(step[1] % legs)
        elif kind == "cancel":
            call.a_cancel()
        elif kind == "ack":
            call.a_ack("ACK")
        elif kind == "a_bye":
            call.a_bye(next(keys))
        elif kind == "b_bye":
            call.b_bye(step[1] % legs, next(keys))
        elif kind == "a_request":
            call.a_request(next(keys), step[1], step[1], sdp=step[2], rack=1)
        elif kind == "b_request":
            call.b_request(step[1] % legs, next(keys), step[2], step[2], sdp=step[3])
        elif kind == "a_response":
            call.a_response(step[1], step[2], "response")
        elif kind == "b_response":
            call.b_response(step[1] % legs, step[2], step[3], "response")
        elif kind == "own_response":
            _, side, number, status = step
            if side == "a":
                call.a_response(("own", number), status, "response", timer=b_timer)
            else:
                call.b_response(0, ("own", number), status, "response", timer=b_timer)
        elif kind == "advance":
            clock.advance(step[1])
        elif kind == "media_failed":
            call.media_failed("DTLS failed")
        else:
            call.media_lost("lost")
    clock.advance(10_000)

    assert call.state is CallState.ENDED
    ended = [a for a in owner.actions if isinstance(a, Ended)]
    assert len(ended) == 1
    finals = {a.status for a in owner.actions if isinstance(a, RespondA) and a.status >= 200}
    assert len(finals) == 1, finals                 # one final answer (a 2xx may be resent)
    record = ended[0].record
    # An answer whose media never came up is a 200 to A recorded as failed, with no talk to bill.
    assert (200 in finals) == (record.answer_ms is not None)
    assert (record.disposition == "answered") == (200 in finals and record.reason != "setup: DTLS failed")
    started = [a.leg for a in owner.actions if isinstance(a, StartLeg)]
    assert started == list(range(len(call.legs)))
    for leg in call.legs:
        assert leg.state not in LIVE + (LegState.ANSWERED, LegState.CONFIRMED), (leg.index, leg.state)
    winner = ended[0].record.answered_leg
    for leg in call.legs:
        if leg.state is LegState.ENDED and leg.index != winner:
            # a 2xx that lost its race was hung up (saying why, when the media failed)
            assert any(isinstance(a, ByeLeg) and a.leg == leg.index for a in owner.actions)
    assert not clock.getDelayedCalls() or all(not c.active() for c in clock.getDelayedCalls())
