"""WebRTC <-> plain RTP SDP, both ways and through hold, on the samples in webrtc_samples.py."""

import pytest
from hypothesis import given, settings, strategies as st

from wevoip.media.sdp import SdpError, SessionDescription
from tests.media.webrtc_support import (BROWSER_PRINT, CHROMIUM_ANSWER, CHROMIUM_OFFER, LOCAL,
                                        OUR_PRINT, PHONE_ANSWER, PHONE_OFFER, PLAIN, replace)
from wevoip.media.webrtc.dtls import Fingerprint
from wevoip.media.webrtc.translate import (OriginCounter, browser_answer_to_plain, browser_offer_to_plain,
                                           plain_answer_to_browser, plain_offer_to_browser)

WEBRTC_ONLY = ("candidate", "ice-", "fingerprint", "setup", "group", "extmap", "ssrc", "msid",
               "rtcp-fb", "rtcp-mux", "mid", "rtcp-rsize")


def attribute_names(sdp: bytes) -> set[str]:
    return {line[2:].split(":")[0] for line in sdp.decode().split("\r\n") if line.startswith("a=")}


def audio_of(sdp: bytes):
    return next(m for m in SessionDescription.parse(sdp).media if m.media == "audio")


# Browser calls phone.

def test_browser_offer_becomes_a_plain_g711_offer():
    plain_offer, offered = browser_offer_to_plain(CHROMIUM_OFFER, PLAIN, OriginCounter("77"))
    description = SessionDescription.parse(plain_offer)
    assert len(description.media) == 1
    audio = description.media[0]
    assert (audio.proto, audio.port, audio.effective_connection.address) == ("RTP/AVP", 24000, "198.51.100.7")
    assert [(c.payload_type, c.name, c.clock_rate) for c in audio.codecs()] == [
        (0, "PCMU", 8000), (8, "PCMA", 8000), (126, "telephone-event", 8000)]
    assert audio.direction == "sendrecv"
    assert description.origin.session_id == "77" and description.origin.session_version == 1
    assert not any(name.startswith(WEBRTC_ONLY) for name in attribute_names(plain_offer))
    transport = offered.transport
    assert (transport.ice_ufrag, transport.ice_pwd, transport.setup) == ("Xq7T", "7Hn2pGk0sYtV9cLmQ4wZrB1e", "actpass")
    assert transport.fingerprints == (Fingerprint.parse(f"sha-256 {BROWSER_PRINT}"),)
    assert [(c.transport, c.address, c.port) for c in transport.candidates] == [
        ("udp", "192.0.2.10", 51234), ("udp", "5e2c7a11-93d4-4b0e-a6f1-2c8d9e7b3a40.local", 51235),
        ("tcp", "192.0.2.10", 9)]


def test_phone_answer_becomes_a_webrtc_answer_that_mirrors_the_browser_offer():
    origin = OriginCounter("88")
    _, offered = browser_offer_to_plain(CHROMIUM_OFFER, PLAIN, OriginCounter())
    answered = plain_answer_to_browser(PHONE_ANSWER, offered, LOCAL, origin)
    description = SessionDescription.parse(answered.sdp)
    audio, video = description.media
    assert (audio.proto, audio.port, audio.effective_connection.address) == ("UDP/TLS/RTP/SAVPF", 31000, "203.0.113.5")
    assert [(c.payload_type, c.name) for c in audio.codecs()] == [(8, "PCMA"), (126, "telephone-event")]
    assert audio.attribute("mid") == "0" and audio.rtcp_mux and audio.direction == "sendrecv"
    assert (audio.attribute("ice-ufrag"), audio.attribute("ice-pwd")) == ("wvU1", "wevoip-ice-password-0001")
    assert audio.attribute("fingerprint") == str(OUR_PRINT)
    assert audio.attribute("setup") == "active" and answered.dtls_client
    assert audio.attribute("candidate") == "1 1 udp 2130706431 203.0.113.5 31000 typ host"
    assert audio.has_attribute("end-of-candidates")
    assert (video.port, video.attribute("mid")) == (0, "1")
    assert description.attribute("group") == "BUNDLE 0" and description.has_attribute("ice-lite")
    plan = answered.plan
    assert (plan.browser.payload_type, plan.plain.payload_type, plan.transcode) == (8, 8, False)
    assert (plan.browser_dtmf.payload_type, plan.plain_dtmf.payload_type) == (126, 126)


