"""
A WebRTC stack that is not a browser: aiortc (PyPI) calls through a real node over SIP on
a secure WebSocket (tests/media/sip_websocket.py), its audio through the node's WebRTC
gateway (ICE-lite, DTLS-SRTP), out to a carrier's gateway played by baresip on 127.0.0.3,
billed at 0.01 a started minute.

    a correct call: aiortc's 440 Hz reaches the carrier's recording and the carrier's
        1000 Hz reaches aiortc; our Contact says transport=ws (RFC 7118 §5.2); the CDR bills it.
    several fingerprints, the weak (sha-256) one right and the strong (sha-512) one wrong:
        RFC 8122 §5 checks the strongest only, so the call fails as with a wrong one.
    a wrong fingerprint: DTLS fails at once; aiortc gets a BYE saying why within seconds
        (not the minute of the no-media watchdog), so does the carrier, and the CDR says
        failed with no talk and no charge.
    a client that never starts ICE: the node's set-up timeout (media.webrtc_setup_timeout_ms,
        3 s here) ends the call the same way, naming ICE.

aiortc runs in its own asyncio loop on a worker thread; the node and baresip are child
processes. aiortc is kept to loopback: no STUN server, and its host candidates are
127.0.0.1 only (aioice would otherwise offer every interface but loopback).
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

import numpy
import pytest
import pytest_twisted
from twisted.internet import defer, reactor, threads
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue

from tests.billing.world import price_north_america
from tests.calls.test_phones_call import DOMAIN, EXTRA, NAMESPACE, PASSWORD, Baresip, frequency, sip_ports, until
from tests.media.sip_websocket import WebSocketPhone
from tests.node import Node, node_for_module
from tests.pg import reachable_tmpdir
from tests.store.builders import build_tree
from wevoip.routing.dialplan import denormalise
from wevoip.store import carriers
from wevoip.store.database import Database

pytestmark = pytest.mark.slow

NUMBER = "2125550100"        # +1 212 555 0100, out through the carrier
SETUP_MS = 3000


def _loopback_only():
    import aioice.ice
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


class Running:
    def __init__(self, node, health, database, folder, carrier):
        self.node, self.health, self.database, self.folder, self.carrier = node, health, database, folder, carrier
        self.wss = Node.sip_port(health, "wss")

    async def last_cdr(self):
        return (await self.database.fetch("select * from cdrs order by id desc limit 1"))[0]

    async def idle(self):
        async def none_active():
            return not await self.database.fetch("select 1 from active_calls")
        await until(none_active, lambda: f"the call to end\n{self.node.output.text[-3000:]}")


async def _start():
    folder = reachable_tmpdir("wevoip-test-aiortc-")
    node = Node(folder, sip=True)
    node.config_path.write_text(node.config_path.read_text()
                                + EXTRA.replace("46000", "47400").replace("46199", "47599")
                                .replace("[media]\n", f"[media]\nwebrtc_setup_timeout_ms = {SETUP_MS}\n"))
    health = await node.start_ready()
    database = Database(reactor, node.dsn, size=2)
    await database.connect()
    tree = await build_tree(database, NAMESPACE)
    port = sip_ports("127.0.0.3")

    async def more(tx):
        isp_id = tree.isp["id"]
        await price_north_america(tx, isp_id, tree)
        await carriers.update_gateway(tx, isp_id, tree.gateway["id"], host="127.0.0.3", port=port,
                                      strip_digits=1, prefix="00")
    await database.transact(more)
    for hertz, rate in ((1000, 8000), (440, 48000)):
        await getProcessOutputAndValue("/usr/bin/sox", ["-n", "-r", str(rate), "-c", "1", "-b", "16",
                                                        str(folder / f"{hertz}.wav"), "synth", "120", "sine",
                                                        str(hertz), "vol", "0.5"])
    digits = denormalise("+12125550100", 1, "00")
    carrier = Baresip(folder / "carrier", digits, f"<sip:{digits}@127.0.0.3>;regint=0;answermode=auto;"
                                                  "audio_codecs=PCMU", source=f"aufile,{folder / '1000.wav'}",
                      host="127.0.0.3", sip_port=port)
    carrier.start()
    return Running(node, health, database, folder, carrier)


@pytest.fixture(scope="module")
def running():
    made = node_for_module(_start)
    state = next(made)
    yield state
    pytest_twisted.blockon(defer.ensureDeferred(state.carrier.stop()))
    next(made, None)


def _dominant(samples: numpy.ndarray, rate: int) -> float:
    spectrum = numpy.abs(numpy.fft.rfft(samples * numpy.hanning(len(samples))))
    return float(numpy.fft.rfftfreq(len(samples), 1 / rate)[int(numpy.argmax(spectrum[1:])) + 1])


def _fingerprints(sdp: str, lines: list[str]) -> str:
    """The offer with its a=fingerprint lines replaced by `lines` (at the first one's place)."""
    out, placed = [], False
    for line in sdp.split("\r\n"):
        if line.startswith("a=fingerprint:"):
            if not placed:
                out += [f"a=fingerprint:{text}" for text in lines]
                placed = True
            continue
        out.append(line)
    return "\r\n".join(out)


async def _call(running: Running, tone: Path, change=None, talk: float = 3.0, ice: bool = True) -> dict:
    """One call from aiortc: returns what it saw (the 2xx, the node's BYE or ours, what it heard).
    `ice` False: the answer is never given to aiortc, so it never checks the node's candidate."""
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.contrib.media import MediaPlayer
    _loopback_only()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    player = MediaPlayer(str(tone))
    pc.addTrack(player.audio)
    heard: list[numpy.ndarray] = []
    rates: list[int] = []

    async def listen(track):
        while True:
            try:
                frame = await track.recv()
            except Exception:
                return
            heard.append(frame.to_ndarray().astype(float).reshape(-1, len(frame.layout.channels))[:, 0])
            rates.append(frame.sample_rate)
    listening = []
    pc.on("track", lambda track: listening.append(asyncio.ensure_future(listen(track))))
    await pc.setLocalDescription(await pc.createOffer())
    offer = pc.localDescription.sdp
    dtls = pc.getTransceivers()[0].sender.transport
    ours = {f.algorithm: f.value for f in dtls.getLocalParameters().fingerprints}
    if change is not None:
        offer = change(offer, ours)
    phone = WebSocketPhone("127.0.0.1", running.wss, "alice", DOMAIN, PASSWORD)
    await phone.connect()
    seen = {"subprotocol": phone.subprotocol, "offered": offer}
    try:
        dialog = await phone.invite(NUMBER, offer)
        seen["ok"], seen["answered_at"] = dialog.ok, time.monotonic()
        if ice:
            await pc.setRemoteDescription(RTCSessionDescription(dialog.ok.body, "answer"))
        try:
            seen["their_bye"] = await dialog.their_bye(timeout=talk)
            seen["bye_after"] = time.monotonic() - seen["answered_at"]
        except asyncio.TimeoutError:
            seen["ice"], seen["dtls"] = pc.iceConnectionState, dtls.state
            seen["our_bye"] = await dialog.bye()
    finally:
        await pc.close()
        player.audio.stop()
        for task in listening:
            task.cancel()
        await phone.close()
    if heard:
        samples = numpy.concatenate(heard[len(heard) // 3:])
        seen["heard_hz"] = _dominant(samples, rates[-1])
        seen["heard_frames"] = len(heard)
    return seen


def call(running, change=None, talk=3.0, ice=True):
    return threads.deferToThread(lambda: asyncio.run(_call(running, running.folder / "440.wav", change, talk, ice)))


@pytest_twisted.ensureDeferred
async def test_aiortc_calls_out_and_audio_goes_both_ways(running):
    recordings = len(running.carrier.recordings())
    seen = await call(running, talk=4.0)
    assert seen["subprotocol"] == "sip"
    assert seen["offered"].count("a=fingerprint:") == 3       # aiortc offers sha-256, -384 and -512
    contact = seen["ok"].get("Contact")
    assert contact.endswith(";transport=ws>"), contact            # RFC 7118 §5.2, though we speak WSS
    assert "their_bye" not in seen, seen.get("their_bye") and seen["their_bye"].first
    assert (seen["ice"], seen["dtls"]) == ("completed", "connected")
    assert seen["our_bye"].status == 200
    assert seen["heard_frames"] > 100 and abs(seen["heard_hz"] - 1000) < 30, seen.get("heard_hz")
    await running.idle()
    await until(lambda: defer.succeed(len(running.carrier.recordings()) > recordings), "the carrier's recording")
    await deferLater(reactor, 1, lambda: None)          # baresip closes its file
    assert abs(await frequency(running.carrier.recordings()[-1]) - 440) < 30    # aiortc's tone reached the carrier
    cdr = await running.last_cdr()
    assert (cdr["disposition"], cdr["hangup_by"], cdr["media_flow"]) == ("answered", "caller", "both")
    assert cdr["talk_ms"] >= 3000 and cdr["price"] == Decimal("0.01")


async def _refused_at_once(running, seen, cause="DTLS failed: peer certificate does not match a=fingerprint",
                           within=(0, 5)):
    """The call ended by the node soon after its answer (`within` seconds), `cause` said in its BYE."""
    bye = seen.get("their_bye")
    assert bye is not None, f"no BYE from the node\n{running.node.output.text[-3000:]}"
    assert within[0] <= seen["bye_after"] < within[1], seen["bye_after"]
    reason = bye.get("Reason")
    assert reason.startswith("SIP ;cause=503 ;text=") and cause in reason, reason
    await running.idle()

    async def carrier_hung_up():
        last = running.carrier.output.split("Call established")[-1]
        return "BYE sip:" in last and "Reason: SIP ;cause=503" in last and "session closed" in last
    await until(carrier_hung_up, lambda: f"a BYE with its Reason at the carrier\n{running.carrier.output[-3000:]}")
    cdr = await running.last_cdr()
    assert (cdr["disposition"], cdr["hangup_by"], cdr["sip_code"]) == ("failed", "system", 200)
    assert (cdr["talk_ms"], cdr["billable_seconds"], cdr["price"], cdr["ledger_id"]) == (0, 0, 0, None)
    assert f"media of the browser on leg a not set up: {cause}" in running.node.output.text


@pytest_twisted.ensureDeferred
async def test_a_weak_fingerprint_that_matches_does_not_save_a_strong_one_that_does_not(running):
    def weak_right_strong_wrong(sdp, ours):
        wrong = ":".join(["5A"] * 64)
        return _fingerprints(sdp, [f"sha-256 {ours['sha-256']}", f"sha-512 {wrong}"])
    seen = await call(running, weak_right_strong_wrong, talk=15.0)
    assert "a=fingerprint:sha-512 5A:5A" in seen["offered"]
    await _refused_at_once(running, seen)


@pytest_twisted.ensureDeferred
async def test_a_wrong_fingerprint_ends_the_call_at_once_and_bills_nothing(running):
    def wrong(sdp, ours):
        return _fingerprints(sdp, ["sha-256 " + ":".join(["A5"] * 32)])
    seen = await call(running, wrong, talk=15.0)
    await _refused_at_once(running, seen)


@pytest_twisted.ensureDeferred
async def test_a_client_that_never_starts_ice_is_ended_at_the_set_up_timeout(running):
    seen = await call(running, talk=15.0, ice=False)
    await _refused_at_once(running, seen, cause=f"ICE did not complete within {SETUP_MS // 1000} s",
                           within=(SETUP_MS / 1000 - 0.5, SETUP_MS / 1000 + 2))
