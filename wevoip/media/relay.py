"""
The in-process RTP/RTCP relay: control on the reactor, forwarding in `forwarder.py`.

For each m= line of a call the relay holds two port pairs (RTP even, RTCP odd), one facing
each leg; a description from leg A is rewritten to point leg B at B's pair, and the
forwarder is told where A said it listens. The reactor side owns the port pool and the
no-media watchdog; the forwarder owns the sockets once they are handed over and reports
which sides carried packets. A port goes back to the pool only when the forwarder says
its socket is closed, so a port is never bound twice; if the forwarder dies, the kernel
has closed its sockets and every port comes back at once.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import socket
import sys
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from twisted.application.service import Service
from twisted.internet import defer, protocol
from twisted.internet.interfaces import IReadWriteDescriptor
from twisted.logger import Logger
from zope.interface import implementer

from wevoip.config import MediaConfig
from wevoip.interfaces import IMediaRelay, IMediaSession, MediaUnavailable
from wevoip.media import forwarder
from wevoip.media.follow import follow
from wevoip.media.ports import PortPool
from wevoip.media.sdp import SdpError, SessionDescription
from wevoip.media.watchdog import Watchdog

LEGS = ("a", "b")
RTP_CHECK, RTCP_CHECK, NO_CHECK = 12, 8, 0
_side_ids = itertools.count(1)
log = Logger()


def _other(leg: str) -> str:
    if leg not in LEGS:
        raise ValueError(f"a leg is 'a' or 'b', not {leg!r}")
    return "b" if leg == "a" else "a"


@implementer(IReadWriteDescriptor)
class _Control:
    """The reactor's end of the control socket: JSON datagrams, descriptors by SCM_RIGHTS."""

    def __init__(self, reactor: Any, sock: socket.socket, on_message: Callable, on_gone: Callable):
        self._reactor = reactor
        self._sock = sock
        self._on_message = on_message
        self._on_gone = on_gone
        self._queue: deque[tuple[bytes, list[socket.socket]]] = deque()
        self._writing = False
        sock.setblocking(False)
        reactor.addReader(self)

    def fileno(self) -> int:
        return self._sock.fileno()

    def logPrefix(self) -> str:
        return "media-forwarder"

    def send(self, message: dict, sockets: list[socket.socket] = ()) -> None:
        """Queue a message; handed-over sockets are closed here once the forwarder has them."""
        self._queue.append((json.dumps(message).encode(), list(sockets)))
        self._flush()

    def _flush(self) -> None:
        while self._queue:
            data, sockets = self._queue[0]
            try:
                if sockets:
                    socket.send_fds(self._sock, [data], [s.fileno() for s in sockets])
                else:
                    self._sock.send(data)
            except BlockingIOError:
                if not self._writing:
                    self._writing = True
                    self._reactor.addWriter(self)
                return
            except OSError:
                self._gone()
                return
            self._queue.popleft()
            for sock in sockets:
                sock.close()
        if self._writing:
            self._writing = False
            self._reactor.removeWriter(self)

    def doWrite(self) -> None:
        self._flush()

    def doRead(self) -> None:
        while True:
            try:
                data = self._sock.recv(forwarder.MAX_CONTROL)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._gone()
                return
            self._on_message(json.loads(data))

    def _gone(self) -> None:
        if self._sock.fileno() == -1:
            return
        self._reactor.removeReader(self)
        if self._writing:
            self._reactor.removeWriter(self)
        for _, sockets in self._queue:
            for sock in sockets:
                sock.close()
        self._queue.clear()
        self._sock.close()
        self._on_gone()

    def connectionLost(self, reason: Any) -> None:
        self._gone()


class _ForwarderProcess(protocol.ProcessProtocol):
    """Logs what the forwarder child writes; its end is seen on the control socket."""

    def __init__(self) -> None:
        self.ended = defer.Deferred()

    def errReceived(self, data: bytes) -> None:
        log.error("media forwarder: {text}", text=data.decode("utf-8", "replace").rstrip())

    def processEnded(self, reason: Any) -> None:
        self.ended.callback(None)


@dataclass(frozen=True)
class Flow:
    """RTP packets the relay delivered each way over a call's life (RTCP aside): a call
    whose media flowed only one way has one of them at 0."""

    a_to_b: int
    b_to_a: int


class _Stream:
    """One m= line: a port pair facing each leg, and what each leg's SDP said."""

    def __init__(self, ports: dict[str, int]):
        self.ports = ports
        self.sides = {leg: (next(_side_ids), next(_side_ids)) for leg in LEGS}
        self.peers: dict[str, tuple] = {}
        self.check = RTP_CHECK