def test_an_opus_only_browser_is_bridged_by_transcoding():
    opus_only = replace(replace(CHROMIUM_OFFER, "111 63 9 0 8 13 110 126", "111 110"),
                        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n", "")
    plain_offer, offered = browser_offer_to_plain(opus_only, PLAIN, OriginCounter())
    assert [c.name for c in audio_of(plain_offer).codecs()] == ["PCMU", "PCMA"]
    answer = replace(replace(PHONE_ANSWER, "RTP/AVP 8 126", "RTP/AVP 0"), "a=rtpmap:8 PCMA", "a=rtpmap:0 PCMU")
    answered = plain_answer_to_browser(answer, offered, LOCAL, OriginCounter())
    codecs = audio_of(answered.sdp).codecs()
    assert [(c.payload_type, c.name, c.clock_rate, c.channels) for c in codecs] == [(111, "opus", 48000, 2)]
    assert codecs[0].fmtp == "minptime=10;useinbandfec=1"
    assert answered.plan.transcode and answered.plan.plain.name == "PCMU"
    assert answered.plan.browser_dtmf is None


def test_a_browser_answering_role_is_taken_from_its_setup():
    passive = replace(CHROMIUM_OFFER, "a=setup:actpass\r\na=mid:0", "a=setup:passive\r\na=mid:0")
    _, offered = browser_offer_to_plain(passive, PLAIN, OriginCounter())
    answered = plain_answer_to_browser(PHONE_ANSWER, offered, LOCAL, OriginCounter())
    assert audio_of(answered.sdp).attribute("setup") == "active" and answered.dtls_client
    active = replace(CHROMIUM_OFFER, "a=setup:actpass\r\na=mid:0", "a=setup:active\r\na=mid:0")
    _, offered = browser_offer_to_plain(active, PLAIN, OriginCounter())
    answered = plain_answer_to_browser(PHONE_ANSWER, offered, LOCAL, OriginCounter())
    assert audio_of(answered.sdp).attribute("setup") == "passive" and not answered.dtls_client


def test_browser_hold_and_resume_reach_the_phone_and_keep_our_dtls_role():
    plain_origin, browser_origin = OriginCounter("5"), OriginCounter("6")
    _, offered = browser_offer_to_plain(CHROMIUM_OFFER, PLAIN, plain_origin)
    first = plain_answer_to_browser(PHONE_ANSWER, offered, LOCAL, browser_origin)
    # JsSIP's hold(): the same ICE and DTLS, the audio now sendonly.
    hold = replace(replace(CHROMIUM_OFFER, "a=sendrecv\r\na=msid:3c5d", "a=sendonly\r\na=msid:3c5d"),
                   "o=- 4611731400430051336 2", "o=- 4611731400430051336 3")
    plain_reoffer, reoffered = browser_offer_to_plain(hold, PLAIN, plain_origin)
    audio = audio_of(plain_reoffer)
    assert audio.direction == "sendonly" and audio.port == 24000
    origin = SessionDescription.parse(plain_reoffer).origin
    assert (origin.session_id, origin.session_version) == ("5", 2)
    assert reoffered.transport == offered.transport
    held = replace(PHONE_ANSWER, "a=sendrecv", "a=recvonly")
    answered = plain_answer_to_browser(held, reoffered, LOCAL, browser_origin, dtls_client=first.dtls_client)
    assert audio_of(answered.sdp).direction == "recvonly"
    assert audio_of(answered.sdp).attribute("setup") == "active"
    assert SessionDescription.parse(answered.sdp).origin.session_version == 2
    # Resume.
    plain_resume, _ = browser_offer_to_plain(CHROMIUM_OFFER, PLAIN, plain_origin)
    assert audio_of(plain_resume).direction == "sendrecv"
    assert SessionDescription.parse(plain_resume).origin.session_version == 3


def test_a_browser_reoffer_keeps_us_dtls_server_when_we_were():
    _, offered = browser_offer_to_plain(CHROMIUM_OFFER, PLAIN, OriginCounter())
    answered = plain_answer_to_browser(PHONE_ANSWER, offered, LOCAL, OriginCounter(), dtls_client=False)
    assert audio_of(answered.sdp).attribute("setup") == "passive" and not answered.dtls_client


# Phone calls browser.

def test_phone_offer_becomes_a_webrtc_offer_with_only_g711():
    webrtc_offer, offered = plain_offer_to_browser(PHONE_OFFER, LOCAL, OriginCounter("9"))
    description = SessionDescription.parse(webrtc_offer)
    assert len(description.media) == 1
    audio = description.media[0]
    assert (audio.proto, audio.port) == ("UDP/TLS/RTP/SAVPF", 31000)
    assert [(c.payload_type, c.name) for c in audio.codecs()] == [(0, "PCMU"), (8, "PCMA"), (101, "telephone-event")]
    assert audio.attribute("setup") == "actpass" and audio.rtcp_mux and audio.attribute("mid") == "0"
    assert description.attribute("group") == "BUNDLE 0" and description.has_attribute("ice-lite")
    assert audio.attribute("fingerprint") == str(OUR_PRINT)
    assert (offered.audio_index, [c.name for c in offered.codecs]) == (0, ["PCMU", "PCMA"])


def test_browser_answer_becomes_a_plain_answer_that_mirrors_the_phone_offer():
    _, offered = plain_offer_to_browser(PHONE_OFFER, LOCAL, OriginCounter())
    answered = browser_answer_to_plain(CHROMIUM_ANSWER, offered, PLAIN, OriginCounter("4"))
    description = SessionDescription.parse(answered.sdp)
    audio, video = description.media
    assert (audio.proto, audio.port, audio.effective_connection.address) == ("RTP/AVP", 24000, "198.51.100.7")
    assert [(c.payload_type, c.name) for c in audio.codecs()] == [(0, "PCMU"), (101, "telephone-event")]
    assert (video.media, video.port, video.proto) == ("video", 0, "RTP/AVP")
    assert not any(name.startswith(WEBRTC_ONLY) for name in attribute_names(answered.sdp))
    assert not answered.dtls_client    # the browser said active: it is the DTLS client
    assert (answered.transport.ice_ufrag, answered.transport.setup) == ("aB3d", "active")
    assert answered.plan.browser_dtmf.payload_type == 101 and not answered.plan.transcode


@pytest.mark.parametrize("hold, expected", [
    (("a=sendrecv", "a=sendonly"), "sendonly"),
    (("a=sendrecv", "a=inactive"), "inactive"),
    (("c=IN IP4 192.0.2.20", "c=IN IP4 0.0.0.0"), "sendonly"),      # RFC 2543 hold
])
def test_phone_hold_reoffers_reach_the_browser_with_our_current_role(hold, expected):
    origin = OriginCounter("3")
    plain_offer_to_browser(PHONE_OFFER, LOCAL, origin)
    reoffer, offered = plain_offer_to_browser(replace(PHONE_OFFER, *hold), LOCAL, origin, dtls_client=False)
    audio = audio_of(reoffer)
    assert audio.direction == expected
    assert audio.attribute("setup") == "passive"
    assert audio.attribute("ice-ufrag") == "wvU1"
    assert SessionDescription.parse(reoffer).origin.session_version == 2
    browser_held = replace(CHROMIUM_ANSWER, "a=sendrecv", "a=recvonly" if expected == "sendonly" else "a=inactive")
    answered = browser_answer_to_plain(browser_held, offered, PLAIN, OriginCounter())
    assert audio_of(answered.sdp).direction == ("recvonly" if expected == "sendonly" else "inactive")


# Refusals, each with a reason fit for a 488.

@pytest.mark.parametrize("change, reason", [
    (("a=fingerprint:sha-256", "a=x-fingerprint:sha-256"), "no a=fingerprint"),
    (("a=ice-pwd:", "a=x-ice-pwd:"), "no a=ice-ufrag and a=ice-pwd"),
    (("m=audio 51234 UDP/TLS/RTP/SAVPF", "m=audio 51234 RTP/AVP"), "not DTLS-SRTP"),
    (("a=sendrecv\r\na=msid:3c5d8f0e-1b7a-4e4b-9d7e-6a2f9e0c4b11 9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d\r\na=rtcp-mux",
      "a=sendrecv"), "lacks a=rtcp-mux"),
    (("111 63 9 0 8 13 110 126", "9 13"), "none of PCMU, PCMA or Opus"),
    (("m=audio 51234", "m=audio 0"), "has no audio stream"),
    (("a=setup:actpass\r\na=mid:0", "a=setup:holdconn\r\na=mid:0"), "a=setup:holdconn is not valid"),
    (("sha-256 40:41", "sha-256 40:ZZ"), "a=fingerprint: fingerprint"),
    (("a=fingerprint:sha-256", "a=fingerprint:md5"), "no hash function we support among md5"),
    (("a=candidate:2897334103 1 udp 2122260223 192.0.2.10 51234 typ host",
      "a=candidate:2897334103 1 udp"), "is not 'foundation"),
])
def test_browser_offers_we_cannot_bridge_are_refused_with_a_reason(change, reason):
    with pytest.raises(SdpError, match=reason):
        browser_offer_to_plain(replace(CHROMIUM_OFFER, *change), PLAIN, OriginCounter())


def test_fingerprints_of_every_hash_are_kept_and_unsupported_ones_passed_over():
    """RFC 8122 §5: the DTLS endpoint picks the strongest; md5 (which we do not support)
    beside a supported hash is passed over rather than refused."""
    sha1 = "sha-1 " + ":".join(["AB"] * 20)
    sha512 = "sha-512 " + ":".join(["CD"] * 64)
    several = replace(CHROMIUM_OFFER, f"a=fingerprint:sha-256 {BROWSER_PRINT}\r\na=setup:actpass\r\na=mid:0",
                      f"a=fingerprint:sha-256 {BROWSER_PRINT}\r\na=fingerprint:{sha1}\r\n"
                      f"a=fingerprint:md5 {':'.join(['EF'] * 16)}\r\na=fingerprint:{sha512}\r\n"
                      "a=setup:actpass\r\na=mid:0")
    _, offered = browser_offer_to_plain(several, PLAIN, OriginCounter())
    assert offered.transport.fingerprints == (Fingerprint.parse(f"sha-256 {BROWSER_PRINT}"), Fingerprint.parse(sha1),
                                              Fingerprint.parse(sha512))


def test_session_level_fingerprints_count_when_the_audio_has_none():
    moved = CHROMIUM_OFFER.replace(f"a=fingerprint:sha-256 {BROWSER_PRINT}\r\n".encode(), b"")
    moved = moved.replace(b"a=group:BUNDLE 0 1\r\n",
                          f"a=group:BUNDLE 0 1\r\na=fingerprint:sha-256 {BROWSER_PRINT}\r\n".encode())
    _, offered = browser_offer_to_plain(moved, PLAIN, OriginCounter())
    assert offered.transport.fingerprints == (Fingerprint.parse(f"sha-256 {BROWSER_PRINT}"),)


def test_a_phone_answer_without_g711_is_refused():
    _, offered = browser_offer_to_plain(CHROMIUM_OFFER, PLAIN, OriginCounter())
    g722 = replace(replace(PHONE_ANSWER, "RTP/AVP 8 126", "RTP/AVP 9"), "a=rtpmap:8 PCMA/8000", "a=rtpmap:9 G722/8000")
    with pytest.raises(SdpError, match="without PCMU or PCMA"):
        plain_answer_to_browser(g722, offered, LOCAL, OriginCounter())


def test_a_phone_offer_without_g711_is_refused():
    g729 = replace(PHONE_OFFER, "RTP/AVP 9 0 8 18 101", "RTP/AVP 18 101")
    with pytest.raises(SdpError, match="neither PCMU nor PCMA"):
        plain_offer_to_browser(g729, LOCAL, OriginCounter())


@pytest.mark.parametrize("change, reason", [
    (("a=setup:active", "a=setup:actpass"), "not valid in an answer"),
    (("UDP/TLS/RTP/SAVPF 0 101", "UDP/TLS/RTP/SAVPF 9 101"), "no G.711 codec that was offered"),
])
def test_browser_answers_we_cannot_use_are_refused(change, reason):
    _, offered = plain_offer_to_browser(PHONE_OFFER, LOCAL, OriginCounter())
    answer = replace(CHROMIUM_ANSWER, *change)
    if "9 101" in change[1]:
        answer = replace(answer, "a=rtpmap:0 PCMU/8000", "a=rtpmap:9 G722/8000")
    with pytest.raises(SdpError, match=reason):
        browser_answer_to_plain(answer, offered, PLAIN, OriginCounter())


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_damaged_descriptions_raise_only_sdp_errors(data):
    for sdp, step in ((CHROMIUM_OFFER, lambda s: browser_offer_to_plain(s, PLAIN, OriginCounter())),
                      (PHONE_OFFER, lambda s: plain_offer_to_browser(s, LOCAL, OriginCounter()))):
        lines = sdp.split(b"\r\n")
        dropped = data.draw(st.sets(st.integers(0, len(lines) - 1), max_size=4))
        damaged = [line for i, line in enumerate(lines) if i not in dropped]
        at = data.draw(st.integers(0, len(damaged)))
        damaged.insert(at, data.draw(st.sampled_from([
            b"a=candidate:1 1 udp x", b"a=setup:", b"a=fingerprint:", b"a=ice-ufrag:", b"m=audio 1 RTP/AVP 0",
            b"a=rtpmap:111 opus", b"c=IN IP4 ::1", b"a=sendonly", b"m=video 9 UDP/TLS/RTP/SAVPF 96"])))
        try:
            step(b"\r\n".join(damaged))
        except SdpError:
            pass


def test_a_description_that_starts_with_its_media_is_refused():
    """Found by the test above: wevoip.media.sdp read lines[0] of an empty session part."""
    with pytest.raises(SdpError, match="does not start with v=0"):
        browser_offer_to_plain(b"m=audio 1 RTP/AVP 0\r\n" + CHROMIUM_OFFER, PLAIN, OriginCounter())


def test_a_phone_answering_a_law_the_browser_lacks_is_refused():
    pcmu_only = replace(CHROMIUM_OFFER, "111 63 9 0 8 13 110 126", "0 126")
    _, offered = browser_offer_to_plain(pcmu_only, PLAIN, OriginCounter())
    with pytest.raises(SdpError, match="answered PCMA, which the browser did not offer"):
        plain_answer_to_browser(PHONE_ANSWER, offered, LOCAL, OriginCounter())
