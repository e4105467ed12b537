"""
What the WebRTC tests (and bench/webrtc_leg.py) share: SDP samples written for them in the
shapes Chromium and desk phones send (not copied from either) - a Chromium offer with audio
and video in one BUNDLE, a phone's answer, a phone's offer with G.722, G.729 and video, and
a Chromium answer - and the two ends a `BrowserLeg` is tested between: the plain side that
records what it is handed, and a browser made of this package's own pieces.
"""

import os

from wevoip.media.webrtc import stun
from wevoip.media.webrtc.dtls import DtlsEndpoint, Fingerprint
from wevoip.media.webrtc.translate import PlainLocal, WebRtcLocal

BROWSER_ADDRESS = ("192.0.2.10", 51234)

BROWSER_PRINT = ":".join(f"{b:02X}" for b in range(0x40, 0x60))
OUR_PRINT = Fingerprint.parse("sha-256 " + ":".join(f"{b:02X}" for b in range(0xA0, 0xC0)))
LOCAL = WebRtcLocal("203.0.113.5", 31000, "wvU1", "wevoip-ice-password-0001", OUR_PRINT)
PLAIN = PlainLocal("198.51.100.7", 24000)

CHROMIUM_OFFER = f"""v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0 1
a=extmap-allow-mixed
a=msid-semantic: WMS 3c5d8f0e-1b7a-4e4b-9d7e-6a2f9e0c4b11
m=audio 51234 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126
c=IN IP4 192.0.2.10
a=rtcp:9 IN IP4 0.0.0.0
a=candidate:2897334103 1 udp 2122260223 192.0.2.10 51234 typ host generation 0 network-id 1
a=candidate:1203483941 1 udp 2122129151 5e2c7a11-93d4-4b0e-a6f1-2c8d9e7b3a40.local 51235 typ host generation 0 network-id 2
a=candidate:3911852312 1 tcp 1518280447 192.0.2.10 9 typ host tcptype active generation 0 network-id 1
a=ice-ufrag:Xq7T
a=ice-pwd:7Hn2pGk0sYtV9cLmQ4wZrB1e
a=ice-options:trickle
a=fingerprint:sha-256 {BROWSER_PRINT}
a=setup:actpass
a=mid:0
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=sendrecv
a=msid:3c5d8f0e-1b7a-4e4b-9d7e-6a2f9e0c4b11 9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d
a=rtcp-mux
a=rtcp-rsize
a=rtpmap:111 opus/48000/2
a=rtcp-fb:111 transport-cc
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:63 red/48000/2
a=fmtp:63 111/111
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:13 CN/8000
a=rtpmap:110 telephone-event/48000
a=rtpmap:126 telephone-event/8000
a=ssrc:1811539843 cname:q0x3Y2mZ8vTk1bRw
a=ssrc:1811539843 msid:3c5d8f0e-1b7a-4e4b-9d7e-6a2f9e0c4b11 9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d
m=video 9 UDP/TLS/RTP/SAVPF 96 97
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:Xq7T
a=ice-pwd:7Hn2pGk0sYtV9cLmQ4wZrB1e
a=fingerprint:sha-256 {BROWSER_PRINT}
a=setup:actpass
a=mid:1
a=sendrecv
a=rtcp-mux
a=rtcp-rsize
a=rtpmap:96 VP8/90000
a=rtcp-fb:96 goog-remb
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
""".replace("\n", "\r\n").encode()

PHONE_ANSWER = b"""v=0\r
o=yealink 30021 30022 IN IP4 192.0.2.20\r
s=SIP Call\r
c=IN IP4 192.0.2.20\r
t=0 0\r
m=audio 40000 RTP/AVP 8 126\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:126 telephone-event/8000\r
a=fmtp:126 0-15\r
a=ptime:20\r
a=sendrecv\r
"""

PHONE_OFFER = b"""v=0\r
o=baresip 1917 1 IN IP4 192.0.2.20\r
s=-\r
c=IN IP4 192.0.2.20\r
t=0 0\r
m=audio 40000 RTP/AVP 9 0 8 18 101\r
a=rtpmap:9 G722/8000\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:18 G729/8000\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-15\r
a=ptime:20\r
a=sendrecv\r
m=video 40002 RTP/AVP 96\r
a=rtpmap:96 H264/90000\r
"""

CHROMIUM_ANSWER = f"""v=0
o=- 8122739911020384451 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0
a=msid-semantic: WMS
m=audio 9 UDP/TLS/RTP/SAVPF 0 101
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=candidate:611285409 1 udp 2122260223 192.0.2.11 60772 typ host generation 0 network-id 1
a=ice-ufrag:aB3d
a=ice-pwd:Zr8mT1vQx4Yp0LnK6sWc2Hj9
a=ice-options:trickle
a=fingerprint:sha-256 {BROWSER_PRINT}
a=setup:active
a=mid:0
a=sendrecv
a=msid:- 0d4c1f8e-77aa-4c3d-9a51-bb0e2f6c9d13
a=rtcp-mux
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=ssrc:2630448815 cname:Yb7dQ2kW9pLx4Rz1
""".replace("\n", "\r\n").encode()


def replace(sdp: bytes, old: str, new: str) -> bytes:
    assert old.encode() in sdp
    return sdp.replace(old.encode(), new.encode())


class PlainRecorder:
    """The plain side of a leg: keeps what the browser sent, as RTP and RTCP."""

    def __init__(self):
        self.rtp, self.rtcp = [], []

    def rtp_from_browser(self, packet):
        self.rtp.append(packet)

    def rtcp_from_browser(self, packet):
        self.rtcp.append(packet)


class FarBrowser:
    """
    A browser at the far end of an in-memory leg: DTLS server (as answering our actpass
    or offering actpass and getting active lets it be), checks as RFC 8445 §7.1 builds
    them. Pass `network` as the leg's `send` and set `leg`.
    """

    def __init__(self, clock, certificate, node_fingerprint, ufrag, pwd, remote_ufrag="Xq7T"):
        self.ufrag, self.pwd, self.remote_ufrag = ufrag, pwd, remote_ufrag
        self.inbox, self.keys, self.leg = [], None, None
        self.dtls = DtlsEndpoint(clock, certificate, False, [node_fingerprint], self)
        self.dtls.start()

    def send(self, datagram):
        self.leg.datagram_received(datagram, BROWSER_ADDRESS)

    def established(self, keys):
        self.keys = keys

    def failed(self, reason):
        raise AssertionError(reason)

    def check(self, nominate=True, source=BROWSER_ADDRESS):
        self.leg.datagram_received(self.check_request(nominate), source)

    def check_request(self, nominate=True):
        request = stun.Message(stun.BINDING, stun.REQUEST, os.urandom(12))
        request.add(stun.USERNAME, f"{self.ufrag}:{self.remote_ufrag}".encode())
        request.add(stun.PRIORITY, (0x6E7F1EFF).to_bytes(4, "big"))
        request.add(stun.ICE_CONTROLLING, os.urandom(8))
        if nominate:
            request.add(stun.USE_CANDIDATE, b"")
        return request.encode(self.pwd.encode())

    def network(self, datagram, address):
        """The leg's `send`: DTLS goes to this end's endpoint, the rest is kept."""
        assert address == BROWSER_ADDRESS
        if 20 <= datagram[0] <= 63:
            self.dtls.receive(datagram)
        else:
            self.inbox.append(datagram)
