"""
A browser leg end to end in memory: ICE check, DTLS handshake, SRTP both ways, payload
types mapped to the plain leg's, Opus transcoded, and nothing believed before ICE.

The browser is played by this package's own pieces (a STUN check as RFC 8445 §7.1 builds
it, a DTLS endpoint with its own certificate, an SRTP session), keyed by the SDP the
translation step produced.
"""

import struct
from fractions import Fraction

import av
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from twisted.internet.task import Clock

from tests.media.webrtc_support import (BROWSER_ADDRESS as BROWSER, CHROMIUM_OFFER, PHONE_ANSWER, PLAIN,
                                        FarBrowser, PlainRecorder, replace)
from wevoip.media.webrtc import stun
from wevoip.media.webrtc.dtls import Certificate, DtlsState
from wevoip.media.webrtc.leg import BrowserLeg, rtp_payload
from wevoip.media.webrtc.srtp import SrtpSession
from wevoip.media.webrtc.translate import (OriginCounter, WebRtcLocal, browser_offer_to_plain,
                                           plain_answer_to_browser)

STRANGER = ("192.0.2.99", 4000)


@pytest.fixture(scope="module")
def certificates():
    return Certificate.generate("browser"), Certificate.generate("wevoip")


def rtp(payload_type, sequence, payload, ssrc=0x11223344, marker=False):
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | payload_type, sequence,
                       sequence * 160, ssrc) + payload


class Failures(list):
    """A leg's `on_failed`: (reason, keyed) as told."""

    def __call__(self, reason, keyed):
        self.append((reason, keyed))


class TolerantBrowser(FarBrowser):
    """A far browser that takes a failed handshake (our alert) without complaint."""

    def failed(self, reason):
        self.failure = reason


class MuteBrowser(FarBrowser):
    """A far browser that answers ICE but never DTLS (its datagrams are lost)."""

    def network(self, datagram, address):
        if not 20 <= datagram[0] <= 63:
            self.inbox.append(datagram)


def connected_leg(certificates, offer=CHROMIUM_OFFER, answer=PHONE_ANSWER, fingerprint=None, far=FarBrowser,
                  **options):
    """`fingerprint`: the a=fingerprint value the offer carries instead of the browser's own."""
    browser_certificate, node = certificates
    clock = Clock()
    offer = offer.replace(offer.split(b"a=fingerprint:")[1].split(b"\r\n")[0],
                          (fingerprint or str(browser_certificate.fingerprint)).encode())
    local = WebRtcLocal("203.0.113.5", 31000, "wvU1", "wevoip-ice-password-0001", node.fingerprint)
    _, offered = browser_offer_to_plain(offer, PLAIN, OriginCounter())
    answered = plain_answer_to_browser(answer, offered, local, OriginCounter())
    plain = PlainRecorder()
    browser = far(clock, browser_certificate, node.fingerprint, local.ice_ufrag, local.ice_pwd)
    leg = BrowserLeg(clock, node, local.ice_ufrag, local.ice_pwd, plain, browser.network, **options)
    browser.leg = leg
    leg.configure(answered.transport, answered.dtls_client, answered.plan)
    return leg, browser, plain, clock


PHONE_ANSWER_101 = replace(replace(replace(PHONE_ANSWER, "RTP/AVP 8 126", "RTP/AVP 8 101"),
                                   "rtpmap:126", "rtpmap:101"), "fmtp:126", "fmtp:101")


def test_check_then_handshake_then_srtp_both_ways_with_payload_types_mapped(certificates):
    leg, browser, plain, clock = connected_leg(certificates, answer=PHONE_ANSWER_101)
    # Our DTLS client waits for ICE to tell it where the browser is.
    assert leg.dtls.state is DtlsState.NEW and browser.inbox == []
    browser.check()
    reply = stun.parse(browser.inbox[0])
    assert reply.cls == stun.SUCCESS and leg.ice.selected == BROWSER
    # ICE made the address valid, so our DTLS client started and finished with the browser.
    assert leg.dtls.state is DtlsState.CONNECTED and browser.keys is not None
    sender = SrtpSession(browser.keys)
    voice = rtp(8, 1, b"\xd5" * 160, marker=True)
    leg.datagram_received(sender.protect(voice), BROWSER)
    leg.datagram_received(sender.protect(rtp(126, 2, b"\x05\x0a\x00\xa0")), BROWSER)
    assert plain.rtp == [voice, rtp(101, 2, b"\x05\x0a\x00\xa0")]
    report = bytes.fromhex("80c80006") + (0x11223344).to_bytes(4, "big") + bytes(20)
    leg.datagram_received(sender.protect_rtcp(report), BROWSER)
    assert plain.rtcp == [report]
    # The plain side's packets reach the browser protected, DTMF renumbered to its 126.
    leg.rtp_to_browser(rtp(8, 7, b"\x55" * 160))
    leg.rtp_to_browser(rtp(101, 8, b"\x01\x8a\x03\x20", marker=True))
    leg.rtcp_to_browser(report)
    receiver = SrtpSession(browser.keys)
    inbox = browser.inbox[1:]
    assert receiver.unprotect(inbox[0]) == rtp(8, 7, b"\x55" * 160)
    assert receiver.unprotect(inbox[1]) == rtp(126, 8, b"\x01\x8a\x03\x20", marker=True)
    assert receiver.unprotect_rtcp(inbox[2]) == report
    stats = leg.stats()
    assert stats["dtls"] == {"state": "connected", "role": "client", "failure": None, "handshake_done": True,
                             "cipher": leg.dtls._connection.get_cipher_name()}
    assert stats["dtls"]["cipher"].startswith("ECDHE-")
    assert stats["srtp"]["received"]["packets"] == 3 and stats["srtp"]["sent"]["packets"] == 3
    # RTP alone is what one-way media is judged by: two packets each way, the RTCP aside.
    assert stats["rtp"] == {"from_browser": 2, "to_browser": 2}
    assert stats["ice"]["selected"] == BROWSER and not stats["ice"]["consent_expired"]
    assert stats["ice"]["state"] == "nominated" and stats["ice"]["last_check_ms"] == 0


