"""
The media endpoint: the server's own end of a call, for announcements, IVR and voicemail.

It answers an offer with G.711 (u-law or A-law, the phone's preference) and RFC 4733
telephone-event, plays 8 kHz mono 16-bit WAV files as 20 ms RTP frames, records what the
phone sends into a WAV (placed by RTP timestamp, so jitter, reordering and loss do not
shift it), and collects DTMF from RFC 4733 packets and from SIP INFO (the SIP layer hands
INFO bodies to `info_dtmf`). With `echoing` set it sends back what it hears, in its own
stream (the echo test). Few calls use it at once and each sends 50 packets a
second, so it runs on the reactor; the relay's forwarder is the hot path, not this.

Ports come from the relay's pool, so the endpoint and the relay never collide. Nothing
the peer sends raises: junk is counted and dropped.
"""

from __future__ import annotations

import secrets
import wave
from pathlib import Path
from typing import Any

from twisted.internet import defer, protocol, task, threads
from twisted.logger import Logger

from wevoip.media import g711, rtp
from wevoip.media.dtmf import EventReceiver, info_digit
from wevoip.media.follow import follow
from wevoip.media.ports import PortPool
from wevoip.media.sdp import Connection, SdpError, SessionDescription

SAMPLE_RATE = 8000
FRAME_SAMPLES = SAMPLE_RATE * rtp.FRAME_MS // 1000
MAX_CATCH_UP = 5
_ANSWER_DIRECTION = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly",
                     "inactive": "inactive"}
log = Logger()


class _Discard(protocol.DatagramProtocol):
    """Holds the RTCP port so nobody else binds it; the endpoint sends no RTCP reports."""

    def datagramReceived(self, data: bytes, source: Any) -> None:
        pass


class _Receiver(protocol.DatagramProtocol):
    def __init__(self, endpoint: MediaEndpoint):
        self.endpoint = endpoint

    def datagramReceived(self, data: bytes, source: Any) -> None:
        self.endpoint._received(data, source)


def read_wav(path: str | Path) -> bytes:
    """The 16-bit PCM of an 8 kHz mono WAV; ValueError naming what the file is instead."""
    try:
        with wave.open(str(path), "rb") as file:
            shape = (file.getframerate(), file.getnchannels(), file.getsampwidth())
            if shape != (SAMPLE_RATE, 1, 2):
                raise ValueError(
                    f"{path} is {shape[0]} Hz, {shape[1]} channel(s), {8 * shape[2]}-bit; prompts are "
                    f"8000 Hz mono 16-bit (sox in.wav -r 8000 -c 1 -b 16 out.wav)")
            return file.readframes(file.getnframes())
    except (wave.Error, EOFError) as error:
        raise ValueError(f"{path} is not a PCM WAV file: {error}") from None


