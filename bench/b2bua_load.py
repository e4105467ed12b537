"""
The load generator of bench/b2bua.py, run as its own process so that it does not share the
node's core: a carrier (UAC on 127.0.0.2) calls a DID, the subscriber's phone (UAS) answers
at once; each call is INVITE, 180, 200, ACK, then BYE and its 200. Plain sockets and a
selector, no SIP stack: every message is a template.

Prints one JSON line: calls completed, failures, seconds, calls per second, and the delay
from the INVITE sent to the INVITE the phone got (what the B2BUA adds) and to the 200; the
first `warmup` calls are made before the others and left out of every figure.
"""

from __future__ import annotations

import json
import re
import selectors
import socket
import sys
import time

SDP = ("v=0\r\no=- {n} 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n"
       "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
_SESSION = re.compile(rb"o=\S+ (\d+) ")
_HEADER = re.compile(rb"^([A-Za-z-]+):[ \t]*(.*?)\r$", re.M)


def headers(data: bytes) -> dict[bytes, list[bytes]]:
    found: dict[bytes, list[bytes]] = {}
    for name, value in _HEADER.findall(data):
        found.setdefault(name.lower(), []).append(value)
    return found


def main(node_port: int, uas_port: int, dids: int, calls: int, concurrency: int, rate: float, warmup: int) -> None:
    uac = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    uac.bind(("127.0.0.2", 0))
    uas = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    uas.bind(("127.0.0.1", uas_port))
    for sock in (uac, uas):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.setblocking(False)
    node = ("127.0.0.1", node_port)
    uac_port = uac.getsockname()[1]
    selector = selectors.DefaultSelector()
    selector.register(uac, selectors.EVENT_READ, "uac")
    selector.register(uas, selectors.EVENT_READ, "uas")
    sent_at: dict[str, float] = {}
    delays_in: list[float] = []
    delays_ok: list[float] = []
    started = done = failed = 0
    reasons: dict[str, int] = {}
    begin = time.perf_counter()

    def invite(n: int) -> None:
        call_id = f"bench-{n}"
        did = f"1555019{n % dids:04d}"
        sdp = SDP.format(n=n).encode()   # the o= session id names the call on the far side
        message = (f"INVITE sip:{did}@127.0.0.1:{node_port} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP 127.0.0.2:{uac_port};branch=z9hG4bK-i{n};rport\r\n"
                   f"From: <sip:+442071234567@127.0.0.2>;tag=f{n}\r\nTo: <sip:{did}@127.0.0.1>\r\n"
                   f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:carrier@127.0.0.2:{uac_port}>\r\n"
                   f"Max-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n")
        sent_at[call_id] = time.perf_counter()
        uac.sendto(message.encode() + sdp, node)

    def in_dialog(method: str, n: int, to: bytes, cseq: int) -> None:
        message = (f"{method} sip:b2bua@127.0.0.1:{node_port} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP 127.0.0.2:{uac_port};branch=z9hG4bK-{method.lower()}{n};rport\r\n"
                   f"From: <sip:+442071234567@127.0.0.2>;tag=f{n}\r\nTo: {to.decode()}\r\n"
                   f"Call-ID: bench-{n}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
        uac.sendto(message.encode(), node)

    def answer(data: bytes, source, status: int, reason: str, tag: str, body: str = "") -> None:
        found = headers(data)
        lines = [f"SIP/2.0 {status} {reason}"]
        lines += [f"Via: {v.decode()}" for v in found.get(b"via", [])]
        to = found[b"to"][0].decode()
        if ";tag=" not in to:
            to += f";tag={tag}"
        lines += [f"From: {found[b'from'][0].decode()}", f"To: {to}", f"Call-ID: {found[b'call-id'][0].decode()}",
                  f"CSeq: {found[b'cseq'][0].decode()}", f"Contact: <sip:bob@127.0.0.1:{uas_port}>"]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}\r\n\r\n{body}")
        uas.sendto("\r\n".join(lines).encode(), source)

    interval = 1.0 / rate if rate else 0.0
    total = warmup + calls
    finished = 0      # calls of the warm-up included
    next_start = time.perf_counter()
    deadline = time.perf_counter() + max(60.0, total / 20)
    while finished < total and time.perf_counter() < deadline:
        now = time.perf_counter()
        while started < total and started - finished < concurrency and now >= next_start:
            if started == warmup:
                begin = now
            invite(started)
            started += 1
            next_start = next_start + interval if interval else now
        timeout = max(0.0, next_start - now) if interval and started < total else 0.05
        for key, _ in selector.select(timeout=min(timeout, 0.05)):
            sock = key.fileobj
            while True:
                try:
                    data, source = sock.recvfrom(65535)
                except BlockingIOError:
                    break
                first = data.split(b"\r\n", 1)[0]
                if key.data == "uas":
                    if first.startswith(b"INVITE"):
                        session = _SESSION.search(data)
                        if session is not None and int(session.group(1)) >= warmup:
                            delays_in.append(time.perf_counter() - sent_at[f"bench-{int(session.group(1))}"])
                        answer(data, source, 180, "Ringing", "uas")
                        answer(data, source, 200, "OK", "uas", SDP.format(n=0))
                    elif first.startswith(b"BYE"):
                        answer(data, source, 200, "OK", "uas")
                    continue
                found = headers(data)
                call_id = found[b"call-id"][0].decode()
                n = int(call_id.split("-")[1])
                status = int(first.split()[1])
                method = found[b"cseq"][0].split()[1]
                if method == b"INVITE" and status == 200:
                    if n >= warmup:
                        delays_ok.append(time.perf_counter() - sent_at[call_id])
                    to = found[b"to"][0]
                    in_dialog("ACK", n, to, 1)
                    in_dialog("BYE", n, to, 2)
                elif method == b"INVITE" and status >= 300:
                    finished += 1
                    failed += n >= warmup
                    reason = first.decode(errors="replace")[8:80]
                    reasons[reason] = reasons.get(reason, 0) + 1
                elif method == b"BYE":
                    finished += 1
                    if n >= warmup:
                        done += status == 200
                        failed += status != 200
    seconds = time.perf_counter() - begin
    print(json.dumps({"calls": done, "failed": failed, "unfinished": calls - done - failed,
                      "refusals": reasons, "seconds": round(seconds, 3), "calls_per_second": round(done / seconds, 1),
                      "invite_out_ms_p50": _pct(delays_in, 0.5), "invite_out_ms_p99": _pct(delays_in, 0.99),
                      "setup_ms_p50": _pct(delays_ok, 0.5), "setup_ms_p99": _pct(delays_ok, 0.99)}))


def _pct(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(int(len(ordered) * share), len(ordered) - 1)] * 1000, 2)


if __name__ == "__main__":
    node_port, uas_port, dids, calls, concurrency, rate, warmup = sys.argv[1:8]
    main(int(node_port), int(uas_port), int(dids), int(calls), int(concurrency), float(rate), int(warmup))
