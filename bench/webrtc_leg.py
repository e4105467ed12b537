"""
CPU per packet of a `BrowserLeg`, without sockets: what one browser call costs the gateway.

A leg is connected in memory (ICE check, DTLS handshake) to the browser the tests use
(tests/media/webrtc_support.py), made of the same pieces. The browser's SRTP packets are protected beforehand, so only the leg's work is
timed: browser -> phone (demux, source check, SRTP unprotect, payload type map or Opus
decode + resample + G.711 encode) and phone -> browser (map or G.711 decode + resample +
Opus encode, SRTP protect). From the time per packet it derives how many calls one core
carries at 50 packets/s each way.

    .venv/bin/python -m bench.webrtc_leg --packets 20000     (from the checkout's root)

The full gateway bench (browsers through the B2BUA and the relay) needs the calls issue.
"""

import argparse
import struct
import time
from fractions import Fraction

import av
from twisted.internet.task import Clock

from tests.media.webrtc_support import BROWSER_ADDRESS, FarBrowser, PlainRecorder
from wevoip.media.sdp import Codec
from wevoip.media.webrtc.dtls import Certificate
from wevoip.media.webrtc.leg import BrowserLeg
from wevoip.media.webrtc.srtp import SrtpSession
from wevoip.media.webrtc.translate import BrowserTransport, CodecPlan

def connected(transcode: bool):
    clock = Clock()
    node, browser_certificate = Certificate.generate(), Certificate.generate()
    plain = PlainRecorder()
    far = FarBrowser(clock, browser_certificate, node.fingerprint, "benU", "bench-password-bench-pw1",
                     remote_ufrag="brws")
    leg = BrowserLeg(clock, node, "benU", "bench-password-bench-pw1", plain, far.network)
    far.leg = leg
    transport = BrowserTransport("brws", "browser-password-brw-pw1", (browser_certificate.fingerprint,),
                                 "actpass", ())
    browser_codec = Codec(111, "opus", 48000, 2) if transcode else Codec(0, "PCMU", 8000)
    leg.configure(transport, True, CodecPlan(browser_codec, Codec(0, "PCMU", 8000), None, None))
    far.check()
    assert far.keys is not None, "no DTLS"
    return leg, far, plain


def browser_payloads(transcode: bool, count: int) -> list[bytes]:
    if not transcode:
        return [b"\xd5" * 160] * count
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = 48000, "mono", "s16"
    encoder.time_base = Fraction(1, 48000)
    tone = b"".join(struct.pack("<h", int(8000 * ((i * 440 * 2 // 48000) % 2 * 2 - 1))) for i in range(960))
    payloads = []
    for index in range(count):
        frame = av.AudioFrame(format="s16", layout="mono", samples=960)
        frame.sample_rate, frame.pts = 48000, index * 960
        frame.planes[0].update(tone)
        payloads.extend(bytes(p) for p in encoder.encode(frame))
    return payloads


def measure(transcode: bool, packets: int) -> tuple[float, float]:
    leg, far, plain = connected(transcode)
    sender = SrtpSession(far.keys)
    payload_type = 111 if transcode else 0
    incoming = [sender.protect(struct.pack("!BBHII", 0x80, payload_type, n & 0xFFFF, n * 960, 0x1234) + p)
                for n, p in enumerate(browser_payloads(transcode, packets))]
    started = time.process_time()
    for datagram in incoming:
        leg.datagram_received(datagram, BROWSER_ADDRESS)
    inbound = (time.process_time() - started) / len(incoming)
    outgoing = [struct.pack("!BBHII", 0x80, 0, n & 0xFFFF, n * 160, 0x5678) + b"\xd5" * 160 for n in range(packets)]
    started = time.process_time()
    for packet in outgoing:
        leg.rtp_to_browser(packet)
    outbound = (time.process_time() - started) / len(outgoing)
    assert len(plain.rtp) >= len(incoming) * 0.9, "packets lost in the leg"
    return inbound, outbound


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packets", type=int, default=20000)
    arguments = parser.parse_args()
    for name, transcode in (("G.711 pass-through", False), ("Opus <-> G.711 transcoded", True)):
        inbound, outbound = measure(transcode, arguments.packets)
        per_call = 50 * (inbound + outbound)
        print(f"{name}: browser->phone {inbound * 1e6:.1f} us/packet, phone->browser "
              f"{outbound * 1e6:.1f} us/packet, {per_call * 100:.2f}% of a core per call, "
              f"about {int(1 / per_call)} calls per core")


if __name__ == "__main__":
    main()
