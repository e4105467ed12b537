"""The B2BUA call machine, path by path and race by race, on task.Clock."""

import pytest
from twisted.internet.task import Clock

from wevoip.calls.actions import (
    AckLeg, Attempt, ByeA, ByeLeg, CancelLeg, Ended, PrackLeg, Refresh, Relay, RelayAck, Respond, RespondA, RetryLeg,
    StartLeg)
from wevoip.calls.machine import T1, T2, Answer, Call, CallState, CallTimers, LegState, SessionTimer, Timer, best


class Recorder:
    def __init__(self):
        self.actions = []
        self.on_start = None

    def perform(self, action):
        self.actions.append(action)
        if isinstance(action, StartLeg) and self.on_start is not None:
            self.on_start(action)

    def take(self):
        taken, self.actions = self.actions, []
        return taken

    def ended(self):
        return [a.record for a in self.actions if isinstance(a, Ended)]


def make(rounds, clock=None, **options):
    clock = clock or Clock()
    owner = Recorder()
    call = Call(owner, clock, rounds, **options)
    call.start()
    return clock, owner, call


def answer(call, owner, leg=0):
    call.b_invite_response(leg, 180, "180")
    call.b_invite_response(leg, 200, "200", sdp=True)
    call.a_ack("ACK")
    owner.take()


def test_a_call_rings_is_answered_and_the_caller_hangs_up():
    clock, owner, call = make([["alice"]])
    assert owner.take() == [StartLeg(0, "alice")]
    clock.advance(1)
    call.b_invite_response(0, 100, "100")
    call.b_invite_response(0, 180, "180")
    assert owner.take() == [RespondA(180, "", "180", False)]
    clock.advance(4)
    call.b_invite_response(0, 200, "200", sdp=True)
    assert owner.take() == [RespondA(200, "", "200", True)]
    assert call.state is CallState.ANSWERING
    call.a_ack("ACK with answer")
    assert owner.take() == [AckLeg(0, "ACK with answer")]
    clock.advance(60)
    assert call.a_bye("bye-key", "BYE")
    actions = owner.take()
    assert actions[0] == Respond("a", "bye-key", 200, "OK")
    assert ByeLeg(0) in actions
    [record] = [a.record for a in actions if isinstance(a, Ended)]
    assert (record.start_ms, record.answer_ms, record.end_ms) == (0, 5000, 65000)
    assert (record.disposition, record.status, record.hung_up_by) == ("answered", 200, "caller")
    assert record.attempts == (Attempt(0, "alice", 200),)
    assert call.state is CallState.ENDED and call.legs[0].state is LegState.ENDED


def test_the_callee_hangs_up_and_a_crossing_bye_from_the_caller_gets_200_only():
    clock, owner, call = make([["bob"]])
    answer(call, owner)
    call.b_bye(0, "kb", "BYE")
    actions = owner.take()
    assert actions[:2] == [Respond("b", "kb", 200, "OK", leg=0), ByeA()]
    assert [r.hung_up_by for r in (a.record for a in actions if isinstance(a, Ended))] == ["callee"]
    assert call.a_bye("ka")
    assert owner.take() == [Respond("a", "ka", 200, "OK")]


def test_both_sides_hang_up_at_once():
    clock, owner, call = make([["bob"]])
    answer(call, owner)
    call.a_bye("ka")
    call.b_bye(0, "kb")
    actions = owner.take()
    assert Respond("a", "ka", 200, "OK") in actions and ByeLeg(0) in actions
    assert Respond("b", "kb", 200, "OK", leg=0) in actions and ByeA() not in actions
    assert len([a for a in actions if isinstance(a, Ended)]) == 1


def test_parallel_contacts_first_200_wins_and_the_others_are_cancelled():
    clock, owner, call = make([["desk", "mobile", "soft"]])
    assert owner.take() == [StartLeg(0, "desk"), StartLeg(1, "mobile"), StartLeg(2, "soft")]
    call.b_invite_response(1, 180, "180 mobile")
    call.b_invite_response(2, 180, "180 soft")
    owner.take()
    call.b_invite_response(2, 200, "200 soft", sdp=True)
    assert owner.take() == [RespondA(200, "", "200 soft", True), CancelLeg(1)]
    # The desk phone had not answered at all: its CANCEL waits for a provisional (§9.1).
    assert call.legs[0].state is LegState.CANCEL_WANTED
    call.b_invite_response(0, 100, "100")
    assert owner.take() == [CancelLeg(0)]
    # The mobile's 200 raced the CANCEL: it is acknowledged and hung up at once.
    call.b_invite_response(1, 200, "200 mobile")
    assert owner.take() == [AckLeg(1), ByeLeg(1)]
    call.b_invite_response(0, 487, "487")
    assert owner.take() == []
    call.a_ack("ACK")
    assert owner.take() == [AckLeg(2, "ACK")]
    assert [leg.state for leg in call.legs] == [LegState.FAILED, LegState.ENDED, LegState.CONFIRMED]