def test_nothing_is_believed_from_an_address_ice_has_not_validated(certificates):
    leg, browser, plain, _ = connected_leg(certificates)
    browser.check()
    sender = SrtpSession(browser.keys)
    leg.datagram_received(sender.protect(rtp(8, 1, b"\xd5" * 160)), STRANGER)
    leg.datagram_received(b"\x16\xfe\xfd" + bytes(40), STRANGER)
    assert plain.rtp == [] and leg.dropped.unvalidated == 2


def test_media_before_the_handshake_and_junk_are_counted_not_passed(certificates):
    leg, browser, plain, _ = connected_leg(certificates)
    leg.rtp_to_browser(rtp(8, 1, b"\x55" * 160))
    leg.datagram_received(b"\xff" * 30, BROWSER)
    assert leg.dropped.not_keyed == 1 and leg.dropped.junk == 1 and browser.inbox == []
    stats = leg.stats()
    assert stats["ice"]["state"] == "new" and stats["dtls"]["handshake_done"] is False
    assert stats["rtp"] == {"from_browser": 0, "to_browser": 0} and stats["srtp"]["profile"] is None


def test_tampered_srtp_and_unknown_payload_types_are_dropped(certificates):
    leg, browser, plain, _ = connected_leg(certificates)
    browser.check()
    sender = SrtpSession(browser.keys)
    damaged = bytearray(sender.protect(rtp(8, 1, b"\xd5" * 160)))
    damaged[20] ^= 1
    leg.datagram_received(bytes(damaged), BROWSER)
    leg.datagram_received(sender.protect(rtp(111, 2, b"\x00" * 40)), BROWSER)
    leg.rtp_to_browser(rtp(18, 3, b"\x00" * 20))
    assert plain.rtp == [] and leg.dropped.srtp == 1 and leg.dropped.payload_type == 2


def test_an_opus_only_browser_is_transcoded_both_ways(certificates):
    opus_only = replace(replace(CHROMIUM_OFFER, "111 63 9 0 8 13 110 126", "111 110"),
                        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n", "")
    pcmu = replace(replace(PHONE_ANSWER, "RTP/AVP 8 126", "RTP/AVP 0"), "a=rtpmap:8 PCMA", "a=rtpmap:0 PCMU")
    leg, browser, plain, _ = connected_leg(certificates, offer=opus_only, answer=pcmu)
    browser.check()
    sender, receiver = SrtpSession(browser.keys), SrtpSession(browser.keys)
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = 48000, "mono", "s16"
    encoder.time_base = Fraction(1, 48000)
    sequence = 0
    for index in range(10):
        frame = av.AudioFrame(format="s16", layout="mono", samples=960)
        frame.sample_rate, frame.pts = 48000, index * 960
        frame.planes[0].update(bytes(1920))
        for packet in encoder.encode(frame):
            sequence += 1
            leg.datagram_received(sender.protect(rtp(111, sequence, bytes(packet))), BROWSER)
    assert len(plain.rtp) >= 8
    assert {packet[1] for packet in plain.rtp} == {0} and {len(rtp_payload(p)) for p in plain.rtp} == {160}
    sequences = [struct.unpack_from("!H", packet, 2)[0] for packet in plain.rtp]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(sequences, sequences[1:]))
    for index in range(10):
        leg.rtp_to_browser(rtp(0, index, b"\xff" * 160))
    opus_out = [receiver.unprotect(datagram) for datagram in browser.inbox[1:]]
    assert len(opus_out) >= 8 and {packet[1] & 0x7F for packet in opus_out} == {111}
    stamps = [struct.unpack_from("!I", packet, 4)[0] for packet in opus_out]
    assert all((b - a) & 0xFFFFFFFF == 960 for a, b in zip(stamps, stamps[1:]))


