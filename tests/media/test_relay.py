import os
import wave

import numpy as np
import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from tests.media.phones import Phone, drain, phones, receive, rtcp_receiver_report, rtp  # noqa: F401 (a fixture)
from wevoip.config import MediaConfig
from wevoip.interfaces import IMediaRelay, IMediaSession, MediaUnavailable
from wevoip.media.endpoint import MediaEndpoint, write_wav
from wevoip.media.g711 import PCMU
from wevoip.media.relay import Flow, InProcessRelay
from wevoip.media.sdp import SdpError, parse
from zope.interface.verify import verifyObject

CONFIG = MediaConfig(rtp_address="127.0.0.1", rtp_port_min=43000, rtp_port_max=44999,
                     no_media_timeout_ms=30_000, hold_timeout_ms=600_000, relatch_after_ms=300)


def open_fds(pid="self"):
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.fixture(scope="module")
def clock():
    return task.Clock()


@pytest.fixture(scope="module", params=["process", "thread"])
def relay(request, clock):
    from dataclasses import replace
    relay = InProcessRelay(reactor, replace(CONFIG, forwarder=request.param), clock=clock)
    relay.startService()
    pytest_twisted.blockon(relay.ready)
    yield relay
    pytest_twisted.blockon(relay.stopService())


async def call(relay, a, b, lost=None):
    session = await relay.allocate("call-1", (lost if lost is not None else []).append)
    offer = parse(await session.offer("a", a.sdp("a=rtcp:%d\r\n" % (a.port + 1))))
    answer = parse(await session.answer("b", b.sdp()))
    return session, offer, answer


def relay_ports(offer, answer):
    """(port A sends to, port B sends to)."""
    return answer.media[0].port, offer.media[0].port


@pytest_twisted.ensureDeferred
async def test_both_phones_are_pointed_at_the_relay_and_media_flows_both_ways(relay, phones):
    a, b, _ = phones
    verifyObject(IMediaRelay, relay)
    session, offer, answer = await call(relay, a, b)
    verifyObject(IMediaSession, session)
    to_a, to_b = relay_ports(offer, answer)
    assert offer.connection.address == answer.connection.address == "127.0.0.1"
    assert offer.origin.address == "127.0.0.1"
    assert to_a % 2 == 0 and to_b % 2 == 0 and to_a != to_b
    assert offer.media[0].rtcp == (to_b + 1, None)
    assert [c.name for c in offer.media[0].codecs()] == ["PCMU", "PCMA", "telephone-event"]

    a.rtp.sendto(rtp(1), ("127.0.0.1", to_a))
    data, source = receive(b.rtp)
    assert data == rtp(1) and source == ("127.0.0.1", to_b)
    b.rtp.sendto(rtp(7, ssrc=9), ("127.0.0.1", to_b))
    data, source = receive(a.rtp)
    assert data == rtp(7, ssrc=9) and source == ("127.0.0.1", to_a)

    a.rtcp.sendto(rtcp_receiver_report(), ("127.0.0.1", to_a + 1))
    data, source = receive(b.rtcp)
    assert data == rtcp_receiver_report() and source == ("127.0.0.1", to_b + 1)
    b.rtcp.sendto(rtcp_receiver_report(5), ("127.0.0.1", to_b + 1))
    assert receive(a.rtcp)[0] == rtcp_receiver_report(5)

    dtmf = rtp(2, payload_type=101, payload=bytes([5, 0x8A, 0x03, 0x20]), marker=True)
    a.rtp.sendto(dtmf, ("127.0.0.1", to_a))
    assert receive(b.rtp)[0] == dtmf
    await session.release()


