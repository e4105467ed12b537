"""
G.711 u-law (PCMU) and A-law (PCMA), as lookup tables built once with numpy.

Why numpy and not `audioop`: audioop is deprecated in Python 3.11 and gone in 3.13
(PEP 594), and its PyPI continuation `audioop-lts` installs only on 3.13 and later, so
neither serves every Python this project supports. numpy is maintained, has wheels for
every platform we run on, turns a 160-sample frame into one indexed load (a 64 Ki-entry
encode table and a 256-entry decode table, built from the ITU-T G.711 segment rules
below), and gives the tests their FFT. The tables agree with audioop bit for bit (a test
checks where audioop still exists).
"""

from __future__ import annotations

import numpy as np

_SAMPLES = np.arange(-32768, 32768, dtype=np.int32)


def _ulaw_encode(pcm: np.ndarray) -> np.ndarray:
    """The 14-bit reference algorithm (Sun's g711.c, which audioop also follows)."""
    pcm = pcm >> 2
    negative = pcm < 0
    magnitude = np.minimum(np.where(negative, -pcm, pcm), 8159) + 0x21
    segment = np.searchsorted(np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF]),
                              magnitude)
    code = np.where(segment >= 8, 0x7F,
                    (segment << 4) | ((magnitude >> (np.minimum(segment, 7) + 1)) & 0x0F))
    return code ^ np.where(negative, 0x7F, 0xFF)


def _ulaw_decode(code: np.ndarray) -> np.ndarray:
    code = ~code & 0xFF
    exponent = (code >> 4) & 0x07
    magnitude = (((code & 0x0F) << 3) + 0x84) << exponent
    return np.where(code & 0x80, 0x84 - magnitude, magnitude - 0x84)


def _alaw_encode(pcm: np.ndarray) -> np.ndarray:
    sign = np.where(pcm >= 0, 0x80, 0)
    magnitude = np.where(pcm >= 0, pcm, -pcm - 1) >> 3
    magnitude = np.minimum(magnitude, 0xFFF)
    exponent = np.where(magnitude < 32, 0,
                        np.floor(np.log2(np.maximum(magnitude, 1))).astype(np.int32) - 4)
    mantissa = np.where(exponent == 0, magnitude >> 1, magnitude >> exponent) & 0x0F
    return (sign | (exponent << 4) | mantissa) ^ 0x55


def _alaw_decode(code: np.ndarray) -> np.ndarray:
    code = code ^ 0x55
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << (exponent - 1))
    return np.where(code & 0x80, magnitude, -magnitude)


class Codec:
    """One G.711 law: whole frames in, whole frames out (bytes of 16-bit little-endian PCM)."""

    def __init__(self, name: str, payload_type: int, encode, decode):
        self.name = name
        self.payload_type = payload_type
        self._encode = encode(_SAMPLES).astype(np.uint8)
        codes = np.arange(256, dtype=np.int32)
        self._decode = decode(codes).astype("<i2")

    def encode(self, pcm: bytes) -> bytes:
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.int32) + 32768
        return self._encode[samples].tobytes()

    def decode(self, data: bytes) -> bytes:
        return self._decode[np.frombuffer(data, dtype=np.uint8)].tobytes()

    def decode_array(self, data: bytes) -> np.ndarray:
        return self._decode[np.frombuffer(data, dtype=np.uint8)]


PCMU = Codec("PCMU", 0, _ulaw_encode, _ulaw_decode)
PCMA = Codec("PCMA", 8, _alaw_encode, _alaw_decode)
BY_NAME = {codec.name: codec for codec in (PCMU, PCMA)}
