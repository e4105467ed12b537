"""
A SIP call load generator that owns no WeVoIP code: phones on many loopback addresses
(127.0.0.10, .11, ...) call out through a node to a carrier gateway it plays itself, with
digest authentication on every call, as SIPp does with `-aa` and an auth scenario:

    phone                node                    gateway (127.0.0.2)
    INVITE        ->
                  <-     407 (a fresh nonce)
    ACK           ->
    INVITE+creds  ->
                  <-     100          INVITE ->
                                      <-  200 with SDP
                  <-     200
    ACK           ->                  ACK    ->
    ... the call is held for `hold` seconds ...
    BYE           ->                  BYE    ->
                                      <-  200
                  <-     200

Calls start at `rate` per second for `seconds`, phone after phone (one user per phone);
a call not finished within `patience` seconds of its start counts as lost. Standard library
only: sockets and a selector, one process. It prints one JSON object: calls started,
answered (with their Call-IDs), failed by status, lost, the gateway's count, the rate
reached, and set-up time (first INVITE to the 200, the challenge included) p50/p99.

Run: python3 tests/sipcalls.py --node 127.0.0.1:5060 --domain pbx.example.net --users 'load{n}' \
         --phones 100 --password secret --dial 2125550100 --gateway-port 5090 --rate 100 --seconds 60
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import secrets
import selectors
import socket
import time
from dataclasses import dataclass, field

SDP = ("v=0\r\no=- {n} 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
       "m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
_HEADER = re.compile(rb"^([A-Za-z-]+):[ \t]*(.*?)\r$", re.M)
_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]+))')
_HASHES = {"SHA-256": hashlib.sha256, "MD5": hashlib.md5}


def headers(data: bytes) -> dict[bytes, list[bytes]]:
    found: dict[bytes, list[bytes]] = {}
    for name, value in _HEADER.findall(data.split(b"\r\n\r\n", 1)[0] + b"\r\n"):
        found.setdefault(name.lower(), []).append(value)
    return found


def authorization(challenges: list[str], user: str, password: str, uri: str, method: str = "INVITE") -> str:
    """The Proxy-Authorization for the strongest algorithm offered (RFC 7616: SHA-256 before MD5)."""
    offered = {}
    for challenge in challenges:
        params = {key.lower(): quoted or bare for key, quoted, bare in _PARAM.findall(challenge)}
        offered[params.get("algorithm", "MD5").upper()] = params
    algorithm = next(name for name in _HASHES if name in offered)
    params = offered[algorithm]
    digest = _HASHES[algorithm]

    def h(text: str) -> str:
        return digest(text.encode()).hexdigest()
    cnonce = secrets.token_hex(8)
    ha1 = h(f"{user}:{params['realm']}:{password}")
    response = h(f"{ha1}:{params['nonce']}:00000001:{cnonce}:auth:{h(f'{method}:{uri}')}")
    opaque = f', opaque="{params["opaque"]}"' if "opaque" in params else ""
    return (f'Digest username="{user}", realm="{params["realm"]}", nonce="{params["nonce"]}", uri="{uri}", '
            f'response="{response}", algorithm={algorithm}, qop=auth, nc=00000001, cnonce="{cnonce}"{opaque}')


@dataclass
class Call:
    n: int
    phone: int
    started: float
    call_id: str
    tag: str
    cseq: int = 1
    branch: str = ""
    to: str = ""
    contact: str = ""
    state: str = "challenge"        # challenge, invite, up, bye, done
    answered_at: float | None = None
    bye_at: float | None = None
    status: int | None = None
    sent: list[bytes] = field(default_factory=list)


class Generator:
    def __init__(self, args):
        self.args = args
        self.node = (args.node.rpartition(":")[0], int(args.node.rpartition(":")[2]))
        self.selector = selectors.DefaultSelector()
        self.phones: list[socket.socket] = []
        for index in range(args.phones):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((f"127.0.0.{10 + index % 240}", 0))
            self._register(sock, ("phone", index))
            self.phones.append(sock)
        self.gateway = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.gateway.bind(("127.0.0.2", args.gateway_port))
        self._register(self.gateway, ("gateway", None))
        self.calls: dict[str, Call] = {}
        self.gateway_calls: set[str] = set()
        self.gateway_byes: set[str] = set()
        self.failed: dict[str, int] = {}
        self.setup: list[float] = []
        self.requests_from_node: dict[str, int] = {}

    def _register(self, sock: socket.socket, key) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.setblocking(False)
        self.selector.register(sock, selectors.EVENT_READ, key)

    # -- the phones --------------------------------------------------------------

    def _user(self, phone: int) -> str:
        return self.args.users.format(n=phone)

    def _domain(self, phone: int) -> str:
        domains = self.args.domain.split(",")
        return domains[phone % len(domains)]

    def _request(self, call: Call, method: str, uri: str, *, extra: str = "", body: str = "",
                 cseq: int | None = None, branch: str | None = None) -> None:
        sock = self.phones[call.phone]
        host, port = sock.getsockname()
        domain = self._domain(call.phone)
        lines = [f"{method} {uri} SIP/2.0",
                 f"Via: SIP/2.0/UDP {host}:{port};branch={branch or call.branch};rport",
                 f"From: <sip:{self._user(call.phone)}@{domain}>;tag={call.tag}",
                 f"To: {call.to or f'<sip:{self.args.dial}@{domain}>'}", f"Call-ID: {call.call_id}",
                 f"CSeq: {cseq or call.cseq} {method}", f"Contact: <sip:{self._user(call.phone)}@{host}:{port}>",
                 "Max-Forwards: 70", "User-Agent: wevoip-sipcalls"]
        if extra:
            lines.append(extra)
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}\r\n\r\n{body}")
        sock.sendto("\r\n".join(lines).encode(), self.node)

    def _invite(self, call: Call, auth: str = "") -> None:
        call.branch = f"z9hG4bK-{call.call_id}-{call.cseq}"
        sock = self.phones[call.phone]
        host = sock.getsockname()[0]
        self._request(call, "INVITE", f"sip:{self.args.dial}@{self._domain(call.phone)}",
                      extra=f"Proxy-Authorization: {auth}" if auth else "",
                      body=SDP.format(n=call.n, host=host, port=30000 + 2 * (call.n % 10000)))

    def start(self, n: int) -> None:
        phone = n % self.args.phones
        call = Call(n, phone, time.perf_counter(), f"load-{n}-{secrets.token_hex(4)}", f"t{n}")
        self.calls[call.call_id] = call
        self._invite(call)

    def from_node_to_phone(self, phone: int, data: bytes) -> None:
        found = headers(data)
        first = data.split(b"\r\n", 1)[0]
        call_id = found[b"call-id"][0].decode()
        call = self.calls.get(call_id)
        if not first.startswith(b"SIP/2.0"):
            self._answer_request(self.phones[phone], data, found, first)
            return
        if call is None:
            return
        status = int(first.split()[1])
        cseq_number, method = found[b"cseq"][0].split()
        if method == b"INVITE" and int(cseq_number) == call.cseq:
            if status < 200:
                return
            to = found[b"to"][0].decode()
            if status == 407 and call.state == "challenge":
                call.to = to
                self._request(call, "ACK", f"sip:{self.args.dial}@{self._domain(call.phone)}")
                challenges = [value.decode() for value in found.get(b"proxy-authenticate", [])]
                uri = f"sip:{self.args.dial}@{self._domain(call.phone)}"
                call.to, call.cseq, call.state = "", call.cseq + 1, "invite"
                self._invite(call, authorization(challenges, self._user(call.phone), self.args.password, uri))
            elif 200 <= status < 300:
                call.to = to
                contact = found.get(b"contact", [b""])[0].decode()
                call.contact = contact.strip("<>").split(">")[0] or f"sip:{self.node[0]}:{self.node[1]}"
                self._request(call, "ACK", call.contact, cseq=call.cseq, branch=f"z9hG4bK-{call.call_id}-ack{call.cseq}")
                if call.state == "invite":
                    call.state, call.answered_at = "up", time.perf_counter()
                    self.setup.append(call.answered_at - call.started)
            elif status >= 300:
                call.to = to
                self._request(call, "ACK", f"sip:{self.args.dial}@{self._domain(call.phone)}")
                if call.state in ("challenge", "invite"):
                    call.state, call.status = "done", status
                    reason = first.decode(errors="replace")[8:90]
                    self.failed[reason] = self.failed.get(reason, 0) + 1
        elif method == b"BYE" and status >= 200 and call.state == "bye":
            call.state, call.status = "done", status

    def _answer_request(self, sock, data: bytes, found, first: bytes, status: int = 200, body: str = "",
                        tag: str = "") -> None:
        method = first.split()[0].decode()
        self.requests_from_node[method] = self.requests_from_node.get(method, 0) + 1
        if method == "ACK":
            return
        if method == "BYE":     # the node ended the call (no answer, a limit): the phone's side is over
            call = self.calls.get(found[b"call-id"][0].decode())
            if call is not None and call.state in ("up", "bye"):
                call.state = "done"
        host, port = sock.getsockname()
        to = found[b"to"][0].decode()
        if tag and ";tag=" not in to:
            to += f";tag={tag}"
        lines = [f"SIP/2.0 {status} OK"] + [f"Via: {via.decode()}" for via in found.get(b"via", [])]
        lines += [f"From: {found[b'from'][0].decode()}", f"To: {to}", f"Call-ID: {found[b'call-id'][0].decode()}",
                  f"CSeq: {found[b'cseq'][0].decode()}", f"Contact: <sip:peer@{host}:{port}>"]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}\r\n\r\n{body}")
        sock.sendto("\r\n".join(lines).encode(), self._reply_to(found))

    def _reply_to(self, found) -> tuple[str, int]:
        """Responses go where the top Via says (rport/received), as RFC 3261 18.2.2 has it."""
        via = found[b"via"][0].decode()
        sent_by = via.split(None, 1)[1].split(";")[0]
        host, _, port = sent_by.partition(":")
        params = dict(part.partition("=")[::2] for part in via.split(";")[1:])
        return params.get("received", host), int(params.get("rport") or port or 5060)

    # -- the gateway -------------------------------------------------------------

    def at_gateway(self, data: bytes) -> None:
        found = headers(data)
        first = data.split(b"\r\n", 1)[0]
        if first.startswith(b"SIP/2.0"):
            return
        call_id = found[b"call-id"][0].decode()
        method = first.split()[0]
        if method == b"INVITE":
            self.gateway_calls.add(call_id)
            self._answer_request(self.gateway, data, found, first, body=SDP.format(n=1, host="127.0.0.2", port=40000),
                                 tag=f"gw{abs(hash(call_id)) % 10**8}")
        else:
            if method == b"BYE":
                self.gateway_byes.add(call_id)
            self._answer_request(self.gateway, data, found, first, tag="gw")

    # -- the loop ----------------------------------------------------------------

    def run(self) -> dict:
        args = self.args
        interval = 1.0 / args.rate
        total = int(args.rate * args.seconds)
        begin = time.perf_counter()
        next_start, started = begin, 0
        while True:
            now = time.perf_counter()
            while started < total and now >= next_start:
                self.start(started)
                started += 1
                next_start += interval
            for call in self.calls.values():
                if call.state == "up" and now - call.answered_at >= args.hold:
                    call.state, call.bye_at, call.cseq = "bye", now, call.cseq + 1
                    self._request(call, "BYE", call.contact, branch=f"z9hG4bK-{call.call_id}-bye")
            open_calls = [call for call in self.calls.values() if call.state != "done"]
            if started >= total and not open_calls:
                break
            if started >= total and all(now - call.started > args.patience for call in open_calls):
                break
            for key, _ in self.selector.select(timeout=min(0.01, max(0.0, next_start - now)) if started < total
                                               else 0.01):
                sock = key.fileobj
                while True:
                    try:
                        data, _ = sock.recvfrom(65535)
                    except BlockingIOError:
                        break
                    if key.data[0] == "gateway":
                        self.at_gateway(data)
                    else:
                        self.from_node_to_phone(key.data[1], data)
        seconds = time.perf_counter() - begin
        answered = sorted(call.call_id for call in self.calls.values() if call.answered_at is not None)
        completed = [call for call in self.calls.values() if call.answered_at is not None and call.status == 200]
        lost = sorted(call.call_id for call in self.calls.values() if call.state != "done")
        return {"started": started, "answered": len(answered), "completed": len(completed),
                "failed": self.failed, "lost": len(lost), "lost_call_ids": lost[:20],
                "gateway_invites": len(self.gateway_calls), "gateway_byes": len(self.gateway_byes),
                "requests_from_node": self.requests_from_node, "seconds": round(seconds, 2),
                "start_rate": round(started / min(seconds, args.seconds), 1),
                "setup_ms_p50": _percentile(self.setup, 0.5), "setup_ms_p99": _percentile(self.setup, 0.99),
                "answered_call_ids": answered}


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(int(len(ordered) * share), len(ordered) - 1)] * 1000, 1)


def parser() -> argparse.ArgumentParser:
    arguments = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    arguments.add_argument("--node", required=True, help="the node's SIP UDP address, host:port")
    arguments.add_argument("--domain", required=True,
                           help="the tenants' SIP domains, comma-separated: phone n is in the (n mod count)th")
    arguments.add_argument("--users", required=True, help="user names, {n} the phone's number from 0")
    arguments.add_argument("--phones", type=int, default=100, help="phones, each on its own 127.0.0.x address")
    arguments.add_argument("--password", required=True)
    arguments.add_argument("--dial", required=True, help="the number every phone dials (out through the gateway)")
    arguments.add_argument("--gateway-port", type=int, required=True, help="the gateway's UDP port on 127.0.0.2")
    arguments.add_argument("--rate", type=float, default=100.0, help="new calls per second")
    arguments.add_argument("--seconds", type=float, default=60.0, help="how long new calls start")
    arguments.add_argument("--hold", type=float, default=2.0, help="seconds a call stays up before its BYE")
    arguments.add_argument("--patience", type=float, default=30.0, help="seconds after which a call is lost")
    return arguments


if __name__ == "__main__":
    print(json.dumps(Generator(parser().parse_args()).run()))