@implementer(IMediaSession)
class RelaySession:
    def __init__(self, relay: InProcessRelay, call_id: str, on_lost: Callable[[str], None]):
        self.call_id = call_id
        self.streams: list[_Stream] = []
        self.directions: dict[str, set[str]] = {}
        self.stats: dict[int, list[int]] = {}
        self._relay = relay
        self._on_lost = on_lost
        self._released: defer.Deferred | None = None
        self._rollbacks: list[defer.Deferred] = []
        self.answered = False

    def offer(self, leg: str, sdp: bytes) -> defer.Deferred:
        return defer.maybeDeferred(self._rewrite, leg, sdp)

    def answer(self, leg: str, sdp: bytes) -> defer.Deferred:
        def watch(rewritten: bytes) -> bytes:
            self.answered = True
            self._relay._watch(self)
            return rewritten
        return defer.maybeDeferred(self._rewrite, leg, sdp).addCallback(watch)

    def release(self) -> defer.Deferred:
        if self._released is None:
            self._released = self._relay._release(self)
        waits = [follow(d) for d in (self._released, *self._rollbacks)]
        return defer.gatherResults(waits).addCallback(lambda _: None)

    def flow(self) -> Flow | None:
        """Once released: what each leg sent that reached the other (a packet that came when
        the far side had no address to go to is not counted). None when the forwarder
        could not count (it died, or the call never had a stream)."""
        if not self.stats:
            return None

        def delivered(leg: str) -> int:
            total = 0
            for stream in self.streams:
                into, out = self.stats.get(stream.sides[leg][0]), self.stats.get(stream.sides[_other(leg)][0])
                if into is not None:
                    total += into[0] - (out[3] if out is not None else 0)
            return max(total, 0)
        return Flow(delivered("a"), delivered("b"))

    @property
    def on_hold(self) -> bool:
        return any(direction != "sendrecv" for seen in self.directions.values() for direction in seen)

    def _rewrite(self, leg: str, sdp: bytes) -> bytes:
        other = _other(leg)
        relay = self._relay
        if self._released is not None or relay._control is None:
            raise MediaUnavailable("the media session has ended")
        description = SessionDescription.parse(sdp)
        wanted = [_peers(media, relay.pool.family) for media in description.media]
        self._open_streams(len(description.media))
        changed = []
        for media, stream, peers in zip(description.media, self.streams, wanted):
            if media.port == 0:
                continue
            check = RTP_CHECK if media.is_rtp else NO_CHECK
            if stream.peers.get(leg) != peers or stream.check != check:
                stream.check = check
                stream.peers[leg] = peers
                changed.append(stream)
            media.port = stream.ports[other]
            if media.rtcp is not None:
                media.set_rtcp(stream.ports[other] + 1)
        self.directions[leg] = {m.direction for m in description.media if m.port}
        description.set_connection_address(relay.advertised_address)
        description.remove_ice()
        for stream in changed:
            checks = (stream.check, RTCP_CHECK if stream.check else NO_CHECK)
            for side, peer, check in zip(stream.sides[leg], stream.peers[leg], checks):
                relay._control.send({"op": "peer", "id": side, "check": check, "peer": peer})
            for side, check in zip(stream.sides[other], checks):
                relay._control.send({"op": "peer", "id": side, "check": check})
        if self.answered:
            relay._watch(self)
        return description.serialise()

    def _open_streams(self, count: int) -> None:
        """Ports for every m= line not seen before; all or none (MediaUnavailable)."""
        opened = []
        try:
            while len(self.streams) + len(opened) < count:
                opened.append(self._relay._open_stream(self))
        except MediaUnavailable:
            self._rollbacks.append(self._relay._close_streams(opened))
            raise
        self.streams.extend(opened)

    def _lost(self, reason: str) -> None:
        if self._released is None:
            self._released = self._relay._release(self)
            self._on_lost(reason)


def _peers(media: Any, family: int) -> tuple | None:
    """Where a stream's phone said it takes RTP and RTCP; checked before any port is taken."""
    if media.port == 0:
        return None
    rtp = (_ip(media.effective_connection.address, family), media.port)
    if ipaddress.ip_address(rtp[0]).is_unspecified:
        return None, None  # RFC 2543 hold: send nothing until the phone speaks
    rtcp_address, rtcp_port = media.rtcp_destination()
    return rtp, (_ip(rtcp_address, family), rtcp_port)


def _ip(address: str, family: int) -> str:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        raise SdpError(f"the relay needs an IP address in c=, not {address!r}") from None
    if (parsed.version == 6) != (family == socket.AF_INET6):
        raise SdpError(f"c= address {address} is not of the relay's address family")
    return str(parsed)


