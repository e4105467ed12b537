import random
import socket
import wave

import numpy as np
import pytest
import pytest_twisted
from twisted.internet import reactor, task
from twisted.internet.protocol import DatagramProtocol

from tests.media.phones import rtp as rtp_bytes
from wevoip.media import g711, rtp
from wevoip.media.dtmf import event_payload
from wevoip.media.endpoint import MediaEndpoint, write_wav
from wevoip.media.ports import PortPool
from wevoip.media.sdp import SdpError, parse


def offer(port, formats="0 8 101", extra="a=rtpmap:101 telephone-event/8000\r\n", proto="RTP/AVP"):
    return ("v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
            f"m=audio {port} {proto} {formats}\r\n{extra}").encode()


def tone(frequency, seconds, amplitude=8000):
    t = np.arange(int(8000 * seconds)) / 8000
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype("<i2").tobytes()


def peak_frequency(pcm):
    samples = np.frombuffer(pcm, "<i2").astype(float)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return np.fft.rfftfreq(len(samples), 1 / 8000)[spectrum.argmax()]


async def until(condition, seconds=5.0):
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await task.deferLater(reactor, 0.01, lambda: None)
    raise AssertionError("condition not met in time")


class Phone(DatagramProtocol):
    def __init__(self):
        self.packets = []

    def datagramReceived(self, data, source):
        self.packets.append((data, source))


@pytest.fixture
def pool():
    pool = PortPool("127.0.0.1", 46000, 46099)
    yield pool
    assert pool.available == pool.size, "every port is back"


@pytest.fixture
def phone():
    phone = Phone()
    port = reactor.listenUDP(0, phone, interface="127.0.0.1")
    phone.port = port.getHost().port
    yield phone
    port.stopListening()


@pytest.fixture
def sender():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


@pytest.mark.parametrize("payload_type, codec", [(0, g711.PCMU), (8, g711.PCMA)])
@pytest_twisted.ensureDeferred
async def test_a_played_tone_arrives_as_g711_frames_at_its_frequency(tmp_path, pool, phone, payload_type, codec):
    write_wav(tmp_path / "tone.wav", tone(1000, 0.4))
    endpoint = MediaEndpoint(reactor, pool, "127.0.0.1")
    other = 8 if payload_type == 0 else 0
    answer = parse(endpoint.answer(offer(phone.port, f"{payload_type} {other} 101")))
    assert answer.media[0].port == 0 and answer.media[0].media == "video"
    audio = answer.media[1]
    assert audio.formats == [str(payload_type), "101"] and audio.direction == "sendrecv"
    assert audio.telephone_event.payload_type == 101
    await endpoint.play(tmp_path / "tone.wav")
    await until(lambda: len(phone.packets) >= 20)
    packets = [rtp.parse(data) for data, _ in phone.packets]
    assert {source for _, source in phone.packets} == {("127.0.0.1", audio.port)}
    assert len(packets) == 20 and {p.ssrc for p in packets} == {packets[0].ssrc}
    assert {p.payload_type for p in packets} == {payload_type}
    assert [p.marker for p in packets] == [True] + [False] * 19
    assert all((b.sequence - a.sequence) & 0xFFFF == 1 for a, b in zip(packets, packets[1:]))
    assert all((b.timestamp - a.timestamp) & 0xFFFFFFFF == 160 for a, b in zip(packets, packets[1:]))
    assert all(len(p.payload) == 160 for p in packets)
    pcm = b"".join(codec.decode(p.payload) for p in packets)
    assert abs(peak_frequency(pcm) - 1000) < 5
    await endpoint.close()


@pytest_twisted.ensureDeferred
async def test_what_a_phone_sends_is_recorded_in_place_despite_reordering_loss_and_junk(tmp_path, pool, sender):
    endpoint = MediaEndpoint(reactor, pool, "127.0.0.1")
    port = parse(endpoint.answer(offer(sender.getsockname()[1], "8 101"))).media[1].port
    recorded = endpoint.record(tmp_path / "in.wav")
    audio = g711.PCMA.encode(tone(440, 0.5))
    frames = [rtp.RtpPacket(8, 100 + i, 4_294_960_000 + 160 * i, 77, audio[160 * i:160 * i + 160]).serialise()
              for i in range(25)]
    order = list(range(25))
    order.remove(10)
    random.Random(4).shuffle(order)
    order += [3, 3]
    sender.sendto(b"\x80", ("127.0.0.1", port))
    for index in order:
        sender.sendto(frames[index], ("127.0.0.1", port))
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.sendto(rtp_bytes(1, payload_type=8, payload=b"\x00" * 160, timestamp=4_294_960_000), ("127.0.0.1", port))
    stranger.close()
    await until(lambda: endpoint.received == 26 and endpoint.junk == 2)
    assert await endpoint.stop_recording() == 500
    assert await recorded == 500
    with wave.open(str(tmp_path / "in.wav")) as file:
        assert (file.getframerate(), file.getnchannels(), file.getsampwidth()) == (8000, 1, 2)
        pcm = file.readframes(file.getnframes())
    assert len(pcm) == 2 * 4000
    assert pcm[2 * 1600:2 * 1760] == bytes(320), "the lost frame is silence in its place"
    assert pcm[2 * 1760:] == g711.PCMA.decode(audio[1760:])
    assert abs(peak_frequency(pcm) - 440) < 5
    await endpoint.close()