def test_a_cancel_ends_the_call_and_a_200_racing_it_is_acked_and_hung_up():
    clock, owner, call = make([["bob"]])
    call.b_invite_response(0, 180, "180")
    owner.take()
    clock.advance(3)
    call.a_cancel()
    actions = owner.take()
    assert actions[:2] == [RespondA(487, "Request Terminated"), CancelLeg(0)]
    [record] = [a.record for a in actions if isinstance(a, Ended)]
    assert (record.disposition, record.status, record.hung_up_by, record.end_ms) == ("cancelled", 487, "caller", 3000)
    call.b_invite_response(0, 200, "200")
    assert owner.take() == [AckLeg(0), ByeLeg(0)]
    assert not call.a_cancel()


def test_a_cancel_before_any_provisional_waits_to_cancel_the_leg():
    clock, owner, call = make([["bob"]])
    owner.take()
    call.a_cancel()
    assert owner.take()[0] == RespondA(487, "Request Terminated")
    call.b_invite_response(0, 180, "180")
    assert owner.take() == [CancelLeg(0)]
    call.b_invite_response(0, 487, "487")
    assert owner.take() == [] and call.legs[0].state is LegState.FAILED


def test_a_busy_callee_is_relayed_and_recorded_as_busy():
    clock, owner, call = make([["bob"]])
    owner.take()
    call.b_invite_response(0, 486, "486 Busy Here")
    actions = owner.take()
    assert actions[0] == RespondA(486, "", "486 Busy Here")
    assert (actions[1].record.disposition, actions[1].record.hung_up_by) == ("busy", "callee")


def test_outbound_fails_over_on_timeout_408_and_5xx_and_gives_the_best_answer_at_the_end():
    clock, owner, call = make([["gw1"], ["gw2"], ["gw3"], ["gw4"]])
    assert owner.take() == [StartLeg(0, "gw1")]
    call.b_timeout(0)
    assert owner.take() == [StartLeg(1, "gw2")]
    call.b_invite_response(1, 503, "503 gw2")
    assert owner.take() == [StartLeg(2, "gw3")]
    call.b_invite_response(2, 100, "100")
    call.b_invite_response(2, 408, "408 gw3")
    assert owner.take() == [StartLeg(3, "gw4")]
    call.b_invite_response(3, 500, "500 gw4")
    actions = owner.take()
    assert actions[0] == RespondA(408, "", "408 gw3")
    record = actions[1].record
    assert record.disposition == "no answer" and record.status == 408
    assert [a.status for a in record.attempts] == [408, 503, 408, 500]


def test_a_heard_503_beats_a_timeout_the_b2bua_made_up():
    clock, owner, call = make([["gw1"], ["gw2"]])
    call.b_invite_response(0, 503, "503")
    call.b_timeout(1)
    actions = owner.take()
    assert RespondA(503, "", "503") in actions
    assert actions[-1].record.disposition == "failed"


def test_every_gateway_silent_gives_408_by_the_system():
    clock, owner, call = make([["gw1"], ["gw2"]])
    call.b_timeout(0)
    call.b_timeout(1)
    actions = owner.take()
    assert actions[-2] == RespondA(408, "Request Timeout: no answer from the called side")
    assert actions[-1].record.hung_up_by == "system"


def test_a_4xx_other_than_408_stops_failover():
    clock, owner, call = make([["gw1"], ["gw2"]])
    owner.take()
    call.b_invite_response(0, 404, "404")
    actions = owner.take()
    assert not any(isinstance(a, StartLeg) for a in actions)
    assert actions[0] == RespondA(404, "", "404")


def test_a_silent_gateway_is_passed_over_after_the_progress_time_and_cancelled_if_it_wakes():
    clock, owner, call = make([["gw1"], ["gw2"]], timers=CallTimers(progress=2))
    owner.take()
    clock.advance(1.99)
    assert owner.take() == []
    clock.advance(0.02)
    assert owner.take() == [StartLeg(1, "gw2")]
    call.b_invite_response(1, 100, "100")
    clock.advance(10)  # gw2 made progress: its timer is off
    assert owner.take() == []
    call.b_invite_response(0, 180, "180 late")
    assert owner.take() == [CancelLeg(0)]
    call.b_invite_response(0, 200, "200 late")
    assert owner.take() == [AckLeg(0), ByeLeg(0)]
    call.b_invite_response(1, 200, "200 gw2")
    assert owner.take()[0] == RespondA(200, "", "200 gw2", False)


