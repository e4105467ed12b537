"""
A small SIP registering client over UDP for end-to-end tests, in blocking sockets (run it
with `threads.deferToThread`): any source address on loopback (127.0.0.x) and port, the
Call-ID and CSeq the test chooses, and digest as RFC 8760 §2.4 tells a UAC: the topmost
challenge whose algorithm it supports. It speaks SHA-256 unless told to know only MD5,
which is what the Debian and PyPI clients the suite has cannot do.
"""

from __future__ import annotations

import hashlib
import re
import socket
import uuid
from dataclasses import dataclass

from wevoip.sip.message import Response, parse

HASHES = {"SHA-256": hashlib.sha256, "MD5": hashlib.md5}


@dataclass
class Answer:
    response: Response | None          # None: no answer at all (a banned source)
    algorithm: str = ""                # the algorithm the client answered the challenge with


class Client:
    def __init__(self, server_port: int, user: str, domain: str, password: str, *,
                 address: str = "127.0.0.1", port: int = 0, algorithms: tuple[str, ...] = ("SHA-256", "MD5"),
                 user_agent: str = "wevoip-test-client/1.0", timeout: float = 2.0):
        self.server = ("127.0.0.1", server_port)
        self.user, self.domain, self.password = user, domain, password
        self.algorithms = algorithms
        self.user_agent = user_agent
        self.call_id = uuid.uuid4().hex
        self.cseq = 0
        self.timeout = timeout
        self.socket = None
        self.bind(address, port)

    def bind(self, address: str, port: int = 0) -> None:
        """A new socket: the same phone seen from a new NAT port (or a new address)."""
        if self.socket is not None:
            self.socket.close()
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind((address, port))
        self.socket.settimeout(self.timeout)

    @property
    def local(self) -> tuple[str, int]:
        return self.socket.getsockname()

    def close(self) -> None:
        self.socket.close()

    def send(self, data: bytes) -> Response | None:
        self.socket.sendto(data, self.server)
        try:
            while True:
                reply = parse(self.socket.recv(65535))
                if isinstance(reply, Response) and reply.status >= 200:
                    return reply
        except socket.timeout:
            return None

    def request(self, authorization: str = "", *, expires: int = 600, contact: str | None = None,
                raw_authorization: bytes = b"") -> bytes:
        self.cseq += 1
        host, port = self.local
        contact = contact or f"<sip:{self.user}@{host}:{port}>"
        lines = [f"REGISTER sip:{self.domain} SIP/2.0",
                 f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{uuid.uuid4().hex};rport",
                 "Max-Forwards: 70", f"From: <sip:{self.user}@{self.domain}>;tag={self.call_id[:8]}",
                 f"To: <sip:{self.user}@{self.domain}>", f"Call-ID: {self.call_id}",
                 f"CSeq: {self.cseq} REGISTER", f"Contact: {contact}", f"Expires: {expires}",
                 f"User-Agent: {self.user_agent}"]
        if authorization:
            lines.append(f"Authorization: {authorization}")
        head = ("\r\n".join(lines) + "\r\n").encode()
        if raw_authorization:
            head += b"Authorization: " + raw_authorization + b"\r\n"
        return head + b"Content-Length: 0\r\n\r\n"

    def register(self, *, password: str | None = None, expires: int = 600, contact: str | None = None) -> Answer:
        """REGISTER, answer the challenge (if any), return the final answer."""
        first = self.send(self.request(expires=expires, contact=contact))
        if first is None or first.status != 401:
            return Answer(first)
        algorithm, authorization = self.answer(first, password or self.password)
        return Answer(self.send(self.request(authorization, expires=expires, contact=contact)), algorithm)

    def answer(self, challenge: Response, password: str) -> tuple[str, str]:
        offered = challenge.headers.get_all("WWW-Authenticate")
        for value in offered:
            algorithm = re.search(r"algorithm=([A-Za-z0-9-]+)", value).group(1).upper()
            if algorithm in self.algorithms:
                break
        else:
            raise AssertionError(f"no challenge this client can answer: {offered}")
        realm = re.search(r'realm="([^"]+)"', value).group(1)
        nonce = re.search(r'nonce="([^"]+)"', value).group(1)
        h = HASHES[algorithm]
        uri = f"sip:{self.domain}"
        ha1 = h(f"{self.user}:{realm}:{password}".encode()).hexdigest()
        ha2 = h(f"REGISTER:{uri}".encode()).hexdigest()
        response = h(f"{ha1}:{nonce}:00000001:0a4f113b:auth:{ha2}".encode()).hexdigest()
        return algorithm, (f'Digest username="{self.user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
                           f'response="{response}", algorithm={algorithm}, qop=auth, nc=00000001, '
                           f'cnonce="0a4f113b"')
