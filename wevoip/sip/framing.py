"""
Cutting a byte stream (TCP, TLS) into SIP messages by Content-Length (RFC 3261 §18.3),
with the RFC 5626 §4.4.1 keep-alives in between: a double CRLF is a ping the connection
answers with one CRLF (a pong); a lone CRLF is a pong or padding and is skipped.

The buffer is bounded: a head that does not end within `max_message` bytes, or a
Content-Length that would take the message past it, is a `FramingError`, after which the
stream cannot be resynchronised and the connection is closed.
"""

from __future__ import annotations

import re

from wevoip.sip.errors import ParseError
from wevoip.sip.message import MAX_MESSAGE_BYTES

PING = b"\r\n\r\n"
PONG = b"\r\n"

_CONTENT_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(\S*)", re.I | re.M)


class FramingError(ParseError):
    pass


class StreamFramer:
    def __init__(self, max_message: int = MAX_MESSAGE_BYTES):
        self.max_message = max_message
        self._buffer = bytearray()
        self._scanned = 0

    def feed(self, data: bytes) -> list[bytes]:
        """Whole messages and pings (items equal to PING), in the order they arrived."""
        buffer = self._buffer
        buffer += data
        out: list[bytes] = []
        while buffer:
            if buffer[:2] == b"\r\n":
                if len(buffer) < 4 and PING.startswith(bytes(buffer)):
                    break
                if buffer[:4] == PING:
                    out.append(PING)
                    del buffer[:4]
                else:
                    del buffer[:2]
                self._scanned = 0
                continue
            end = buffer.find(b"\r\n\r\n", max(0, self._scanned - 3))
            if end < 0:
                if len(buffer) > self.max_message:
                    raise FramingError("Message Too Large", status=513)
                self._scanned = len(buffer)
                break
            total = end + 4 + self._content_length(bytes(buffer[:end]))
            if total > self.max_message:
                raise FramingError("Message Too Large", status=513)
            if len(buffer) < total:
                self._scanned = end
                break
            out.append(bytes(buffer[:total]))
            del buffer[:total]
            self._scanned = 0
        return out

    @staticmethod
    def _content_length(head: bytes) -> int:
        """A message without Content-Length has no body; a malformed one loses the frame."""
        match = _CONTENT_LENGTH.search(head)
        if match is None:
            return 0
        if not match.group(1).isdigit() or len(match.group(1)) > 10:
            raise FramingError("Malformed Content-Length header")
        return int(match.group(1))

    @property
    def buffered(self) -> int:
        return len(self._buffer)