def test_a_reentrant_owner_sees_actions_in_order():
    clock = Clock()
    owner = Recorder()
    call = Call(owner, clock, [["gw1"], ["gw2"], ["gw3"]])
    owner.on_start = lambda action: call.b_timeout(action.leg) if action.target != "gw3" else None
    call.start()
    assert [a for a in owner.take() if isinstance(a, StartLeg)] == [
        StartLeg(0, "gw1"), StartLeg(1, "gw2"), StartLeg(2, "gw3")]


def test_a_6xx_from_one_contact_ends_the_search():
    clock, owner, call = make([["a", "b"], ["c"]])
    call.b_invite_response(1, 180, "180")
    owner.take()
    call.b_invite_response(0, 603, "603 Decline")
    actions = owner.take()
    assert actions[:2] == [RespondA(603, "", "603 Decline"), CancelLeg(1)]
    assert not any(isinstance(a, StartLeg) for a in actions)


@pytest.mark.parametrize("status, told", [(302, 480), (407, 403)])
def test_redirects_and_challenges_are_not_passed_to_the_caller(status, told):
    clock, owner, call = make([["bob"]])
    call.b_invite_response(0, status, str(status))
    [respond] = [a for a in owner.take() if isinstance(a, RespondA)]
    assert respond.status == told and respond.message is None and respond.reason


def test_nobody_answers_within_the_no_answer_time():
    clock, owner, call = make([["a", "b"]], timers=CallTimers(no_answer=30))
    call.b_invite_response(0, 180, "180")
    owner.take()
    clock.advance(30)
    actions = owner.take()
    assert actions[:2] == [RespondA(480, "Temporarily Unavailable: no answer"), CancelLeg(0)]
    assert actions[-1].record.disposition == "no answer" and actions[-1].record.end_ms == 30000
    call.b_invite_response(1, 180, "180")
    assert owner.take() == [CancelLeg(1)]


def test_the_no_answer_timer_stops_at_the_answer():
    clock, owner, call = make([["a"]], timers=CallTimers(no_answer=30))
    answer(call, owner)
    clock.advance(100)
    assert owner.take() == []


def test_max_duration_ends_both_sides():
    clock, owner, call = make([["bob"]], timers=CallTimers(max_duration=120))
    clock.advance(2)
    answer(call, owner)
    clock.advance(119.9)
    assert owner.take() == []
    clock.advance(0.1)
    actions = owner.take()
    assert ByeA() in actions and ByeLeg(0) in actions
    record = actions[[isinstance(a, Ended) for a in actions].index(True)].record
    assert (record.end_ms - record.answer_ms, record.hung_up_by, record.reason) == (120000, "system", "maximum duration")


def test_the_2xx_is_resent_to_the_caller_until_its_ack_and_the_call_ends_without_one():
    clock, owner, call = make([["bob"]])
    call.b_invite_response(0, 200, "200")
    owner.take()
    times = []
    while call.state is CallState.ANSWERING:
        clock.advance(0.25)
        if any(isinstance(a, RespondA) for a in owner.actions):
            times.append(clock.seconds())
            owner.actions = [a for a in owner.actions if not isinstance(a, RespondA)]
    assert times[:6] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5]
    actions = owner.take()
    assert actions[0] == ByeA() and AckLeg(0) in actions and ByeLeg(0) in actions
    assert clock.seconds() == 64 * T1
    assert [a.record.reason for a in actions if isinstance(a, Ended)] == ["no ACK from the caller"]


def test_the_ack_stops_the_2xx_resends():
    clock, owner, call = make([["bob"]])
    call.b_invite_response(0, 200, "200")
    clock.advance(0.5)
    call.a_ack("ACK")
    owner.take()
    clock.advance(64)
    assert owner.take() == []


def test_a_retransmitted_2xx_from_the_callee_is_acked_again():
    clock, owner, call = make([["bob"]])
    call.b_invite_response(0, 200, "200")
    call.b_invite_response(0, 200, "200")  # before A's ACK: B waits for the ACK A sends
    owner.take()
    call.a_ack("ACK")
    call.b_invite_response(0, 200, "200")
    assert owner.take() == [AckLeg(0, "ACK"), AckLeg(0)]


def reasons(actions):
    return [a.record.reason for a in actions if isinstance(a, Ended)]


# Session timers (RFC 4028): each side negotiates its own; the B2BUA refreshes where the peer
# will not, answers an UPDATE refresh itself, and ends the call when a session runs out.

PHONE = Timer(90, "uac", supported=True)       # a phone that refreshes its own session


