"""
Real Chromium against a `BrowserLeg`: ICE-lite, DTLS-SRTP (both roles), SRTP, the SDP
translation and the Opus transcoder interoperate with the browser the phone console will
run in.

No SIP yet (that needs the B2BUA): a page on a loopback web server exchanges SDP with the
test over HTTP. Its microphone is Chromium's fake capture device playing a 440 Hz tone made
by sox. A "phone" pumps G.711 into the leg every 20 ms while the leg hands the browser's
audio over as plain RTP. A test passes when the browser's own statistics show our packets
arriving and its packets leaving, the leg's counters agree, and sox hears 440 Hz in what
reached the phone side.

    phone calls browser: our offer from plain_offer_to_browser, Chromium answers (it is
                         the DTLS client, we are the server)
    browser calls phone: Chromium offers, we answer with plain_answer_to_browser (we are
                         the DTLS client); once with G.711 and once with the offer's
                         G.711 removed, so the call is Opus on the browser side, transcoded
"""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import defer, protocol, reactor
from twisted.internet.task import LoopingCall, deferLater
from twisted.web.resource import Resource
from twisted.web.server import Site

from tests.media.webrtc_support import PHONE_ANSWER, PHONE_OFFER, PlainRecorder, replace
from wevoip.media.sdp import SessionDescription
from wevoip.media.webrtc.dtls import Certificate
from wevoip.media.webrtc.ice import new_credentials
from wevoip.media.webrtc.leg import BrowserLeg, BrowserLegProtocol, rtp_payload
from wevoip.media.webrtc.translate import (OriginCounter, PlainLocal, WebRtcLocal,
                                           browser_answer_to_plain, browser_offer_to_plain,
                                           plain_answer_to_browser, plain_offer_to_browser)

CHROMIUM = shutil.which("chromium")
PLAIN = PlainLocal("127.0.0.1", 24000)
PHONE_PCMU_ANSWER = replace(replace(replace(PHONE_ANSWER, "192.0.2.20", "127.0.0.1"),
                                    "RTP/AVP 8 126", "RTP/AVP 0 126"), "rtpmap:8 PCMA", "rtpmap:0 PCMU")

PAGE = b"""<!doctype html><meta charset="utf-8"><title>leg</title><script>
async function gathered(pc) {
  await new Promise(done => {
    if (pc.iceGatheringState === 'complete') return done();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && done();
  });
}
async function run() {
  const pc = new RTCPeerConnection();
  const stream = await navigator.mediaDevices.getUserMedia({audio: true});
  if (location.hash === '#answer') {
    await pc.setRemoteDescription({type: 'offer', sdp: await (await fetch('/sdp')).text()});
    stream.getTracks().forEach(track => pc.addTrack(track, stream));
    await pc.setLocalDescription(await pc.createAnswer());
    await gathered(pc);
    await fetch('/sdp', {method: 'POST', body: pc.localDescription.sdp});
  } else {
    stream.getTracks().forEach(track => pc.addTrack(track, stream));
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const answer = await fetch('/sdp', {method: 'POST', body: pc.localDescription.sdp});
    await pc.setRemoteDescription({type: 'answer', sdp: await answer.text()});
  }
  const report = {inbound: 0, outbound: 0};
  for (const until = Date.now() + 20000; Date.now() < until;) {
    (await pc.getStats()).forEach(s => {
      if (s.type === 'inbound-rtp' && s.kind === 'audio') report.inbound = s.packetsReceived;
      if (s.type === 'outbound-rtp' && s.kind === 'audio') report.outbound = s.packetsSent;
      if (s.type === 'transport') { report.dtls = s.dtlsState; report.cipher = s.srtpCipher; }
    });
    report.ice = pc.iceConnectionState;
    if (report.inbound >= 100 && report.outbound >= 100) break;
    await new Promise(r => setTimeout(r, 200));
  }
  await fetch('/report', {method: 'POST', body: JSON.stringify(report)});
}
run().catch(e => fetch('/report', {method: 'POST', body: JSON.stringify({error: String(e)})}));
</script>"""


class Page(Resource):
    isLeaf = True

    def __init__(self, get=lambda: PAGE, post=None):
        super().__init__()
        self.get, self.post = get, post

    def render_GET(self, request):
        return self.get()

    def render_POST(self, request):
        return self.post(request.content.read()) or b""


class Ended(protocol.ProcessProtocol):
    def __init__(self):
        self.ended = defer.Deferred()

    def processEnded(self, reason):
        self.ended.callback(None)


def rough_frequency(raw: bytes, encoding: str = "u-law") -> int:
    report = subprocess.run(["sox", "-t", "raw", "-r", "8000", "-e", encoding, "-c", "1", "-", "-n", "stat"],
                            input=raw, capture_output=True, check=True).stderr.decode()
    return int(re.search(r"Rough\s+frequency:\s+(\d+)", report).group(1))


