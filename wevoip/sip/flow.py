"""
Flows: the path a message came in on, and the way back.

A phone behind NAT is reachable only through the pinhole its own traffic opened: the
source address and port of its UDP packets, or the very TCP/TLS/WebSocket connection it
made. So every message arrives with a `Flow`, responses and later requests go out through
it, and the `FlowTable` finds a live connection by (transport, address, port) when a
registrar binding or a response needs one (RFC 3261 §18.2.2, RFC 5626).
"""

from __future__ import annotations

from typing import Callable

RELIABLE = frozenset({"tcp", "tls", "ws", "wss"})
SECURE = frozenset({"tls", "wss"})
VIA_NAMES = {"udp": "UDP", "tcp": "TCP", "tls": "TLS", "ws": "WS", "wss": "WSS"}
# A SIP URI's transport parameter for each: RFC 7118 §5.2 defines only "ws", for WS and WSS
# alike (WSS appears in Via only).
URI_TRANSPORTS = {"udp": "udp", "tcp": "tcp", "tls": "tls", "ws": "ws", "wss": "ws"}


def normalise_host(host: str) -> str:
    """Hosts as flow keys: IPv6 without brackets or zone, lower case."""
    host = host.strip("[]").lower()
    return host.partition("%")[0]


class Flow:
    """One way to a peer: `transport` ("udp", "tcp", "tls", "ws", "wss") and the remote
    (host, port). `send` never raises; on a closed connection it drops and says False."""

    __slots__ = ("transport", "remote", "local", "_write", "_close", "closed", "held_until")

    def __init__(self, transport: str, remote: tuple[str, int], local: tuple[str, int],
                 write: Callable[[bytes], None], close: Callable[[], None] | None = None):
        self.transport = transport
        self.remote = (normalise_host(remote[0]), remote[1])
        self.local = (normalise_host(local[0]), local[1])
        self._write = write
        self._close = close
        self.closed = False
        self.held_until = 0.0

    def hold_until(self, when: float) -> None:
        """A registration binding lives through this connection until `when` (clock
        seconds): it is not closed as idle before then (see `sip/lifetime.py`)."""
        self.held_until = max(self.held_until, when)

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.transport, *self.remote)

    @property
    def reliable(self) -> bool:
        return self.transport in RELIABLE

    @property
    def secure(self) -> bool:
        return self.transport in SECURE

    @property
    def via_transport(self) -> str:
        return VIA_NAMES[self.transport]

    @property
    def uri_transport(self) -> str:
        """What a URI we make for this flow says in `transport=` (RFC 7118 §5.2: ws over WSS)."""
        return URI_TRANSPORTS[self.transport]

    def send(self, data: bytes) -> bool:
        if self.closed:
            return False
        self._write(data)
        return True

    def close(self) -> None:
        if not self.closed and self._close is not None:
            self._close()
        self.closed = True

    def __repr__(self) -> str:
        return f"<Flow {self.transport} {self.remote[0]}:{self.remote[1]}>"


class FlowTable:
    """Live connections by (transport, host, port), and the UDP sockets to send from.

    When one peer has several connections (it reconnected before the old one closed), the
    newest wins: that is the one its NAT still maps."""

    def __init__(self):
        self._connections: dict[tuple[str, str, int], Flow] = {}
        self._datagram_senders: dict[int, Callable[[bytes, tuple[str, int]], None]] = {}
        self._datagram_local: dict[int, tuple[str, int]] = {}

    def add(self, flow: Flow) -> None:
        self._connections[flow.key] = flow

    def remove(self, flow: Flow) -> None:
        if self._connections.get(flow.key) is flow:
            del self._connections[flow.key]

    def find(self, transport: str, host: str, port: int) -> Flow | None:
        """A live flow to the peer: its connection, or for UDP a datagram flow to it."""
        host = normalise_host(host)
        if transport == "udp":
            return self.datagram(host, port)
        flow = self._connections.get((transport, host, port))
        return None if flow is None or flow.closed else flow

    def add_datagram_socket(self, family: int, local: tuple[str, int],
                            write: Callable[[bytes, tuple[str, int]], None]) -> None:
        """A bound UDP socket, by address family (4 or 6); the first of each family sends."""
        self._datagram_senders.setdefault(family, write)
        self._datagram_local.setdefault(family, local)

    def datagram_local(self, family: int) -> tuple[str, int] | None:
        """The address of the UDP socket that sends for `family` (4 or 6)."""
        return self._datagram_local.get(family)

    def remove_datagram_sockets(self) -> None:
        self._datagram_senders.clear()
        self._datagram_local.clear()

    def datagram(self, host: str, port: int) -> Flow | None:
        host = normalise_host(host)
        family = 6 if ":" in host else 4
        write = self._datagram_senders.get(family)
        if write is None:
            return None
        remote = (host, port)
        return Flow("udp", remote, self._datagram_local[family], lambda data: write(data, remote))

    def connections(self) -> list[Flow]:
        return list(self._connections.values())

    def __len__(self) -> int:
        return len(self._connections)