def test_each_side_refreshes_its_own_session_and_the_one_that_stops_ends_the_call():
    clock, owner, call = make([["bob"]], a_timer=PHONE)
    call.b_invite_response(0, 200, "200", sdp=True, timer=Timer(90, "uas", supported=True))
    call.a_ack("ACK")
    owner.take()
    assert call.session("a") == SessionTimer(90, False, False, True)    # A is the refresher on its side
    assert call.session("b") == SessionTimer(90, False, False, True)    # refresher=uas: B on its side
    clock.advance(50)
    call.a_request("ua", "UPDATE", "UPDATE", timer=PHONE)    # a refresh without a body: answered here
    call.b_request(0, "ub", "UPDATE", "UPDATE", timer=Timer(90, "uac", supported=True))   # B is its UAC
    assert owner.take() == [Respond("a", "ua", 200, "OK"), Respond("b", "ub", 200, "OK", leg=0)]
    clock.advance(50)
    call.a_request("ua2", "UPDATE", "UPDATE", timer=PHONE)
    assert owner.take() == [Respond("a", "ua2", 200, "OK")]
    clock.advance(9.9)
    assert owner.take() == []
    clock.advance(0.1)   # B's last refresh was 60 s ago: 90 - min(32, 90/3) (§10)
    actions = owner.take()
    assert ByeA() in actions and ByeLeg(0) in actions
    assert reasons(actions) == ["session expired on side b"]


def test_the_b2bua_refreshes_a_side_without_timers_by_reinvite_and_one_that_left_it_to_us_by_update():
    clock, owner, call = make([["bob"]], timers=CallTimers(session_expires=120))
    assert owner.take() == [StartLeg(0, "bob", 120)]
    call.b_invite_response(0, 200, "200", sdp=True, timer=Timer(120, "uac", supported=True, update=True))
    assert owner.take() == [RespondA(200, "", "200", True)]
    call.a_ack("ACK")
    owner.take()
    assert call.session("a") == SessionTimer(120, True, False, False)   # A said nothing of timers
    assert call.session("b") == SessionTimer(120, True, True, True)     # refresher=uac is the B2BUA
    clock.advance(59.9)
    assert owner.take() == []
    clock.advance(0.1)
    assert owner.take() == [Refresh("a", ("own", 1), "INVITE"), Refresh("b", ("own", 2), "UPDATE", 0)]
    call.a_response(("own", 1), 100, "100")
    call.a_response(("own", 1), 200, "200")
    call.a_response(("own", 1), 200, "200")       # resent: its ACK was lost
    call.b_response(0, ("own", 2), 200, "200", timer=Timer(120, "uac", supported=True))
    assert owner.take() == [RelayAck("a", ("own", 1), None), RelayAck("a", ("own", 1), None)]
    clock.advance(59.9)
    assert owner.take() == []
    clock.advance(0.1)       # half the interval after the refreshes; the first expiry (80 s) has passed
    assert owner.take() == [Refresh("a", ("own", 3), "INVITE"), Refresh("b", ("own", 4), "UPDATE", 0)]
    assert call.state is CallState.CONFIRMED


def test_a_caller_that_supports_timers_but_asks_none_is_made_the_refresher():
    clock, owner, call = make([["bob"]], a_timer=Timer(supported=True, update=True),
                              timers=CallTimers(session_expires=600))
    call.b_invite_response(0, 200, "200", sdp=True, timer=Timer(600, "uas", supported=True))
    assert call.session("a") == SessionTimer(600, False, True, True)
    call.a_ack("ACK")
    owner.take()
    clock.advance(567.9)
    assert owner.take() == []       # both peers refresh: the B2BUA sends nothing
    clock.advance(0.1)
    assert reasons(owner.take()) == ["session expired on side a"]


def test_a_leg_without_timer_support_is_refreshed_at_the_interval_asked_for():
    clock, owner, call = make([["bob"]], a_timer=Timer(1800, supported=True), timers=CallTimers(session_expires=600))
    assert owner.take() == [StartLeg(0, "bob", 1800)]    # A's interval goes on to B
    call.b_invite_response(0, 200, "200", sdp=True)      # no Session-Expires: B knows no timers
    call.a_ack("ACK")
    owner.take()
    assert call.session("a") == SessionTimer(1800, False, False, True)
    assert call.session("b") == SessionTimer(1800, True, False, False)
    clock.advance(900)
    assert owner.take() == [Refresh("b", ("own", 1), "INVITE", 0)]