class Call:
    """A leg on a loopback port, the page's web server, and a Chromium pointed at it."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.certificate = Certificate.generate()
        self.ufrag, self.pwd = new_credentials()
        self.phone = PlainRecorder()
        self.leg_protocol = BrowserLegProtocol(
            lambda send: BrowserLeg(reactor, self.certificate, self.ufrag, self.pwd, self.phone, send))
        self.udp = reactor.listenUDP(0, self.leg_protocol, interface="127.0.0.1")
        self.local = WebRtcLocal("127.0.0.1", self.udp.getHost().port, self.ufrag, self.pwd,
                                 self.certificate.fingerprint)
        self.configured, self.reported = defer.Deferred(), defer.Deferred()
        self.pump = LoopingCall(self.send_voice)
        self.pump.clock = reactor
        self.sequence = 0

    @property
    def leg(self) -> BrowserLeg:
        return self.leg_protocol.leg

    def send_voice(self):
        """A phone's 20 ms of PCMU (a constant level) as plain RTP into the leg."""
        self.sequence += 1
        header = bytes([0x80, 0]) + self.sequence.to_bytes(2, "big") + \
            (self.sequence * 160).to_bytes(4, "big") + b"WVIP"
        self.leg.rtp_to_browser(header + b"\x7f" * 160)

    def configure(self, answered):
        self.leg.configure(answered.transport, answered.dtls_client, answered.plan)
        self.configured.callback(answered)

    async def run(self, fragment: str, sdp_get, sdp_post):
        tone = self.tmp_path / "tone.wav"
        subprocess.run(["sox", "-n", "-r", "48000", "-c", "1", "-b", "16", str(tone),
                        "synth", "10", "sine", "440", "vol", "0.5"], check=True)
        root = Resource()
        root.putChild(b"", Page())
        root.putChild(b"sdp", Page(get=sdp_get, post=sdp_post))
        root.putChild(b"report", Page(post=lambda body: self.reported.callback(json.loads(body))))
        web = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
        browser = Ended()
        process = reactor.spawnProcess(browser, CHROMIUM, [
            CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
            f"--user-data-dir={self.tmp_path / 'profile'}", "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={tone}",
            "--allow-loopback-in-peer-connection",
            f"http://127.0.0.1:{web.getHost().port}/{fragment}"],
            env={"PATH": "/usr/bin:/bin", "HOME": str(self.tmp_path)})
        try:
            answered = await self.configured.addTimeout(30, reactor)
            self.pump.start(0.02)
            report = await self.reported.addTimeout(40, reactor)
            await self.counted(min(report.get("outbound", 0), 100))
            return answered, report
        finally:
            if self.pump.running:
                self.pump.stop()
            self.stats = self.leg.stats()
            self.leg.close()
            process.signalProcess("KILL")
            await browser.ended
            await self.udp.stopListening()
            await web.stopListening()

    async def counted(self, sent: int) -> None:
        """The page reports what it sent as it stops, while its last packets may still be on
        their way to the leg: give them a moment to arrive before the leg's counters are read."""
        for _ in range(50):
            if self.leg.stats()["rtp"]["from_browser"] >= sent:
                return
            await deferLater(reactor, 0.02, lambda: None)

    def check(self, report, dtls_role):
        assert "error" not in report, report
        assert report["ice"] in ("connected", "completed") and report["dtls"] == "connected", report
        assert report["inbound"] >= 100 and report["outbound"] >= 100, report
        stats = self.stats
        assert {key: stats["dtls"][key] for key in ("state", "role", "failure", "handshake_done")} == \
            {"state": "connected", "role": dtls_role, "failure": None, "handshake_done": True}
        assert stats["dtls"]["cipher"] and stats["ice"]["state"] == "nominated"
        assert stats["rtp"]["from_browser"] >= 100 and stats["rtp"]["to_browser"] >= 100
        assert stats["ice"]["selected"] is not None and stats["dtls"]["failure"] is None
        assert stats["srtp"]["received"]["packets"] >= 100 and stats["srtp"]["sent"]["packets"] >= 100
        voice = [packet for packet in self.phone.rtp if packet[1] & 0x7F == 0]
        # A transcoded stream starts a frame or two late (resampler delay and FIFO), so the
        # plain side may be a packet or so behind the browser's count when the page stops.
        assert len(voice) >= 90
        heard = rough_frequency(b"".join(rtp_payload(packet) for packet in voice[25:]))
        reference = rough_frequency(subprocess.run(
            ["sox", "-n", "-r", "8000", "-e", "u-law", "-t", "raw", "-", "synth", "2", "sine", "440"],
            capture_output=True, check=True).stdout)
        assert abs(heard - reference) <= 10, (heard, reference)


pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="bin/test installs Debian's chromium")


@pytest_twisted.ensureDeferred
async def test_phone_calls_chromium(tmp_path):
    call = Call(tmp_path)
    offer, offered = plain_offer_to_browser(replace(PHONE_OFFER, "192.0.2.20", "127.0.0.1"),
                                            call.local, OriginCounter())
    answered, report = await call.run(
        "#answer", lambda: offer,
        lambda sdp: call.configure(browser_answer_to_plain(sdp, offered, PLAIN, OriginCounter())))
    assert not answered.dtls_client and answered.plan.plain.name == "PCMU"
    assert report["cipher"]
    call.check(report, dtls_role="server")


def without_g711(offer: bytes) -> bytes:
    """Chromium's offer as a browser with Opus alone would make it."""
    description = SessionDescription.parse(offer)
    audio = description.media[0]
    audio.formats = [f for f in audio.formats if f not in ("0", "8")]
    return description.serialise()


@pytest.mark.parametrize("opus_only", [False, True], ids=["g711", "opus-transcoded"])
@pytest_twisted.ensureDeferred
async def test_chromium_calls_phone(tmp_path, opus_only):
    call = Call(tmp_path)

    def answer(sdp):
        _, offered = browser_offer_to_plain(without_g711(sdp) if opus_only else sdp, PLAIN, OriginCounter())
        answered = plain_answer_to_browser(PHONE_PCMU_ANSWER, offered, call.local, OriginCounter())
        call.configure(answered)
        return answered.sdp

    answered, report = await call.run("#offer", lambda: b"", answer)
    assert answered.dtls_client and answered.plan.transcode is opus_only
    assert answered.plan.browser.name == ("opus" if opus_only else "PCMU")
    call.check(report, dtls_role="client")