@pytest_twisted.ensureDeferred
async def test_latching_follows_the_phone_behind_nat_and_refuses_a_stranger(relay, phones):
    a, b, stranger = phones
    nat = Phone()
    try:
        session, offer, answer = await call(relay, a, b)
        to_a, to_b = relay_ports(offer, answer)
        b.rtp.sendto(rtp(1), ("127.0.0.1", to_b))
        assert receive(a.rtp)[0] == rtp(1), "before A's first packet the relay sends where A's SDP said"

        nat.rtp.sendto(rtp(1, ssrc=0xA), ("127.0.0.1", to_a))
        assert receive(b.rtp)[0] == rtp(1, ssrc=0xA)
        b.rtp.sendto(rtp(2), ("127.0.0.1", to_b))
        assert receive(nat.rtp)[0] == rtp(2), "after it, to where A's packets come from"
        assert receive(a.rtp, 0.1) is None

        stranger.rtp.sendto(rtp(3, ssrc=0xBAD), ("127.0.0.1", to_a))
        nat.rtp.sendto(rtp(4, ssrc=0xA), ("127.0.0.1", to_a))
        assert receive(b.rtp)[0] == rtp(4, ssrc=0xA), "the stranger's packet was dropped"
        b.rtp.sendto(rtp(5), ("127.0.0.1", to_b))
        assert receive(nat.rtp)[0] == rtp(5)

        await task.deferLater(reactor, 0.4, lambda: None)  # longer than relatch_after_ms
        stranger.rtp.sendto(rtp(6, ssrc=0xC), ("127.0.0.1", to_a))
        assert receive(b.rtp)[0] == rtp(6, ssrc=0xC)
        b.rtp.sendto(rtp(7), ("127.0.0.1", to_b))
        assert receive(stranger.rtp)[0] == rtp(7), "a silent latch is given up for the new source"

        await session.offer("b", b.sdp(port=nat.port))
        stranger.rtp.sendto(rtp(8), ("127.0.0.1", to_a))
        assert receive(nat.rtp)[0] == rtp(8), "a re-INVITE moving B unlatches B"
        await session.offer("b", b.sdp().replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4 0.0.0.0"))
        stranger.rtp.sendto(rtp(9), ("127.0.0.1", to_a))
        assert receive(nat.rtp, 0.1) is None and receive(b.rtp, 0.1) is None, "0.0.0.0 means hold"
        await session.release()
        foreign = sum(counts[2] for counts in session.stats.values())
        assert foreign == 1
    finally:
        nat.close()


@pytest_twisted.ensureDeferred
async def test_the_flow_counts_what_reached_the_other_side_each_way_once_released(relay, phones):
    a, b, _ = phones
    session, offer, answer = await call(relay, a, b)
    to_a, to_b = relay_ports(offer, answer)
    for sequence in range(3):
        a.rtp.sendto(rtp(sequence), ("127.0.0.1", to_a))
        assert receive(b.rtp)[0] == rtp(sequence)
    b.rtcp.sendto(rtcp_receiver_report(), ("127.0.0.1", to_b + 1))     # RTCP is not media
    assert receive(a.rtcp)[0] == rtcp_receiver_report()
    assert session.flow() is None, "the forwarder counts once it lets go of the ports"
    await session.release()
    assert session.flow() == Flow(a_to_b=3, b_to_a=0)

    # B held with 0.0.0.0: what A sends has nowhere to go, so it did not reach B.
    session, offer, answer = await call(relay, a, b)
    to_a, to_b = relay_ports(offer, answer)
    await session.offer("b", b.sdp().replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4 0.0.0.0"))
    a.rtp.sendto(rtp(1), ("127.0.0.1", to_a))
    b.rtp.sendto(rtp(2), ("127.0.0.1", to_b))
    assert receive(a.rtp)[0] == rtp(2) and receive(b.rtp, 0.1) is None
    await session.release()
    assert session.flow() == Flow(a_to_b=0, b_to_a=1)


@pytest_twisted.ensureDeferred
async def test_junk_is_dropped_before_it_can_latch_and_hurts_nothing(relay, phones):
    a, b, stranger = phones
    session, offer, answer = await call(relay, a, b)
    to_a, to_b = relay_ports(offer, answer)
    for junk in (b"", b"\x80", b"x" * 11, b"\x00" * 200, bytes([0x40]) + b"\0" * 20, b"\xc0" * 40):
        stranger.rtp.sendto(junk, ("127.0.0.1", to_a))
        stranger.rtcp.sendto(junk[:7], ("127.0.0.1", to_a + 1))
    stranger.rtp.sendto(b"\x80" * 5000, ("127.0.0.1", to_a))
    a.rtp.sendto(rtp(1), ("127.0.0.1", to_a))
    assert receive(b.rtp)[0] == rtp(1)
    b.rtp.sendto(rtp(2), ("127.0.0.1", to_b))
    assert receive(a.rtp)[0] == rtp(2), "the junk did not latch A's side"
    assert receive(b.rtp, 0.1) is None
    await session.release()
    assert sum(counts[1] for counts in session.stats.values()) == 13


@pytest_twisted.ensureDeferred
async def test_t38_passes_through_untouched_after_a_reinvite_to_image(relay, phones):
    a, b, _ = phones
    session, offer, answer = await call(relay, a, b)
    t38 = "m=image {port} udptl t38\r\na=T38FaxVersion:0\r\na=T38FaxUdpEC:t38UDPRedundancy\r\n"
    reoffer = parse(await session.offer("b", b.sdp(media=t38)))
    reanswer = parse(await session.answer("a", a.sdp(media=t38)))
    assert reoffer.media[0].is_t38 and reoffer.media[0].t38_options()["T38FaxUdpEC"] == "t38UDPRedundancy"
    to_a, to_b = reoffer.media[0].port, reanswer.media[0].port
    assert (to_a, to_b) == relay_ports(offer, answer), "the stream keeps its ports"
    udptl = bytes([0x00, 0x01, 0x02, 0x10]) + b"fax page"
    a.rtp.sendto(udptl, ("127.0.0.1", to_a))
    assert receive(b.rtp)[0] == udptl
    b.rtp.sendto(udptl[::-1], ("127.0.0.1", to_b))
    assert receive(a.rtp)[0] == udptl[::-1]
    await session.release()


@pytest_twisted.ensureDeferred
async def test_bad_descriptions_fail_with_sdp_error_and_take_no_ports(relay, phones):
    a, _, _ = phones
    free = relay.pool.available
    session = await relay.allocate("bad", [].append)
    for sdp in (b"nonsense", a.sdp().replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4 phone.example"),
                a.sdp().replace(b"c=IN IP4 127.0.0.1", b"c=IN IP6 ::1"),
                a.sdp("a=rtcp:4001 IN IP4 rtcp.example\r\n")):
        with pytest.raises(SdpError):
            await session.offer("a", sdp)
    with pytest.raises(ValueError):
        await session.offer("c", a.sdp())
    assert relay.pool.available == free
    await session.release()
    with pytest.raises(MediaUnavailable):
        await session.offer("a", a.sdp())


@pytest_twisted.ensureDeferred
async def test_no_media_ends_the_call_once_and_frees_its_ports(relay, clock, phones):
    a, b, _ = phones
    free = relay.pool.available
    lost = []
    session, offer, answer = await call(relay, a, b, lost)
    to_a, _ = relay_ports(offer, answer)
    clock.advance(20)
    heard = defer.Deferred()
    original = relay.watchdog.heard
    relay.watchdog.heard = lambda key: (original(key), key is not session or heard.called or heard.callback(None))
    try:
        a.rtp.sendto(rtp(1), ("127.0.0.1", to_a))
        await heard
    finally:
        relay.watchdog.heard = original
    drain(b.rtp)
    clock.advance(20)
    assert lost == [], "media 20 s ago keeps the call up"
    clock.advance(11)
    assert lost == ["no media for 31000 ms"]
    await session.release()
    assert relay.pool.available == free
    clock.advance(100)
    assert len(lost) == 1


@pytest_twisted.ensureDeferred
async def test_a_call_on_hold_gets_the_hold_timeout(relay, clock, phones):
    a, b, _ = phones
    lost = []
    session, _, _ = await call(relay, a, b, lost)
    await session.offer("a", a.sdp("a=sendonly\r\n"))
    await session.answer("b", b.sdp("a=recvonly\r\n"))
    clock.advance(60)
    assert lost == []
    await session.offer("a", a.sdp("a=sendrecv\r\n"))
    await session.answer("b", b.sdp())
    clock.advance(31)
    assert lost == ["no media for 91000 ms"]
    await session.release()


@pytest_twisted.ensureDeferred
async def test_a_pool_too_small_for_the_offer_refuses_it_whole():
    small = InProcessRelay(reactor, MediaConfig(rtp_address="127.0.0.1", rtp_port_min=45100,
                                                rtp_port_max=45105, forwarder="thread"))
    small.startService()
    phone = Phone()
    try:
        assert small.pool.size == 3
        session = await small.allocate("small", [].append)
        two_streams = phone.sdp(media="m=audio {port} RTP/AVP 0\r\nm=audio {port} RTP/AVP 8\r\n")
        with pytest.raises(MediaUnavailable):
            await session.offer("a", two_streams)
        await session.release()
        assert small.pool.available == 3
        session = await small.allocate("fits", [].append)
        assert parse(await session.offer("a", phone.sdp())).media[0].port in (45100, 45102, 45104)
        await session.release()
        assert small.pool.available == 3
    finally:
        phone.close()
        await small.stopService()


@pytest_twisted.ensureDeferred
async def test_a_dead_forwarder_ends_its_calls_frees_every_port_and_is_replaced(phones):
    a, b, _ = phones
    relay = InProcessRelay(reactor, MediaConfig(rtp_address="127.0.0.1", rtp_port_min=45200, rtp_port_max=45299))
    relay.startService()
    try:
        lost = []
        session, offer, answer = await call(relay, a, b, lost)
        first = relay.forwarder_pid
        ended = relay._process_ended
        os.kill(first, 9)
        await ended
        while relay.forwarder_pid == first:
            await task.deferLater(reactor, 0.01, lambda: None)
        assert lost == ["the media relay stopped"]
        assert relay.pool.available == relay.pool.size
        await session.release()
        session, offer, answer = await call(relay, a, b)
        to_a, _ = relay_ports(offer, answer)
        a.rtp.sendto(rtp(1), ("127.0.0.1", to_a))
        assert receive(b.rtp)[0] == rtp(1)
    finally:
        await relay.stopService()


@pytest_twisted.ensureDeferred
async def test_a_thousand_calls_with_traffic_leak_no_port_and_no_descriptor(relay, clock):
    pairs = [(Phone(), Phone()) for _ in range(20)]
    try:
        def counts():
            forwarder = open_fds(relay.forwarder_pid) if relay.forwarder_pid else None
            return relay.pool.available, open_fds(), forwarder
        before = counts()
        assert before[0] == relay.pool.size
        for batch in range(50):
            lost = []
            calls = []
            for a, b in pairs:
                session, offer, answer = await call(relay, a, b, lost)
                calls.append((session, *relay_ports(offer, answer)))
            assert relay.pool.available == relay.pool.size - 2 * len(pairs)
            for (a, b), (session, to_a, to_b) in zip(pairs, calls):
                a.rtp.sendto(rtp(batch), ("127.0.0.1", to_a))
                b.rtcp.sendto(rtcp_receiver_report(batch), ("127.0.0.1", to_b + 1))
            for (a, b), (session, to_a, to_b) in zip(pairs, calls):
                assert receive(b.rtp)[0] == rtp(batch)
                assert receive(a.rtcp)[0] == rtcp_receiver_report(batch)
            path = batch % 3
            if path == 1:
                clock.advance(CONFIG.no_media_timeout_ms / 1000 + 1)
                assert len(lost) == len(pairs)
            elif path == 2:
                for session, _, _ in calls:
                    with pytest.raises(SdpError):
                        await session.answer("b", b"v=0\r\n")
            await defer.gatherResults([session.release() for session, _, _ in calls])
            for a, b in pairs:
                drain(a.rtp), drain(b.rtp), drain(a.rtcp), drain(b.rtcp)
        assert counts() == before
        assert not relay.sessions and not relay._owners
    finally:
        for a, b in pairs:
            a.close()
            b.close()


@pytest_twisted.ensureDeferred
async def test_a_tone_played_by_one_endpoint_through_the_relay_is_recorded_by_the_other(relay, tmp_path):
    t = np.arange(3200) / 8000
    write_wav(tmp_path / "tone.wav", (8000 * np.sin(2 * np.pi * 1000 * t)).astype("<i2").tobytes())
    caller = MediaEndpoint(reactor, relay.pool, "127.0.0.1")
    callee = MediaEndpoint(reactor, relay.pool, "127.0.0.1")
    session = await relay.allocate("tone", [].append)
    callee_answer = callee.answer(await session.offer("a", caller.offer()))
    caller.answered(await session.answer("b", callee_answer))
    assert caller.codec is callee.codec is PCMU
    recorded = callee.record(tmp_path / "heard.wav")
    await caller.play(tmp_path / "tone.wav")
    for _ in range(300):
        if callee.received >= 20:
            break
        await task.deferLater(reactor, 0.01, lambda: None)
    assert await callee.stop_recording() == 400
    await recorded
    with wave.open(str(tmp_path / "heard.wav")) as file:
        samples = np.frombuffer(file.readframes(file.getnframes()), "<i2").astype(float)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    assert abs(np.fft.rfftfreq(len(samples), 1 / 8000)[spectrum.argmax()] - 1000) < 5
    await defer.gatherResults([caller.close(), callee.close(), session.release()])