def test_a_refresh_answered_481_ends_the_call_and_other_failures_wait_for_the_expiry():
    clock, owner, call = make([["bob"]], timers=CallTimers(session_expires=90))
    call.b_invite_response(0, 200, "200", sdp=True, timer=Timer(90, "uas", supported=True))
    call.a_ack("ACK")
    clock.advance(45)
    assert owner.take()[-1] == Refresh("a", ("own", 1), "INVITE")
    call.a_response(("own", 1), 500, "500")      # not dead: the session simply is not refreshed
    assert owner.take() == []
    clock.advance(15)       # 90 - 30 after the answer
    assert reasons(owner.take()) == ["session expired on side a"]

    clock, owner, call = make([["bob"]], timers=CallTimers(session_expires=90))
    call.b_invite_response(0, 200, "200", sdp=True, timer=Timer(90, "uas", supported=True))
    call.a_ack("ACK")
    clock.advance(45)
    owner.take()
    call.a_response(("own", 1), 481, "481")
    actions = owner.take()
    assert ByeA() in actions and ByeLeg(0) in actions
    assert reasons(actions) == ["side a gone: 481 to a refresh"]


def test_a_refresh_waits_while_another_request_is_in_flight_in_its_dialog():
    clock, owner, call = make([["bob"]], timers=CallTimers(session_expires=90))
    call.b_invite_response(0, 200, "200", sdp=True, timer=Timer(90, "uas", supported=True))
    call.a_ack("ACK")
    clock.advance(44)
    call.a_request("hold", "INVITE", "re-INVITE", sdp=True)
    owner.take()
    clock.advance(1)
    assert owner.take() == []
    call.b_response(0, "hold", 200, "200", timer=Timer(90, "uas", supported=True))
    call.a_ack("ACK2")
    assert owner.take() == [Respond("a", "hold", 200, "", "200"), RelayAck("b", "hold", "ACK2", 0)]
    clock.advance(T2)
    assert owner.take() == []        # the re-INVITE refreshed A's side: the next is due at 45 s after it
    clock.advance(45 - T2)
    assert owner.take() == [Refresh("a", ("own", 1), "INVITE")]


def test_a_relayed_reinvite_refreshes_both_sides():
    clock, owner, call = make([["bob"]], a_timer=PHONE)
    call.b_invite_response(0, 200, "200", sdp=True, timer=Timer(90, "uas", supported=True))
    call.a_ack("ACK")
    clock.advance(50)
    call.a_request("k1", "INVITE", "re-INVITE", sdp=True, timer=Timer(100, "uac", supported=True))
    call.b_response(0, "k1", 200, "200", timer=Timer(100, "uas", supported=True))
    call.a_ack("ACK2")
    owner.take()
    assert call.session("a").interval == call.session("b").interval == 100
    clock.advance(66.6)     # 100 - 33.3... min(32, 100/3) = 32: 68 s after the refresh
    assert owner.take() == []
    clock.advance(1.4)
    assert reasons(owner.take()) == ["session expired on side a"]


def test_an_interval_below_min_se_gets_422_and_a_leg_asking_for_more_is_invited_again():
    clock, owner, call = make([["bob"]], timers=CallTimers(session_expires=120, min_se=90))
    owner.take()
    call.b_invite_response(0, 100, "100")
    call.b_invite_response(0, 422, "422", timer=Timer(min_se=300))
    assert owner.take() == [RetryLeg(0, 300)]
    assert call.legs[0].state is LegState.INVITING     # a new INVITE: no CANCEL before its 1xx
    call.b_invite_response(0, 200, "200", sdp=True, timer=Timer(300, "uac", supported=True))
    call.a_ack("ACK")
    owner.take()
    assert call.session("b") == SessionTimer(300, True, False, True)
    call.a_request("u", "UPDATE", "UPDATE", timer=Timer(60, "uac", supported=True))
    call.b_request(0, "i", "INVITE", "re-INVITE", sdp=True, timer=Timer(30))
    assert owner.take() == [Respond("a", "u", 422, "Session Interval Too Small", min_se=90),
                            Respond("b", "i", 422, "Session Interval Too Small", leg=0, min_se=90)]


def test_a_leg_that_422s_again_for_no_more_than_it_was_offered_fails():
    clock, owner, call = make([["bob"]], timers=CallTimers(session_expires=120))
    owner.take()
    call.b_invite_response(0, 422, "422", timer=Timer(min_se=120))
    assert owner.take()[0] == RespondA(422, "", "422")
    assert call.state is CallState.ENDED


def test_our_refresh_answered_422_goes_again_with_the_interval_asked():
    clock, owner, call = make([["bob"]], timers=CallTimers(session_expires=90))
    call.b_invite_response(0, 200, "200", sdp=True, timer=Timer(90, "uac", supported=True, update=True))
    call.a_ack("ACK")
    clock.advance(45)
    assert owner.take()[-1] == Refresh("b", ("own", 2), "UPDATE", 0)
    call.b_response(0, ("own", 2), 422, "422", timer=Timer(min_se=180))
    assert owner.take() == [Refresh("b", ("own", 3), "UPDATE", 0)] and call.session("b").interval == 180


