"""A SIP connection's lifetime on a task.Clock: set-up deadlines (TLS handshake, WebSocket
upgrade), the idle timeout and what holds a connection open past it (traffic, a live
registration binding, a call), and making room under the cap by closing the connection
idle longest that carries nothing."""

from twisted.internet.task import Clock

from wevoip.sip.flow import Flow
from wevoip.sip.lifetime import Lifetimes, Timeouts


def lifetimes(clock):
    return Lifetimes(clock, Timeouts(idle=100, tls_handshake=5, ws_upgrade=8))


def watched(owner, flow=True):
    ended = []
    lifetime = owner.watch(ended.append)
    if flow:
        lifetime.flow = Flow("tcp", ("192.0.2.1", 5000), ("127.0.0.1", 5060), lambda data: None)
    return lifetime, ended


def test_an_idle_connection_is_closed_after_idle_seconds_and_traffic_pushes_that_back():
    clock = Clock()
    owner = lifetimes(clock)
    lifetime, ended = watched(owner)
    clock.advance(60)
    lifetime.received()  # a CRLF keep-alive counts like a message
    clock.advance(99)
    assert ended == []
    clock.advance(1)
    assert ended == ["idle"] and owner.closed["idle"] == 1 and len(owner) == 0


def test_a_live_registration_binding_keeps_a_connection_until_it_expires():
    clock = Clock()
    owner = lifetimes(clock)
    lifetime, ended = watched(owner)
    lifetime.flow.hold_until(clock.seconds() + 250)
    clock.advance(200)
    assert ended == []
    clock.advance(100)
    assert ended == ["idle"]


def test_a_keeper_keeps_a_connection_while_a_call_runs_over_it():
    clock = Clock()
    owner = lifetimes(clock)
    lifetime, ended = watched(owner)
    calls = {lifetime.flow}
    owner.keep_while(lambda flow: flow in calls)
    clock.advance(1000)
    assert ended == []
    calls.clear()
    clock.advance(100)
    assert ended == ["idle"]


def test_a_tls_handshake_not_done_in_time_ends_the_connection():
    clock = Clock()
    owner = lifetimes(clock)
    slow, slow_ended = watched(owner, flow=False)
    slow.await_setup("handshake")
    quick, quick_ended = watched(owner, flow=False)
    quick.await_setup("handshake")
    clock.advance(4)
    quick.done("handshake")
    slow.received()  # bytes that are not a finished handshake do not help
    clock.advance(1)
    assert slow_ended == ["handshake"] and owner.closed["handshake"] == 1
    assert quick_ended == []


def test_a_websocket_upgrade_not_done_in_time_ends_the_connection():
    clock = Clock()
    owner = lifetimes(clock)
    lifetime, ended = watched(owner, flow=False)
    lifetime.await_setup("handshake")
    lifetime.await_setup("upgrade")
    clock.advance(3)
    lifetime.done("handshake")
    clock.advance(5)
    assert ended == ["upgrade"] and owner.closed["upgrade"] == 1
    assert clock.getDelayedCalls() == [], "a connection gone leaves no timer behind"


def test_stopping_cancels_every_timer():
    clock = Clock()
    owner = lifetimes(clock)
    lifetime, ended = watched(owner)
    lifetime.await_setup("upgrade")
    lifetime.stop()
    clock.advance(1000)
    assert ended == [] and clock.getDelayedCalls() == [] and len(owner) == 0


def test_making_room_closes_the_connection_idle_longest_that_carries_nothing():
    clock = Clock()
    owner = lifetimes(clock)
    registered, registered_ended = watched(owner)
    registered.flow.hold_until(clock.seconds() + 3600)
    clock.advance(1)
    idle, idle_ended = watched(owner)
    clock.advance(1)
    talking, talking_ended = watched(owner)
    clock.advance(1)
    idle.received()
    assert owner.make_room()
    assert talking_ended == ["evicted"] and idle_ended == [] and registered_ended == []
    assert owner.make_room() and idle_ended == ["evicted"]
    assert not owner.make_room(), "a connection holding a registration is never evicted"
    assert registered_ended == [] and owner.closed["evicted"] == 2
