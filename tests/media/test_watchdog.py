from twisted.internet import task

from wevoip.media.watchdog import Watchdog


def test_silence_is_reported_once_after_the_timeout_counted_from_the_last_packet():
    clock = task.Clock()
    silent = []
    watchdog = Watchdog(clock, lambda key, seconds: silent.append((key, seconds)))
    watchdog.watch("call", 10)
    clock.advance(6)
    watchdog.heard("call")
    clock.advance(6)
    assert silent == []
    clock.advance(4)
    assert silent == [("call", 10)] and "call" not in watchdog
    clock.advance(100)
    assert len(silent) == 1


def test_a_new_timeout_applies_from_the_last_packet_and_forget_stops_it():
    clock = task.Clock()
    silent = []
    watchdog = Watchdog(clock, lambda key, seconds: silent.append(key))
    watchdog.watch("held", 10)
    clock.advance(5)
    watchdog.watch("held", 60)
    clock.advance(50)
    assert silent == []
    watchdog.watch("held", 10)
    assert silent == []
    clock.advance(0)
    assert silent == ["held"]
    watchdog.watch("gone", 1)
    watchdog.forget("gone")
    watchdog.heard("gone")
    clock.advance(5)
    assert silent == ["held"] and not clock.getDelayedCalls()