def test_a_relayed_request_answered_422_raises_that_sides_interval_and_tells_the_requester():
    clock, owner, call = make([["bob"]], a_timer=PHONE)
    call.b_invite_response(0, 200, "200", sdp=True, timer=Timer(90, "uas", supported=True))
    call.a_ack("ACK")
    owner.take()
    call.a_request("k", "INVITE", "re-INVITE", sdp=True, timer=PHONE)
    call.b_response(0, "k", 422, "422", timer=Timer(min_se=400))
    assert owner.take() == [Relay("b", "k", "INVITE", "re-INVITE", 0),
                            Respond("a", "k", 422, "", "422", min_se=400)]
    assert call.session("b").interval == 400 and call.session("a").interval == 90


def test_only_requests_that_go_on_to_the_other_side_are_said_to_pass_the_relay():
    clock, owner, call = make([["bob"]], a_timer=PHONE)
    call.b_invite_response(0, 200, "200", sdp=True, timer=Timer(90, "uas", supported=True))
    call.a_ack("ACK")
    assert call.relays(None, "INVITE", True, PHONE) and call.relays(0, "INVITE", True, None)
    assert not call.relays(None, "INVITE", True, Timer(30))     # 422
    assert not call.relays(0, "UPDATE", False, None)            # a refresh, answered here
    call.a_request("hold", "INVITE", "re-INVITE", sdp=True)
    assert not call.relays(0, "INVITE", True, None)             # 491
    assert call.relays(0, "INFO", True, None)
    call.a_bye("bye")
    assert not call.relays(None, "INVITE", True, None)          # 481


# Early media from one fork, the answer from another (RFC 3261 §13.2.1, RFC 3960 §3).

def test_a_is_told_the_answering_legs_media_by_reinvite_after_its_ack():
    clock, owner, call = make([["desk", "mobile"]])
    owner.take()
    call.b_invite_response(0, 183, "183 desk", sdp=True)
    call.b_invite_response(1, 200, "200 mobile", sdp=True, new_media=True)
    assert owner.take() == [RespondA(183, "", "183 desk", True), RespondA(200, "", "200 mobile", True),
                            CancelLeg(0)]
    call.a_ack("ACK")
    assert owner.take() == [AckLeg(1, "ACK"), Refresh("a", ("own", 1), "INVITE", None, "200 mobile")]
    call.b_request(1, "b1", "INVITE", "re-INVITE", sdp=True)   # B's offer meets ours in flight
    assert owner.take() == [Respond("b", "b1", 491, "Request Pending", leg=1)]
    call.a_response(("own", 1), 200, "200 from A")
    assert owner.take() == [RelayAck("a", ("own", 1), None)]    # A's answer goes nowhere: B has its own


def test_the_same_media_from_another_leg_needs_no_reinvite():
    clock, owner, call = make([["desk", "mobile"]])
    call.b_invite_response(0, 183, "183 desk", sdp=True)
    call.b_invite_response(1, 200, "200 mobile", sdp=True, new_media=False)   # the relay's, say
    call.a_ack("ACK")
    assert [a for a in owner.take() if isinstance(a, Refresh)] == []


def test_a_reinvite_passes_through_both_ways_with_its_ack():
    clock, owner, call = make([["bob"]])
    answer(call, owner)
    call.a_request("hold", "INVITE", "re-INVITE sendonly", sdp=True)
    call.b_response(0, "hold", 100, "100")
    call.b_response(0, "hold", 200, "200 recvonly")
    call.a_ack("ACK2")
    assert owner.take() == [Relay("b", "hold", "INVITE", "re-INVITE sendonly", 0),
                            Respond("a", "hold", 100, "", "100"), Respond("a", "hold", 200, "", "200 recvonly"),
                            RelayAck("b", "hold", "ACK2", 0)]
    call.b_request(0, "codec", "INVITE", "re-INVITE", sdp=True)
    call.a_response("codec", 200, "200")
    call.a_response("codec", 200, "200")   # A resends its 2xx: it reaches B again
    call.b_ack(0, "ACK3")
    assert owner.take() == [Relay("a", "codec", "INVITE", "re-INVITE"), Respond("b", "codec", 200, "", "200", 0),
                            Respond("b", "codec", 200, "", "200", 0), RelayAck("a", "codec", "ACK3")]
    call.a_request("info", "INFO", "INFO dtmf")
    call.b_response(0, "info", 200, "200")
    assert owner.take() == [Relay("b", "info", "INFO", "INFO dtmf", 0), Respond("a", "info", 200, "", "200")]


