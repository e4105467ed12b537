"""Coarse timers share one DelayedCall per slot and fire at most one resolution late."""

from twisted.internet.task import Clock

from wevoip.sip.timerwheel import TimerWheel


def test_long_timers_share_slots_fire_late_by_under_a_resolution_and_cancel():
    clock = Clock()
    wheel = TimerWheel(clock, resolution=1.0)
    fired = []
    for delay in (32.1, 32.4, 32.9):
        wheel.callLater(delay, fired.append, delay)
    cancelled = wheel.callLater(32.5, fired.append, "cancelled")
    cancelled.cancel()
    assert not cancelled.active() and len(clock.getDelayedCalls()) == 1 and wheel.pending() == 3
    clock.advance(32.0)
    assert fired == []
    clock.advance(1.0)
    assert fired == [32.1, 32.4, 32.9] and wheel.pending() == 0 and clock.getDelayedCalls() == []


def test_short_delays_go_straight_to_the_clock():
    clock = Clock()
    wheel = TimerWheel(clock, resolution=1.0)
    fired = []
    call = wheel.callLater(0.5, fired.append, "now-ish")
    clock.advance(0.5)
    assert fired == ["now-ish"] and not call.active()
