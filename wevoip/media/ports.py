"""
The relay's UDP port pool: even RTP port, odd RTCP port above it (RFC 3550 section 11).

Ports are handed out from the front and come back at the end, so a port just freed is
the last to be reused and stray packets of an old call do not reach a new one. A port
that another program holds is skipped (moved to the back) rather than failing the call.
"""

from __future__ import annotations

import errno
import socket
from collections import deque

from wevoip.interfaces import MediaUnavailable


class PortPool:
    def __init__(self, address: str, low: int, high: int):
        self.address = address
        self.family = socket.AF_INET6 if ":" in address else socket.AF_INET
        first = low + (low % 2)
        self.size = len(range(first, high, 2))
        self._free = deque(range(first, high, 2))
        self._taken: set[int] = set()

    @property
    def available(self) -> int:
        return len(self._free)

    def take(self) -> tuple[int, socket.socket, socket.socket]:
        """Bind a free RTP/RTCP pair; MediaUnavailable when none can be bound."""
        for _ in range(len(self._free)):
            port = self._free.popleft()
            try:
                rtp = self._bind(port)
            except OSError as error:
                self._free.append(port)
                if error.errno != errno.EADDRINUSE:
                    raise MediaUnavailable(f"cannot bind {self.address}:{port}: {error.strerror}") from None
                continue
            try:
                rtcp = self._bind(port + 1)
            except OSError:
                rtp.close()
                self._free.append(port)
                continue
            self._taken.add(port)
            return port, rtp, rtcp
        raise MediaUnavailable(f"no free RTP port pair on {self.address}")

    def give_back(self, port: int) -> None:
        """Return a pair whose sockets are closed everywhere (the forwarder's copies too)."""
        self._taken.remove(port)
        self._free.append(port)

    def _bind(self, port: int) -> socket.socket:
        sock = socket.socket(self.family, socket.SOCK_DGRAM)
        try:
            sock.bind((self.address, port))
        except OSError:
            sock.close()
            raise
        return sock