@pytest_twisted.ensureDeferred
async def test_dtmf_is_collected_from_rfc4733_events_and_sip_info(pool, sender):
    endpoint = MediaEndpoint(reactor, pool, "127.0.0.1")
    port = parse(endpoint.answer(offer(sender.getsockname()[1]))).media[1].port
    assert endpoint.info_dtmf("application/dtmf-relay", b"Signal=4\r\nDuration=160\r\n") == "4"
    source = rtp.RtpSender()
    for digit in "159#":
        for duration, end in ((160, False), (320, False), (480, True), (480, True), (480, True)):
            packet = source.event(101, event_payload(digit, end, duration), start=duration == 160)
            sender.sendto(packet.serialise(), ("127.0.0.1", port))
        source.skip(800)
    assert await endpoint.collect_digits(terminator="#") == "4159"
    with pytest.raises(ValueError):
        endpoint.info_dtmf("text/plain", b"5")
    await endpoint.close()


@pytest_twisted.ensureDeferred
async def test_digit_collection_ends_on_count_or_the_inter_digit_timeout(pool, phone):
    clock = task.Clock()
    endpoint = MediaEndpoint(reactor, pool, "127.0.0.1", clock=clock)
    endpoint.answer(offer(phone.port))
    collected = endpoint.collect_digits(count=3, timeout_ms=3000)
    endpoint.info_dtmf("application/dtmf", b"1")
    clock.advance(2.9)
    endpoint.info_dtmf("application/dtmf", b"2")
    clock.advance(2.9)
    assert not collected.called
    clock.advance(0.2)
    assert collected.result == "12"
    collected = endpoint.collect_digits(count=2)
    for digit in b"789":
        endpoint.info_dtmf("application/dtmf", bytes([digit]))
    assert collected.result == "78"
    assert await endpoint.collect_digits(count=1) == "9", "a digit typed ahead waits for the next collection"
    await endpoint.close()


@pytest_twisted.ensureDeferred
async def test_offers_it_cannot_answer_and_files_it_cannot_play_are_clear_errors(tmp_path, pool, phone):
    endpoint = MediaEndpoint(reactor, pool, "127.0.0.1")
    for bad in (offer(phone.port, "18", ""), offer(phone.port, "0", "", proto="RTP/SAVP"), b"v=0\r\n"):
        with pytest.raises(SdpError):
            endpoint.answer(bad)
    assert pool.available == pool.size
    endpoint.answer(offer(phone.port))
    with wave.open(str(tmp_path / "stereo.wav"), "wb") as file:
        file.setnchannels(2), file.setsampwidth(2), file.setframerate(44100)
        file.writeframes(bytes(400))
    with pytest.raises(ValueError, match="44100 Hz, 2 channel"):
        await endpoint.play(tmp_path / "stereo.wav")
    (tmp_path / "junk.wav").write_bytes(b"RIFFjunk")
    with pytest.raises(ValueError, match="not a PCM WAV"):
        await endpoint.play(tmp_path / "junk.wav")
    await endpoint.close()


@pytest_twisted.ensureDeferred
async def test_hold_stops_sending_and_close_ends_a_prompt_midway(tmp_path, pool, phone):
    write_wav(tmp_path / "long.wav", tone(700, 5))
    endpoint = MediaEndpoint(reactor, pool, "127.0.0.1")
    endpoint.answer(offer(phone.port))
    held = parse(endpoint.answer(offer(phone.port, extra="a=rtpmap:101 telephone-event/8000\r\na=sendonly\r\n")))
    assert held.media[1].direction == "recvonly"
    playing = endpoint.play(tmp_path / "long.wav")
    await task.deferLater(reactor, 0.2, lambda: None)
    assert phone.packets == []
    endpoint.answer(offer(phone.port))
    await until(lambda: len(phone.packets) >= 3)
    await endpoint.close()
    assert await playing is None
    sent = len(phone.packets)
    await task.deferLater(reactor, 0.1, lambda: None)
    assert len(phone.packets) == sent < 50


@pytest_twisted.ensureDeferred
async def test_echoing_sends_back_what_it_hears_in_its_own_stream(pool, sender):
    endpoint = MediaEndpoint(reactor, pool, "127.0.0.1")
    port = parse(endpoint.answer(offer(sender.getsockname()[1]))).media[1].port
    endpoint.echoing = True
    payloads = [bytes([i]) * 160 for i in range(5)]
    for i, payload in enumerate(payloads):
        sender.sendto(rtp.RtpPacket(0, i, 160 * i, 99, payload).serialise(), ("127.0.0.1", port))
    sender.sendto(rtp.RtpPacket(101, 9, 0, 99, event_payload("5", False, 160)).serialise(), ("127.0.0.1", port))
    echoed = []
    sender.setblocking(False)
    for _ in range(300):
        try:
            echoed.append(rtp.parse(sender.recv(2048)))
        except BlockingIOError:
            if len(echoed) == 5:
                break
            await task.deferLater(reactor, 0.01, lambda: None)
    assert [p.payload for p in echoed] == payloads
    assert {p.ssrc for p in echoed} != {99} and len({p.ssrc for p in echoed}) == 1
    assert endpoint.digits == ["5"], "events are taken as digits, not echoed"
    await endpoint.close()