@pytest.mark.parametrize("packet, payload", [
    (rtp(0, 1, b"abc"), b"abc"),
    (bytes([0x82, 0]) + bytes(10) + bytes(8) + b"xy", b"xy"),                   # two CSRCs
    (bytes([0x90, 0]) + bytes(10) + b"\xbe\xde\x00\x01" + bytes(4) + b"z", b"z"),  # extension
    (bytes([0xA0, 0]) + bytes(10) + b"pay\x00\x02", b"pay"),                     # padding
    (b"\x80\x00", None),
    (bytes([0x40]) + bytes(11), None),
    (bytes([0x90, 0]) + bytes(10) + b"\xbe\xde\x00\x09", None),                 # extension too long
])
def test_rtp_payload(packet, payload):
    assert rtp_payload(packet) == payload


def test_sending_stops_when_consent_lapses_and_resumes_with_a_check(certificates):
    leg, browser, plain, clock = connected_leg(certificates)
    browser.check()
    sent = len(browser.inbox)
    clock.advance(31)
    leg.rtp_to_browser(rtp(8, 1, b"\x55" * 160))
    leg.rtcp_to_browser(bytes.fromhex("80c80006") + bytes(24))
    assert len(browser.inbox) == sent and leg.dropped.no_consent == 2
    assert leg.stats()["ice"]["state"] == "consent_lost" and leg.stats()["ice"]["last_check_ms"] == 31000
    browser.check(nominate=False)
    leg.rtp_to_browser(rtp(8, 2, b"\x55" * 160))
    assert len(browser.inbox) == sent + 2     # the check's reply and the packet


def test_a_leg_whose_browser_stops_checking_says_so_once_and_a_closed_leg_says_nothing(certificates):
    leg, browser, plain, clock = connected_leg(certificates)
    lost = []
    leg.ice.on_consent_lost = lambda: lost.append(clock.seconds())
    browser.check()
    clock.advance(20)
    browser.check(nominate=False)
    clock.advance(30)
    assert lost == [50]
    leg.rtp_to_browser(rtp(8, 1, b"\x55" * 160))
    assert leg.dropped.no_consent == 1

    leg, browser, plain, clock = connected_leg(certificates)
    leg.ice.on_consent_lost = lost.append
    browser.check()
    leg.close()
    clock.advance(60)
    assert lost == [50] and clock.getDelayedCalls() == []


def test_a_wrong_fingerprint_fails_the_set_up_at_once_and_says_so_once(certificates):
    failures = Failures()
    stranger = str(Certificate.generate("stranger").fingerprint)
    leg, browser, plain, clock = connected_leg(certificates, fingerprint=stranger, far=TolerantBrowser,
                                               on_failed=failures)
    browser.check()
    assert failures == [("DTLS failed: peer certificate does not match a=fingerprint", False)]
    assert leg.srtp is None and not leg.keyed and browser.keys is None
    assert leg.stats()["dtls"]["failure"] == "peer certificate does not match a=fingerprint"
    clock.advance(60)
    assert len(failures) == 1 and clock.getDelayedCalls() == [], "the set-up timer went with the failure"


@pytest.mark.parametrize("checks, stage", [(False, "ICE"), (True, "DTLS")])
def test_a_set_up_not_done_in_time_fails_naming_what_did_not_complete(certificates, checks, stage):
    failures = Failures()
    leg, browser, plain, clock = connected_leg(certificates, on_failed=failures, setup_timeout=5, far=MuteBrowser)
    if checks:
        browser.check()
        assert leg.ice.selected == BROWSER and leg.dtls.state is DtlsState.CONNECTING
    clock.advance(4.9)
    assert failures == []
    clock.advance(0.2)
    assert failures == [(f"{stage} did not complete within 5 s", False)]


def test_a_leg_that_keys_in_time_has_no_set_up_timer_left_and_later_failures_count_as_lost(certificates):
    failures = Failures()
    leg, browser, plain, clock = connected_leg(certificates, on_failed=failures, setup_timeout=5)
    browser.check()
    assert leg.keyed and leg.dtls.state is DtlsState.CONNECTED
    clock.advance(10)
    assert failures == []
    leg.failed("handshake failed: a later association")
    assert failures == [("DTLS failed: handshake failed: a later association", True)]
    closed, far, _, clock = connected_leg(certificates, on_failed=failures, setup_timeout=5)
    closed.close()
    far.dtls.close()
    clock.advance(10)
    assert len(failures) == 1 and clock.getDelayedCalls() == []


def test_a_client_hello_before_the_answer_is_counted(certificates):
    browser_certificate, node = certificates
    clock = Clock()
    far = FarBrowser(clock, browser_certificate, node.fingerprint, "wvU1", "wevoip-ice-password-0001")
    leg = BrowserLeg(clock, node, "wvU1", "wevoip-ice-password-0001", PlainRecorder(), far.network)
    far.leg = leg
    far.check()
    leg.datagram_received(b"\x16\xfe\xfd" + bytes(60), BROWSER)
    assert leg.dropped.not_keyed == 1 and leg.dtls is None


@pytest.fixture(scope="module")
def running_leg(certificates):
    leg, browser, plain, _ = connected_leg(certificates)
    browser.check()
    return leg


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300), validated=st.booleans())
def test_junk_from_anywhere_never_raises(running_leg, data, validated):
    running_leg.datagram_received(data, BROWSER if validated else STRANGER)
    running_leg.rtp_to_browser(data)
    running_leg.rtcp_to_browser(data)
