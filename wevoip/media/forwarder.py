"""
The relay's packet forwarder: one epoll loop over non-blocking UDP sockets, outside the reactor.

At 300 calls, 50 packets a second each way, the relay forwards 30,000 packets a second,
RTCP aside. The reactor cannot do that beside signalling on a shared core (a Twisted
DatagramProtocol echo tops out near 200 calls here), so forwarding runs here, in a child
process by default (its own interpreter and GIL) or a thread. It imports only the standard
library so the child starts in a few milliseconds. The reactor keeps the control plane:
it binds the sockets from the port pool and hands them over with SCM_RIGHTS on a
SOCK_SEQPACKET control socket, one JSON message per datagram:

    reactor -> forwarder
      {"op": "pair", "ids": [x, y], "peers": [addr|null, addr|null], "check": [n, n]}
          + two descriptors: what arrives on x goes out of y to y's peer, and back
      {"op": "peer", "id": x, "check": n[, "peer": addr|null]}  signalling changed the stream
      {"op": "close", "ids": [...], "tag": n}                   answered with "closed"
      {"op": "stop"}
    forwarder -> reactor
      {"op": "ready"}                     the loop is running
      {"op": "activity", "ids": [...]}    sides that forwarded since the last report
      {"op": "closed", "tag": n, "stats": {id: [packets, junk, foreign, unsent]}}

Per packet the loop does a recvfrom, two comparisons and a sendto. Latching: a side
sends to the address signalling gave until the first good packet arrives, then to where
that packet came from (phones behind NAT); a packet from another address is dropped unless
the latched one has been silent for `relatch_after` seconds (the phone moved), so a
stranger cannot take over a call that is talking. Junk on an RTP or RTCP side (shorter than
`check`, 12 or 8 bytes, or not version 2) is counted and dropped before it can latch;
a T.38 (UDPTL) side has check 0 and passes anything but datagrams too big for the buffer. Nothing a peer sends raises.
"""

import json
import os
import select
import socket
import sys
import time

BURST = 32
REPORT_EVERY = 0.5
MAX_PACKET = 4096
MAX_CONTROL = 65536


class Side:
    """One relay socket, facing one phone; `other` is the socket its packets leave by."""

    __slots__ = ("id", "sock", "peer", "latched", "last", "other",
                 "packets", "junk", "foreign", "unsent", "reported", "check")

    def __init__(self, side_id, sock, peer, check):
        self.id = side_id
        self.sock = sock
        self.peer = peer
        self.latched = False
        self.last = 0.0
        self.check = check
        self.other = None
        self.packets = self.junk = self.foreign = self.unsent = self.reported = 0


def _address(value):
    return None if value is None else (value[0], value[1])


def forward(side, now, relatch_after):
    """Move what has arrived on `side` (at most BURST packets, for fairness) to its pair."""
    receive = side.sock.recvfrom
    other = side.other
    for _ in range(BURST):
        try:
            data, source = receive(MAX_PACKET)
        except BlockingIOError:
            return
        except OSError:
            continue
        check = side.check
        size = len(data)
        if size >= MAX_PACKET or check and (size < check or data[0] & 0xC0 != 0x80):
            side.junk += 1
            continue
        if source != side.peer:
            if side.latched and now - side.last < relatch_after:
                side.foreign += 1
                continue
            side.peer = source
            side.latched = True
        side.last = now
        side.packets += 1
        if other.peer is None:
            other.unsent += 1
            continue
        try:
            other.sock.sendto(data, other.peer)
        except OSError:
            other.unsent += 1


class Forwarder:
    def __init__(self, control, relatch_after):
        self.control = control
        self.relatch_after = relatch_after
        self.poller = select.epoll()
        self.sides = {}
        self.by_id = {}
        control.setblocking(False)
        self.poller.register(control.fileno(), select.EPOLLIN)

    def serve(self):
        self.send({"op": "ready"})
        next_report = time.monotonic() + REPORT_EVERY
        control_fd = self.control.fileno()
        sides = self.sides
        relatch_after = self.relatch_after
        try:
            while True:
                events = self.poller.poll(REPORT_EVERY)
                now = time.monotonic()
                for fd, _ in events:
                    side = sides.get(fd)
                    if side is not None:
                        forward(side, now, relatch_after)
                    elif fd == control_fd and not self.read_control():
                        return
                if now >= next_report:
                    next_report = now + REPORT_EVERY
                    self.report()
        finally:
            for side in list(self.by_id.values()):
                side.sock.close()
            self.poller.close()
            self.control.close()

    def read_control(self):
        """Apply every waiting control message; False when told to stop or the reactor left."""
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self.control, MAX_CONTROL, 8)
            except BlockingIOError:
                return True
            if not data:
                for fd in fds:
                    os.close(fd)
                return False
            message = json.loads(data)
            op = message["op"]
            if op == "pair":
                self.add_pair(message, fds)
            elif op == "peer":
                side = self.by_id.get(message["id"])
                if side is not None:
                    side.check = message["check"]
                    if "peer" in message:
                        side.peer = _address(message["peer"])
                        side.latched = False
            elif op == "close":
                self.close(message["ids"], message["tag"])
            elif op == "stop":
                return False

    def add_pair(self, message, fds):
        pair = []
        for side_id, fd, peer, check in zip(message["ids"], fds, message["peers"], message["check"]):
            sock = socket.socket(fileno=fd)
            sock.setblocking(False)
            side = Side(side_id, sock, _address(peer), check)
            self.sides[fd] = side
            self.by_id[side_id] = side
            self.poller.register(fd, select.EPOLLIN)
            pair.append(side)
        pair[0].other, pair[1].other = pair[1], pair[0]

    def close(self, ids, tag):
        stats = {}
        for side_id in ids:
            side = self.by_id.pop(side_id, None)
            if side is None:
                continue
            fd = side.sock.fileno()
            self.poller.unregister(fd)
            del self.sides[fd]
            side.sock.close()
            stats[side_id] = [side.packets, side.junk, side.foreign, side.unsent]
        self.send({"op": "closed", "tag": tag, "stats": stats})

    def report(self):
        active = []
        for side in self.by_id.values():
            if side.packets != side.reported:
                side.reported = side.packets
                active.append(side.id)
        if active:
            self.send({"op": "activity", "ids": active})

    def send(self, message):
        """Tell the reactor; it reads promptly, so a full buffer only drops an activity report."""
        try:
            self.control.send(json.dumps(message).encode())
        except BlockingIOError:
            if message["op"] == "closed":
                self.control.setblocking(True)
                try:
                    self.control.send(json.dumps(message).encode())
                finally:
                    self.control.setblocking(False)
        except OSError:
            pass


def main(argv):
    """`python forwarder.py CONTROL_FD RELATCH_AFTER_SECONDS`, as the relay spawns it."""
    control = socket.socket(fileno=int(argv[1]))
    Forwarder(control, float(argv[2])).serve()


if __name__ == "__main__":
    main(sys.argv)
