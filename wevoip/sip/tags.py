"""
Random tags and branches, without a system call each.

RFC 3261 §19.3 wants tags (and §8.1.1.7 branches) globally unique and cryptographically
random, at least 32 bits. `secrets.token_hex` asks the kernel every time: one getrandom
call per request on the hot path. Here the kernel's randomness is fetched in blocks and
cut into pieces, so the pieces are exactly as random, for one call per few hundred.
"""

from __future__ import annotations

import os

_BLOCK = 4096
_buffer = b""
_position = 0


def random_hex(size: int) -> str:
    """`size` random bytes as hex (what `secrets.token_hex(size)` gives)."""
    global _buffer, _position
    end = _position + size
    if end > len(_buffer):
        _buffer, _position, end = os.urandom(_BLOCK), 0, size
    piece = _buffer[_position:end]
    _position = end
    return piece.hex()
