"""
The edge proxy's cost per message (sip/edge.py): how many dialog-creating INVITEs from
another node it checks (flow token, source), rewrites (Routes, Via, two Record-Routes) and
forwards over a phone's connection per second, and how many responses it takes back, on
one core with in-memory flows. No sockets: this is the proxy's own CPU, the part a real
node adds to the kernel's.

    .venv/bin/python bench/edge.py [--messages 20000]
"""

from __future__ import annotations

import argparse
import json
import time

from twisted.internet.task import Clock

from wevoip.sip.core import SipCore
from wevoip.sip.edge import EdgeProxy, FlowRef, mint
from wevoip.sip.flow import Flow, FlowTable
from wevoip.sip.message import parse

SECRET = b"b" * 32
PHONE = FlowRef("node-a", "tcp", "192.0.2.7", 49152)
SDP = ("v=0\r\no=b 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n"
       "m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n")


def invite(number: int, route: str) -> bytes:
    return (f"INVITE sip:bob@192.0.2.7:5060;transport=tcp SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bKbench{number};rport\r\nRoute: {route}\r\n"
            f"From: <sip:alice@acme.example>;tag=b{number}\r\nTo: <sip:101@acme.example>\r\n"
            f"Call-ID: bench-{number}@127.0.0.2\r\nCSeq: 1 INVITE\r\nContact: <sip:b2bua@127.0.0.2:5070>\r\n"
            f"Max-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {len(SDP)}\r\n\r\n{SDP}").encode()


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    arguments.add_argument("--messages", type=int, default=20000)
    count = arguments.parse_args().messages
    flows = FlowTable()
    back = []
    flows.add_datagram_socket(4, ("127.0.0.1", 5060), lambda data, address: back.append(data))
    core = SipCore(Clock(), flows)
    forwarded = []
    phone = Flow("tcp", (PHONE.host, PHONE.port), ("127.0.0.1", 5061), forwarded.append)
    flows.add(phone)
    EdgeProxy(core, "node-a").start(SECRET, ("127.0.0.1", 5060), {}.get, lambda: frozenset({"127.0.0.2"}))
    node_b = Flow("udp", ("127.0.0.2", 5070), ("127.0.0.1", 5060), lambda data: None)
    route = f"<sip:{mint(SECRET, PHONE)}@127.0.0.1:5060;lr>"
    requests = [invite(number, route) for number in range(count)]

    started = time.perf_counter()
    for data in requests:
        core.receive(data, node_b)
    invites = time.perf_counter() - started
    assert len(forwarded) == count, core.stats

    responses = []
    for data in forwarded:
        request = parse(data)
        lines = "".join(f"{name}: {value}\r\n" for name, value in request.headers
                        if name in ("Via", "From", "Call-ID", "CSeq", "Record-Route"))
        responses.append(f"SIP/2.0 180 Ringing\r\n{lines}To: {request.headers.get('To')};tag=p\r\n"
                         f"Content-Length: 0\r\n\r\n".encode())
    started = time.perf_counter()
    for data in responses:
        core.receive(data, phone)
    answers = time.perf_counter() - started
    assert len(back) == count, core.stats
    print(json.dumps({"messages": count, "invites_per_second": round(count / invites),
                      "us_per_invite": round(invites / count * 1e6, 1),
                      "responses_per_second": round(count / answers),
                      "us_per_response": round(answers / count * 1e6, 1)}))


if __name__ == "__main__":
    main()