@implementer(IMediaRelay)
class InProcessRelay(Service):
    """The built-in relay; a Service so the node starts and stops its forwarder."""

    name = "media-relay"

    def __init__(self, reactor: Any, config: MediaConfig, clock: Any = None):
        self.reactor = reactor
        self.config = config
        self.pool = PortPool(config.rtp_address, config.rtp_port_min, config.rtp_port_max)
        self.advertised_address = config.advertised_address or config.rtp_address
        self.watchdog = Watchdog(clock or reactor, self._silent)
        self.sessions: set[RelaySession] = set()
        self._owners: dict[int, RelaySession] = {}
        self._closing: dict[int, tuple[list[int], list[int], defer.Deferred, RelaySession | None]] = {}
        self._tags = itertools.count(1)
        self._control: _Control | None = None
        self._stopped: defer.Deferred | None = None
        self.forwarder_pid: int | None = None
        self._process_ended: defer.Deferred | None = None
        self.ready: defer.Deferred | None = None

    def startService(self) -> None:
        super().startService()
        self._start_forwarder()

    def stopService(self) -> defer.Deferred:
        super().stopService()
        if self._control is None:
            return defer.succeed(None)
        self._control.send({"op": "stop"})
        stopped = defer.gatherResults([follow(self._stopped), follow(self._process_ended)])
        return stopped.addCallback(lambda _: None)

    def _start_forwarder(self) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        relatch = str(self.config.relatch_after_ms / 1000)
        self._stopped = defer.Deferred()
        self.ready = defer.Deferred()
        if self.config.forwarder == "thread":
            thread = threading.Thread(target=forwarder.main, args=(["", str(theirs.detach()), relatch],),
                                      name="media-forwarder", daemon=True)
            thread.start()
            self.forwarder_pid = None
            self._process_ended = defer.succeed(None)
        else:
            process = _ForwarderProcess()
            transport = self.reactor.spawnProcess(
                process, sys.executable,
                [sys.executable, "-I", str(Path(forwarder.__file__)), "3", relatch],
                env=None, childFDs={0: "w", 1: "r", 2: "r", 3: theirs.fileno()})
            theirs.close()
            self.forwarder_pid = transport.pid
            self._process_ended = process.ended
        self._control = _Control(self.reactor, mine, self._message, self._forwarder_gone)

    def allocate(self, call_id: str, on_lost: Callable[[str], None]) -> defer.Deferred:
        if self._control is None:
            return defer.fail(MediaUnavailable("the media relay is not running"))
        session = RelaySession(self, call_id, on_lost)
        self.sessions.add(session)
        return defer.succeed(session)

    def _open_stream(self, session: RelaySession) -> _Stream:
        taken = []
        try:
            for _ in LEGS:
                taken.append(self.pool.take())
        except MediaUnavailable:
            for port, rtp, rtcp in taken:
                rtp.close()
                rtcp.close()
                self.pool.give_back(port)
            raise
        (port_a, rtp_a, rtcp_a), (port_b, rtp_b, rtcp_b) = taken
        stream = _Stream({"a": port_a, "b": port_b})
        (rtp_side_a, rtcp_side_a), (rtp_side_b, rtcp_side_b) = stream.sides["a"], stream.sides["b"]
        for ids, pair, check in (((rtp_side_a, rtp_side_b), [rtp_a, rtp_b], RTP_CHECK),
                                 ((rtcp_side_a, rtcp_side_b), [rtcp_a, rtcp_b], RTCP_CHECK)):
            self._control.send({"op": "pair", "ids": list(ids), "peers": [None, None],
                                "check": [check, check]}, pair)
            for side in ids:
                self._owners[side] = session
        return stream

    def _watch(self, session: RelaySession) -> None:
        if session in self.sessions:
            timeout = self.config.hold_timeout_ms if session.on_hold else self.config.no_media_timeout_ms
            self.watchdog.watch(session, timeout / 1000)

    def _silent(self, session: RelaySession, silent_for: float) -> None:
        session._lost(f"no media for {round(silent_for * 1000)} ms")

    def _release(self, session: RelaySession) -> defer.Deferred:
        self.sessions.discard(session)
        self.watchdog.forget(session)
        return self._close_streams(session.streams, session)

    def _close_streams(self, streams: list[_Stream], session: RelaySession | None = None) -> defer.Deferred:
        ids = [side for stream in streams for leg in LEGS for side in stream.sides[leg]]
        ports = [stream.ports[leg] for stream in streams for leg in LEGS]
        done = defer.Deferred()
        if not ids:
            done.callback(None)
        elif self._control is None:
            self._give_back(ids, ports)
            done.callback(None)
        else:
            tag = next(self._tags)
            self._closing[tag] = (ids, ports, done, session)
            self._control.send({"op": "close", "ids": ids, "tag": tag})
        return done

    def _give_back(self, ids: list[int], ports: list[int]) -> None:
        for side in ids:
            self._owners.pop(side, None)
        for port in ports:
            self.pool.give_back(port)

    def _message(self, message: dict) -> None:
        if message["op"] == "ready":
            self.ready.callback(None)
        elif message["op"] == "activity":
            for side in message["ids"]:
                session = self._owners.get(side)
                if session is not None:
                    self.watchdog.heard(session)
        elif message["op"] == "closed":
            ids, ports, done, session = self._closing.pop(message["tag"])
            if session is not None:
                session.stats = {int(side): counts for side, counts in message["stats"].items()}
            self._give_back(ids, ports)
            done.callback(None)

    def _forwarder_gone(self) -> None:
        """Every socket died with the forwarder: free all ports, end every call, start anew."""
        self._control = None
        closing, self._closing = self._closing, {}
        for ids, ports, done, _ in closing.values():
            self._give_back(ids, ports)
            done.callback(None)
        for session in list(self.sessions):
            session._lost("the media relay stopped")
        stopped, self._stopped = self._stopped, None
        if self.running:
            log.error("media forwarder ended unexpectedly; starting a new one")
            self._start_forwarder()
        stopped.callback(None)