def test_a_second_offer_while_one_is_in_flight_gets_491():
    clock, owner, call = make([["bob"]])
    answer(call, owner)
    call.a_request("a1", "INVITE", "re-INVITE", sdp=True)
    call.b_request(0, "b1", "INVITE", "re-INVITE", sdp=True)
    call.b_request(0, "b2", "UPDATE", "UPDATE", sdp=True)
    call.b_request(0, "b3", "INFO", "INFO")   # no offer: passes
    assert owner.take()[1:] == [Respond("b", "b1", 491, "Request Pending", leg=0),
                                Respond("b", "b2", 491, "Request Pending", leg=0),
                                Relay("a", "b3", "INFO", "INFO")]


def test_a_bye_during_a_reinvite_answers_the_pending_reinvite_with_487():
    clock, owner, call = make([["bob"]])
    answer(call, owner)
    call.a_request("hold", "INVITE", "re-INVITE", sdp=True)
    owner.take()
    call.b_bye(0, "bye")
    actions = owner.take()
    assert Respond("a", "hold", 487, "Request Terminated") in actions and ByeA() in actions
    assert not call.b_response(0, "hold", 487, "487")   # B's own answer to it is absorbed
    assert call.a_request("late", "INVITE", "re-INVITE", sdp=True)
    assert owner.take() == [Respond("a", "late", 481, "Call/Transaction Does Not Exist")]


def test_early_media_comes_from_the_first_leg_with_sdp_and_early_requests_go_there():
    clock, owner, call = make([["a", "b"]])
    owner.take()
    call.b_invite_response(1, 183, "183 b", sdp=True)
    call.b_invite_response(0, 183, "183 a", sdp=True)
    assert owner.take() == [RespondA(183, "", "183 b", True), RespondA(183, "", "183 a", False)]
    call.a_request("u", "UPDATE", "UPDATE", sdp=True)
    call.b_response(1, "u", 200, "200")
    assert owner.take() == [Relay("b", "u", "UPDATE", "UPDATE", 1), Respond("a", "u", 200, "", "200")]
    call.b_request(0, "i", "INFO", "INFO")
    call.b_request(1, "j", "INFO", "INFO")
    assert owner.take() == [Respond("b", "i", 491, "Request Pending", leg=0), Relay("a", "j", "INFO", "INFO")]


def test_reliable_provisionals_are_relayed_one_at_a_time_and_prack_goes_to_their_leg():
    clock, owner, call = make([["bob"]], a_100rel=True)
    owner.take()
    call.b_invite_response(0, 183, "183", sdp=True, reliable=True, rseq=77)
    assert owner.take() == [RespondA(183, "", "183", True, reliable=True, rseq=1)]
    call.b_invite_response(0, 183, "183", sdp=True, reliable=True, rseq=77)   # B resends it
    call.b_invite_response(0, 180, "180", reliable=True, rseq=78)             # waits its turn
    assert owner.take() == []
    clock.advance(T1)
    assert owner.take() == [RespondA(183, "", "183", True, reliable=True, rseq=1)]
    call.a_request("p1", "PRACK", "PRACK", rack=1)
    assert owner.take() == [Relay("b", "p1", "PRACK", "PRACK", 0, 77),
                            RespondA(180, "", "180", False, reliable=True, rseq=2)]
    call.b_response(0, "p1", 200, "200")
    assert owner.take() == [Respond("a", "p1", 200, "", "200")]
    call.a_request("p9", "PRACK", "PRACK", rack=9)
    assert owner.take() == [Respond("a", "p9", 481, "Call/Transaction Does Not Exist")]
    clock.advance(64 * T1)
    actions = owner.take()
    assert RespondA(500, "Server Internal Error: no PRACK for a reliable provisional") in actions
    assert CancelLeg(0) in actions


def test_a_prack_that_crosses_the_2xx_still_reaches_its_leg_or_is_answered_here():
    clock, owner, call = make([["desk", "mobile"]], a_100rel=True)
    owner.take()
    call.b_invite_response(0, 183, "183 desk", sdp=True, reliable=True, rseq=7)
    call.a_request("p1", "PRACK", "PRACK", rack=1)
    call.b_invite_response(1, 180, "180 mobile", reliable=True, rseq=40)
    owner.take()
    call.b_invite_response(1, 200, "200 mobile", sdp=True)
    owner.take()
    call.a_request("p2", "PRACK", "PRACK", rack=2)      # for the mobile's 180, after its 2xx
    call.a_ack("ACK")
    call.a_request("p9", "PRACK", "PRACK", rack=9)
    assert owner.take() == [Relay("b", "p2", "PRACK", "PRACK", 1, 40), AckLeg(1, "ACK"),
                            Respond("a", "p9", 481, "Call/Transaction Does Not Exist")]
    call.b_response(1, "p2", 200, "200")
    call.a_request("p3", "PRACK", "PRACK", rack=1)      # the desk's 183 again: the desk was cancelled
    assert owner.take() == [Respond("a", "p2", 200, "", "200"), Respond("a", "p3", 200, "OK")]


