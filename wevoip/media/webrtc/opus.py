"""
Opus (48 kHz, RFC 7587) to and from G.711 (8 kHz), for a browser that offers no G.711.

The codecs are FFmpeg's (libopus, pcm_mulaw, pcm_alaw, and swresample for the rate), from
the wheels of PyPI's `av`; no codec is written here. Each direction is a small stateful
object fed one RTP payload at a time: the Opus encoder wants 20 ms frames exactly, and
the resampler has a filter delay, so a FIFO sits between them and output is produced as
whole 20 ms frames once enough audio has arrived.

Work per packet is a decode, a resample and an encode, some tens of microseconds; the
gateway decides whether that runs in the reactor or off it.
"""

from __future__ import annotations

from fractions import Fraction

import av

OPUS_RATE = 48000
G711_RATE = 8000
FRAME_MS = 20
OPUS_BITRATE = 32000
LAWS = {"PCMU": "pcm_mulaw", "PCMA": "pcm_alaw"}


class TranscodeError(Exception):
    """A payload the codec could not take (the caller drops it)."""


def _codec(name: str, mode: str, rate: int, layout: str) -> av.CodecContext:
    context = av.CodecContext.create(name, mode)
    context.sample_rate = rate
    context.layout = layout
    if mode == "w":
        context.format = "s16"
        context.time_base = Fraction(1, rate)
    return context


def _law(law: str) -> str:
    try:
        return LAWS[law.upper()]
    except KeyError:
        raise ValueError(f"G.711 law {law!r} is not PCMU or PCMA") from None


class _Direction:
    """Decode, resample into a FIFO, and encode whole frames of `frame_samples`."""

    def __init__(self, decoder: av.CodecContext, encoder: av.CodecContext, rate: int, frame_samples: int):
        self._decoder, self._encoder = decoder, encoder
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        self._fifo = av.AudioFifo()
        self._frame_samples = frame_samples
        self._pts = 0

    def feed(self, payload: bytes) -> list[bytes]:
        try:
            for frame in self._decoder.decode(av.Packet(payload)):
                frame.pts = None
                for resampled in self._resampler.resample(frame):
                    self._fifo.write(resampled)
            out = []
            while self._fifo.samples >= self._frame_samples:
                frame = self._fifo.read(self._frame_samples)
                frame.pts, self._pts = self._pts, self._pts + self._frame_samples
                out.extend(bytes(packet) for packet in self._encoder.encode(frame))
            return out
        except (av.FFmpegError, ValueError) as error:
            raise TranscodeError(str(error)) from None


class OpusToG711:
    """Browser to phone: Opus payloads in, 20 ms G.711 payloads (160 bytes) out."""

    def __init__(self, law: str = "PCMU"):
        self._direction = _Direction(_codec("libopus", "r", OPUS_RATE, "stereo"),
                                     _codec(_law(law), "w", G711_RATE, "mono"),
                                     G711_RATE, G711_RATE * FRAME_MS // 1000)

    def transcode(self, opus_payload: bytes) -> list[bytes]:
        return self._direction.feed(opus_payload)


class G711ToOpus:
    """Phone to browser: G.711 payloads in, 20 ms Opus payloads out."""

    def __init__(self, law: str = "PCMU", bitrate: int = OPUS_BITRATE):
        encoder = _codec("libopus", "w", OPUS_RATE, "mono")
        encoder.bit_rate = bitrate
        self._direction = _Direction(_codec(_law(law), "r", G711_RATE, "mono"), encoder,
                                     OPUS_RATE, OPUS_RATE * FRAME_MS // 1000)

    def transcode(self, g711_payload: bytes) -> list[bytes]:
        return self._direction.feed(g711_payload)