def write_wav(path: str | Path, pcm: bytes) -> None:
    with wave.open(str(path), "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(SAMPLE_RATE)
        file.writeframes(pcm)


class _Recording:
    def __init__(self, path: str | Path, max_ms: int):
        self.path = path
        self.max_samples = max_ms * SAMPLE_RATE // 1000
        self.packets: list[rtp.RtpPacket] = []
        self.samples = 0
        self.done = defer.Deferred()

    def add(self, packet: rtp.RtpPacket) -> bool:
        """Keep the packet; False once enough audio has come to fill the recording."""
        self.packets.append(packet)
        self.samples += len(packet.payload)
        return self.samples < self.max_samples

    def pcm(self, codec: g711.Codec) -> bytes:
        placed = rtp.place(self.packets, self.max_samples)
        audio = bytearray(2 * max((position + len(payload) for position, payload in placed), default=0))
        for position, payload in placed:
            audio[2 * position:2 * (position + len(payload))] = codec.decode(payload)
        return bytes(audio)


class _Collection:
    def __init__(self, count: int | None, terminator: str, timeout: float, clock: Any):
        self.count = count
        self.terminator = terminator
        self.timeout = timeout
        self.clock = clock
        self.digits = ""
        self.done = defer.Deferred()
        self.timer = clock.callLater(timeout, self.finish)

    def add(self, digit: str) -> bool:
        """Take a digit; True when the collection is complete."""
        if digit == self.terminator:
            self.finish()
            return True
        self.digits += digit
        if self.count is not None and len(self.digits) >= self.count:
            self.finish()
            return True
        self.timer.reset(self.timeout)
        return False

    def finish(self) -> None:
        if self.timer.active():
            self.timer.cancel()
        if not self.done.called:
            self.done.callback(self.digits)


class MediaEndpoint:
    """One call answered by the server. Make it, `answer` the offer, then play/record/collect."""

    def __init__(self, reactor: Any, pool: PortPool, advertised_address: str, clock: Any = None,
                 max_recording_ms: int = 300_000):
        self.reactor = reactor
        self.clock = clock or reactor
        self.pool = pool
        self.advertised_address = advertised_address
        self.max_recording_ms = max_recording_ms
        self.codec: g711.Codec | None = None
        self.codec_payload_type: int | None = None
        self.event_type: int | None = None
        self.peer: tuple[str, int] | None = None
        self.sending = True
        self.echoing = False
        self.received = 0
        self.junk = 0
        self.digits: list[str] = []
        self._latched = False
        self._events = EventReceiver()
        self._sender = rtp.RtpSender(SAMPLE_RATE)
        self._ports: list[Any] = []
        self._port: int | None = None
        self._session_id = str(secrets.randbelow(10 ** 12))
        self._version = 0
        self._playing: tuple[task.LoopingCall, defer.Deferred, list[bytes]] | None = None
        self._recording: _Recording | None = None
        self._collection: _Collection | None = None
        self._closed: defer.Deferred | None = None

    # -- signalling -------------------------------------------------------------------

    def offer(self) -> bytes:
        """An offer of G.711 (u-law first) and telephone-event, for a call the server makes."""
        self._check_open()
        self._version += 1
        connection = Connection.for_address(self.advertised_address)
        return "".join(f"{line}\r\n" for line in (
            "v=0", f"o=wevoip {self._session_id} {self._version} {connection}", "s=wevoip",
            f"c={connection}", "t=0 0", f"m=audio {self._port} RTP/AVP 0 8 101",
            "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-15", "a=ptime:20", "a=sendrecv")).encode()

    def answered(self, answer: bytes) -> None:
        """Take the far end's answer to our `offer`; SdpError if it chose nothing we offered."""
        self._check_open()
        self._accept(SessionDescription.parse(answer))

    def answer(self, offer: bytes) -> bytes:
        """The answer to an offer (the first or a re-INVITE's); SdpError if none can be made."""
        description = SessionDescription.parse(offer)
        index, media, codec = self._accept(description)
        self._check_open()
        self._version += 1
        return self._describe(description, index, codec.payload_type, codec.name,
                              _ANSWER_DIRECTION[media.direction])

    def _check_open(self) -> None:
        if self._closed is not None:
            raise SdpError("the media endpoint has closed")
        if self._port is None:
            self._open()

    def _accept(self, description: SessionDescription) -> tuple[int, Any, Any]:
        """Use the first audio stream with G.711: its codec, DTMF type, address, direction."""
        for index, media in enumerate(description.media):
            if media.media == "audio" and media.port and media.proto.upper() in ("RTP/AVP", "RTP/AVPF"):
                codec = next((c for c in media.codecs() if c.name.upper() in g711.BY_NAME
                              and c.clock_rate == SAMPLE_RATE and c.channels == 1), None)
                if codec is not None:
                    break
        else:
            raise SdpError("no audio stream offers PCMU/8000 or PCMA/8000 over RTP/AVP")
        self.codec = g711.BY_NAME[codec.name.upper()]
        self.codec_payload_type = codec.payload_type
        event = media.telephone_event
        self.event_type = event.payload_type if event and event.clock_rate == SAMPLE_RATE else None
        peer = (media.effective_connection.address, media.port)
        if peer != self.peer:
            self.peer, self._latched = peer, False
        self.sending = media.direction in ("sendrecv", "recvonly")
        return index, media, codec

    def _describe(self, offer: SessionDescription, chosen: int, payload_type: int, name: str,
                  direction: str) -> bytes:
        connection = Connection.for_address(self.advertised_address)
        lines = ["v=0", f"o=wevoip {self._session_id} {self._version} {connection}", "s=wevoip",
                 f"c={connection}", "t=0 0"]
        for index, media in enumerate(offer.media):
            if index != chosen:
                lines.append(f"m={media.media} 0 {media.proto} {' '.join(media.formats)}")
                continue
            formats = [str(payload_type)] + ([str(self.event_type)] if self.event_type is not None else [])
            lines += [f"m=audio {self._port} {media.proto} {' '.join(formats)}",
                      f"a=rtpmap:{payload_type} {name}/{SAMPLE_RATE}"]
            if self.event_type is not None:
                lines += [f"a=rtpmap:{self.event_type} telephone-event/{SAMPLE_RATE}",
                          f"a=fmtp:{self.event_type} 0-15"]
            lines += ["a=ptime:20", f"a={direction}"]
        return "".join(f"{line}\r\n" for line in lines).encode()

    def _open(self) -> None:
        port, rtp_socket, rtcp_socket = self.pool.take()
        try:
            for sock, handler in ((rtp_socket, _Receiver(self)), (rtcp_socket, _Discard())):
                sock.setblocking(False)
                self._ports.append(self.reactor.adoptDatagramPort(sock.fileno(), sock.family, handler))
        finally:
            rtp_socket.close()
            rtcp_socket.close()
        self._port = port

    def info_dtmf(self, content_type: str, body: bytes) -> str:
        """A SIP INFO's DTMF; ValueError for a body that is not one digit (answer 415/400)."""
        digit = info_digit(content_type, body)
        self._digit(digit)
        return digit

    # -- media in ---------------------------------------------------------------------

    def _received(self, data: bytes, source: Any) -> None:
        try:
            packet = rtp.parse(data)
        except ValueError:
            self.junk += 1
            return
        if 72 <= packet.payload_type <= 76:
            return  # RTCP multiplexed on the RTP port (RFC 5761); the endpoint sends no reports
        if not self._latched:
            self.peer, self._latched = (source[0], source[1]), True
        elif (source[0], source[1]) != self.peer:
            self.junk += 1
            return
        self.received += 1
        if packet.payload_type == self.event_type:
            digit = self._events.receive(packet)
            if digit is not None:
                self._digit(digit)
        elif self.codec is not None and packet.payload_type == self.codec_payload_type:
            if self.echoing and self.sending:
                self._ports[0].write(self._sender.packet(packet.payload_type, packet.payload).serialise(),
                                     self.peer)
            recording = self._recording
            if recording is not None and not recording.add(packet):
                self.stop_recording()

    def _digit(self, digit: str) -> None:
        self.digits.append(digit)
        collection = self._collection
        if collection is not None:
            self.digits.pop(0)
            if collection.add(digit):
                self._collection = None

    def collect_digits(self, count: int | None = None, terminator: str = "#",
                       timeout_ms: int = 5000) -> defer.Deferred:
        """
        Digits typed so far and from now on, until `count` of them, the terminator (not
        included) or `timeout_ms` without a key; fires with the digits as a string.
        """
        if self._collection is not None:
            raise RuntimeError("digits are already being collected")
        collection = _Collection(count, terminator, timeout_ms / 1000, self.clock)
        self._collection = collection
        while self.digits and self._collection is collection:
            if collection.add(self.digits.pop(0)):
                self._collection = None
        collection.done.addBoth(self._collected, collection)
        return collection.done

    def _collected(self, result: Any, collection: _Collection) -> Any:
        if self._collection is collection:
            self._collection = None
        return result

    # -- media out --------------------------------------------------------------------

    def play(self, path: str | Path) -> defer.Deferred:
        """Play a WAV file; fires when it has all been sent (or `stop_playing`/`close`)."""
        self.stop_playing()
        reading = threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), read_wav, path)
        return reading.addCallback(self._play_pcm)

    def _play_pcm(self, pcm: bytes) -> defer.Deferred:
        if self._closed is not None or self.codec is None:
            return defer.succeed(None)
        payloads = self.codec.encode(pcm)
        frames = [payloads[i:i + FRAME_SAMPLES] for i in range(0, len(payloads), FRAME_SAMPLES)]
        if frames and len(frames[-1]) < FRAME_SAMPLES:
            frames[-1] += self.codec.encode(bytes(2 * (FRAME_SAMPLES - len(frames[-1]))))
        frames.reverse()
        done = defer.Deferred()
        loop = task.LoopingCall.withCount(lambda count: self._send_frames(count, frames))
        loop.clock = self.clock
        self._playing = (loop, done, frames)
        loop.start(rtp.FRAME_MS / 1000, now=True).addErrback(done.errback)
        return done

    def _send_frames(self, count: int, frames: list[bytes]) -> None:
        for _ in range(min(count, MAX_CATCH_UP)):
            if not frames:
                self.stop_playing()
                return
            frame = frames.pop()
            if self.sending and self.peer is not None:
                packet = self._sender.packet(self.codec_payload_type, frame)
                self._ports[0].write(packet.serialise(), self.peer)

    def stop_playing(self) -> None:
        if self._playing is not None:
            loop, done, _ = self._playing
            self._playing = None
            if loop.running:
                loop.stop()
            done.callback(None)

    # -- recording --------------------------------------------------------------------

    def record(self, path: str | Path, max_ms: int | None = None) -> defer.Deferred:
        """Record what the phone sends; fires with the milliseconds written once stopped."""
        if self._recording is not None:
            raise RuntimeError("already recording")
        limit = min(max_ms or self.max_recording_ms, self.max_recording_ms)
        self._recording = _Recording(path, limit)
        return self._recording.done

    def stop_recording(self) -> defer.Deferred:
        recording, self._recording = self._recording, None
        if recording is None:
            return defer.succeed(None)
        pcm = recording.pcm(self.codec)
        writing = threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(),
                                            write_wav, recording.path, pcm)
        writing.addCallback(lambda _: len(pcm) // 2 * 1000 // SAMPLE_RATE)
        writing.chainDeferred(recording.done)
        return follow(recording.done)

    # -- end --------------------------------------------------------------------------

    def close(self) -> defer.Deferred:
        """Stop everything, write any recording, and give the ports back."""
        if self._closed is None:
            self._closed = defer.Deferred.fromCoroutine(self._close())
        return follow(self._closed)

    async def _close(self) -> None:
        self.stop_playing()
        if self._collection is not None:
            self._collection.finish()
        try:
            await self.stop_recording()
        except OSError as error:
            log.error("recording could not be written: {error}", error=error)
        await defer.gatherResults([defer.maybeDeferred(port.stopListening) for port in self._ports])
        self._ports = []
        if self._port is not None:
            self.pool.give_back(self._port)
            self._port = None