def test_a_caller_without_100rel_gets_plain_provisionals_and_the_b2bua_pracks_itself():
    clock, owner, call = make([["bob"]])
    owner.take()
    call.b_invite_response(0, 183, "183", sdp=True, reliable=True, rseq=5)
    assert owner.take() == [PrackLeg(0, 5), RespondA(183, "", "183", True)]


def test_unknown_events_are_absorbed_and_reported():
    clock, owner, call = make([["bob"]])
    owner.take()
    assert not call.a_ack("stray ACK")
    assert not call.b_bye(0, "k")
    assert owner.take() == []


def test_a_call_needs_targets():
    with pytest.raises(ValueError):
        Call(Recorder(), Clock(), [])
    with pytest.raises(ValueError):
        Call(Recorder(), Clock(), [["a"], []])


def test_best_prefers_6xx_then_heard_then_the_lowest_class():
    answers = [Answer(408, None, False, 0), Answer(503, "503", True, 1), Answer(486, "486", True, 2)]
    assert best(answers).status == 486
    assert best(answers + [Answer(603, "603", True, 3)]).status == 603
    assert best(answers[:2]).status == 503


def test_lost_media_ends_an_answered_call_on_both_sides():
    clock, owner, call = make([["bob"]])
    answer(call, owner)
    assert call.media_lost("no media for 60000 ms")
    actions = owner.take()
    assert ByeA() in actions and ByeLeg(0) in actions
    assert [a.record.reason for a in actions if isinstance(a, Ended)] == ["media: no media for 60000 ms"]


def test_lost_media_while_ringing_refuses_the_call():
    clock, owner, call = make([["bob"]])
    call.b_invite_response(0, 180, "180")
    owner.take()
    call.media_lost("forwarder gone")
    actions = owner.take()
    assert actions[:2] == [RespondA(503, "Service Unavailable: the media relay lost the call"), CancelLeg(0)]
    assert actions[-1].record.disposition == "failed"


def test_media_that_never_came_up_fails_a_ringing_call_with_its_cause():
    clock, owner, call = make([["bob"]])
    call.b_invite_response(0, 183, "183", sdp=True)
    owner.take()
    assert call.media_failed("media of the browser on leg a not set up: ICE did not complete within 20 s")
    actions = owner.take()
    assert actions[:2] == [RespondA(503, "Service Unavailable: the media could not be set up: media of the browser "
                                         "on leg a not set up: ICE did not complete within 20 s"), CancelLeg(0)]
    record = actions[-1].record
    assert (record.disposition, record.status, record.hung_up_by, record.answer_ms) == ("failed", 503, "system", None)


def test_media_that_never_came_up_after_the_answer_ends_both_sides_with_a_reason_and_is_no_talk():
    clock, owner, call = make([["bob"]])
    answer(call, owner)
    clock.advance(0.3)
    assert call.media_failed('media of the browser on leg b not set up: DTLS failed: "mismatch"')
    actions = owner.take()
    cause = 'SIP ;cause=503 ;text="media of the browser on leg b not set up: DTLS failed: \\"mismatch\\""'
    assert ByeA(cause) in actions and ByeLeg(0, cause) in actions
    [record] = [a.record for a in actions if isinstance(a, Ended)]
    assert (record.disposition, record.status, record.hung_up_by) == ("failed", 200, "system")
    assert record.answer_ms is not None and record.reason.startswith("setup: media of the browser on leg b")
    assert not call.media_failed("again") and not call.media_lost("and again")
    # A call whose media merely got lost later keeps its plain BYEs and is answered talk.
    clock, owner, call = make([["bob"]])
    answer(call, owner)
    call.media_lost("no media")
    assert {ByeA(), ByeLeg(0)} <= set(owner.actions) and owner.ended()[0].disposition == "answered"


def test_an_admission_never_committed_ends_the_call_as_lost_media_does():
    clock, owner, call = make([["bob"]])
    call.b_invite_response(0, 180, "180")
    owner.take()
    assert call.store_lost("not committed")
    actions = owner.take()
    assert actions[:2] == [RespondA(503, "Service Unavailable: the call's admission could not be written"),
                           CancelLeg(0)]
    assert (actions[-1].record.disposition, actions[-1].record.reason) == ("failed", "store: not committed")
    answered_clock, answered_owner, answered_call = make([["bob"]])
    answer(answered_call, answered_owner)
    assert answered_call.store_lost("not committed")
    assert {ByeA(), ByeLeg(0)} <= set(answered_owner.take())
    assert not answered_call.store_lost("again")      # ended: nothing more to do
