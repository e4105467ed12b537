"""Loopback 'phones' for media tests: plain UDP sockets, RTP packets built by hand."""

import select
import socket
import struct

import pytest


def rtp(sequence=1, payload_type=0, payload=b"\xff" * 160, ssrc=0x1234, timestamp=0, marker=False):
    return struct.pack("!BBHII", 0x80, payload_type | (0x80 if marker else 0), sequence & 0xFFFF,
                       timestamp & 0xFFFFFFFF, ssrc) + payload


def rtcp_receiver_report(ssrc=0x1234):
    return struct.pack("!BBHI", 0x80, 201, 1, ssrc)


class Phone:
    """An RTP socket and an RTCP socket (port + 1) on 127.0.0.1."""

    def __init__(self):
        for _ in range(50):
            self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.rtp.bind(("127.0.0.1", 0))
            self.port = self.rtp.getsockname()[1]
            self.rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                self.rtcp.bind(("127.0.0.1", self.port + 1))
                break
            except OSError:
                self.rtp.close()
                self.rtcp.close()
        for sock in (self.rtp, self.rtcp):
            sock.setblocking(False)

    def sdp(self, extra="", port=None, media="m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"):
        return ("v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                + media.format(port=self.port if port is None else port) + extra).encode()

    def close(self):
        self.rtp.close()
        self.rtcp.close()


@pytest.fixture
def phones():
    """Three phones, closed after the test."""
    made = [Phone() for _ in range(3)]
    yield made
    for phone in made:
        phone.close()


def receive(sock, timeout=2.0):
    """One datagram and its source, or None when nothing comes within `timeout`."""
    if not select.select([sock], [], [], timeout)[0]:
        return None
    return sock.recvfrom(4096)


def drain(sock):
    while select.select([sock], [], [], 0)[0]:
        sock.recvfrom(4096)
