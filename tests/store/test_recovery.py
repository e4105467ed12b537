"""The reconnection schedule after a lost database, on a Clock: at once, then a doubling
wait up to a ceiling, a Retry-After that counts down to the next try, and a fresh start
after a success."""

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock

from wevoip.store.errors import StoreError
from wevoip.store.recovery import Backoff, Reconnector


class Server:
    """Attempts fail until `up` is set; each attempt is remembered with its time."""

    def __init__(self, clock):
        self.clock = clock
        self.up = False
        self.tried_at = []

    async def attempt(self):
        self.tried_at.append(self.clock.seconds())
        if not self.up:
            raise StoreError("cannot connect to PostgreSQL: no such file")


def test_the_backoff_doubles_up_to_its_ceiling_and_starts_afresh_after_a_reset():
    backoff = Backoff(first=0.5, ceiling=4)
    assert [backoff.next_delay() for _ in range(6)] == [0.5, 1, 2, 4, 4, 4]
    backoff.reset()
    assert backoff.next_delay() == 0.5
    with pytest.raises(ValueError):
        Backoff(first=0, ceiling=1)
    with pytest.raises(ValueError):
        Backoff(first=2, ceiling=1)


def test_attempts_go_at_once_then_after_growing_waits_until_one_succeeds():
    clock = Clock()
    server = Server(clock)
    reconnector = Reconnector(clock, server.attempt, Backoff(first=0.5, ceiling=4))
    back = []
    reconnector.start()
    reconnector.when_back().addCallback(back.append)
    reconnector.start()                     # a second loss report changes nothing
    assert reconnector.active and server.tried_at == []
    clock.advance(0)
    clock.pump([0.25] * 8)
    assert server.tried_at == [0, 0.5, 1.5]
    clock.pump([0.5] * 12)
    assert server.tried_at == [0, 0.5, 1.5, 3.5, 7.5]
    server.up = True
    clock.pump([0.5] * 8)
    assert server.tried_at[-1] == 11.5 and back == [None]
    assert not reconnector.active and reconnector.attempts == 6
    clock.pump([1] * 100)
    assert len(server.tried_at) == 6        # nothing more once it is back


def test_retry_after_counts_down_to_the_next_attempt_in_whole_seconds():
    clock = Clock()
    server = Server(clock)
    reconnector = Reconnector(clock, server.attempt, Backoff(first=2, ceiling=30))
    reconnector.start()
    clock.advance(0)                        # failed; next in 2 s
    assert reconnector.retry_after() == 2
    clock.advance(1.5)
    assert reconnector.retry_after() == 1   # never 0: "now" would invite a stampede
    clock.advance(0.5)                      # failed again; next in 4 s
    assert reconnector.retry_after() == 4


def test_a_second_loss_after_recovery_starts_the_schedule_again():
    clock = Clock()
    server = Server(clock)
    reconnector = Reconnector(clock, server.attempt, Backoff(first=1, ceiling=8))
    reconnector.start()
    clock.advance(0)
    clock.advance(1)
    clock.advance(2)
    server.up = True
    clock.advance(4)
    assert server.tried_at == [0, 1, 3, 7] and not reconnector.active
    server.up = False
    reconnector.start()
    clock.advance(0)
    clock.advance(1)
    assert server.tried_at[4:] == [7, 8] and reconnector.attempts == 2


def test_stopping_cancels_the_next_attempt_and_waits_for_one_under_way():
    clock = Clock()
    slow = defer.Deferred()
    calls = []

    async def attempt():
        calls.append(clock.seconds())
        await slow
    reconnector = Reconnector(clock, attempt, Backoff(first=1, ceiling=1))
    reconnector.start()
    clock.advance(0)
    stopped = defer.ensureDeferred(reconnector.stop())
    assert not stopped.called               # the attempt is still starting a server
    slow.errback(StoreError("gone"))
    assert stopped.called
    clock.advance(10)
    assert calls == [0] and not reconnector.active
