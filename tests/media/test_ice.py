"""The ICE-lite agent answers good checks, refuses bad ones as RFC 5389/8445 say, never raises."""

import os

import pytest
from hypothesis import given, strategies as st
from twisted.internet.task import Clock

from tests.media.rfc5769 import SAMPLE_REQUEST, SHORT_TERM_PASSWORD, TRANSACTION
from wevoip.media.webrtc import stun
from wevoip.media.webrtc.ice import CONSENT_TIMEOUT, IceLiteAgent, new_credentials

LOCAL_UFRAG, LOCAL_PWD = "wvLo", "wevoip-local-password-0123"
REMOTE_UFRAG = "brWs"
BROWSER = ("127.0.0.1", 50321)
BROWSER6 = ("::1", 50322)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def agent(clock):
    return IceLiteAgent(clock, LOCAL_UFRAG, LOCAL_PWD, REMOTE_UFRAG)


def check(username=f"{LOCAL_UFRAG}:{REMOTE_UFRAG}", password=LOCAL_PWD, role=stun.ICE_CONTROLLING,
          nominate=False, extra=(), fingerprint=True, method=stun.BINDING, cls=stun.REQUEST):
    """A connectivity check the way a browser sends it (RFC 8445 §7.1)."""
    message = stun.Message(method, cls, os.urandom(12))
    if username is not None:
        message.add(stun.USERNAME, username.encode())
    message.add(stun.PRIORITY, (0x6E7F1EFF).to_bytes(4, "big"))
    if role is not None:
        message.add(role, os.urandom(8))
    if nominate:
        message.add(stun.USE_CANDIDATE, b"")
    for kind, value in extra:
        message.add(kind, value)
    return message, message.encode(password.encode() if password else None, fingerprint)


def error_code(reply):
    return stun.decode_error_code(stun.parse(reply).get(stun.ERROR_CODE))[0]


def test_a_good_check_is_answered_with_the_mapped_address_integrity_and_fingerprint(agent, clock):
    clock.advance(5)
    request, data = check()
    reply = stun.parse(agent.receive(data, BROWSER))
    assert (reply.cls, reply.transaction_id) == (stun.SUCCESS, request.transaction_id)
    assert stun.decode_xor_address(reply.get(stun.XOR_MAPPED_ADDRESS), reply.transaction_id) == BROWSER
    assert reply.check_integrity(LOCAL_PWD.encode()) and reply.check_fingerprint()
    assert agent.selected is None and agent.remote_address == BROWSER
    assert agent.last_consent == 5 and agent.counters.answered == 1


def test_ipv6_source_is_mapped(agent):
    reply = stun.parse(agent.receive(check()[1], BROWSER6))
    assert stun.decode_xor_address(reply.get(stun.XOR_MAPPED_ADDRESS), reply.transaction_id) == BROWSER6


def test_use_candidate_from_the_controlling_peer_nominates(agent):
    agent.receive(check()[1], BROWSER6)
    agent.receive(check(nominate=True)[1], BROWSER)
    agent.receive(check()[1], BROWSER6)
    assert agent.selected == BROWSER and agent.remote_address == BROWSER


def test_consent_expires_thirty_seconds_after_the_last_good_check(agent, clock):
    assert agent.consent_expired()
    agent.receive(check(nominate=True)[1], BROWSER)
    clock.advance(CONSENT_TIMEOUT - 0.5)
    assert not agent.consent_expired()
    clock.advance(0.5)
    assert agent.consent_expired()
    agent.receive(check()[1], BROWSER)
    assert not agent.consent_expired()


def test_the_watchdog_reports_consent_lost_once_a_timeout_after_the_last_good_check(clock):
    lost = []
    agent = IceLiteAgent(clock, LOCAL_UFRAG, LOCAL_PWD, REMOTE_UFRAG, consent_timeout=10,
                         on_consent_lost=lambda: lost.append(clock.seconds()))
    clock.advance(100)
    assert lost == [] and clock.getDelayedCalls() == []      # no consent given yet: nothing to lose
    agent.receive(check(nominate=True)[1], BROWSER)
    for _ in range(4):       # a check every 4 s keeps consent, on one timer
        clock.advance(4)
        agent.receive(check()[1], BROWSER)
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(9.9)
    assert lost == []
    clock.advance(0.1)
    assert lost == [126] and agent.consent_lost and agent.consent_expired()
    agent.receive(check()[1], BROWSER)      # too late: the call is being ended
    clock.advance(60)
    assert lost == [126] and clock.getDelayedCalls() == []


def test_a_stopped_agent_says_nothing_more(clock):
    lost = []
    agent = IceLiteAgent(clock, LOCAL_UFRAG, LOCAL_PWD, REMOTE_UFRAG, consent_timeout=10,
                         on_consent_lost=lambda: lost.append(True))
    agent.receive(check()[1], BROWSER)
    agent.stop()
    assert clock.getDelayedCalls() == []
    agent.receive(check()[1], BROWSER)
    clock.advance(60)
    assert lost == []


def test_an_ice_restart_gives_the_browser_a_whole_timeout_for_its_new_checks(clock):
    lost = []
    agent = IceLiteAgent(clock, LOCAL_UFRAG, LOCAL_PWD, REMOTE_UFRAG, consent_timeout=10,
                         on_consent_lost=lambda: lost.append(clock.seconds()))
    agent.receive(check()[1], BROWSER)
    clock.advance(8)
    agent.restart("newU", "new-password-for-restart-1", "newR")
    clock.advance(9)
    assert lost == []
    clock.advance(1)
    assert lost == [18]


@pytest.mark.parametrize("kwargs, code", [
    (dict(username=None), 400),                             # no USERNAME
    (dict(password=None), 400),                             # no MESSAGE-INTEGRITY
    (dict(username=f"other:{REMOTE_UFRAG}"), 401),           # not our ufrag
    (dict(username=f"{LOCAL_UFRAG}:other"), 401),            # not the peer's ufrag
    (dict(username=LOCAL_UFRAG), 401),                       # no colon
    (dict(password="wrong-password-wrong-pwd"), 401),        # integrity fails
    (dict(method=0x003), 400),                               # not Binding
])
def test_unauthenticated_checks_get_400_or_401_without_integrity(agent, kwargs, code):
    reply = agent.receive(check(**kwargs)[1], BROWSER)
    assert error_code(reply) == code
    parsed = stun.parse(reply)
    assert parsed.integrity_at is None and parsed.check_fingerprint()
    assert agent.remote_address is None and agent.counters.refused == 1


def test_an_unknown_comprehension_required_attribute_gets_420_listing_it(agent):
    reply = agent.receive(check(extra=[(0x0042, b"x")])[1], BROWSER)
    assert error_code(reply) == 420
    parsed = stun.parse(reply)
    assert parsed.get(stun.UNKNOWN_ATTRIBUTES) == b"\x00\x42"
    assert parsed.check_integrity(LOCAL_PWD.encode())
    assert agent.remote_address is None


def test_comprehension_optional_unknowns_are_ignored(agent):
    reply = agent.receive(check(extra=[(0xC057, b"\x00\x01\x00\x0a")])[1], BROWSER)
    assert stun.parse(reply).cls == stun.SUCCESS


def test_a_controlled_peer_gets_487_because_a_lite_agent_cannot_control(agent):
    reply = agent.receive(check(role=stun.ICE_CONTROLLED)[1], BROWSER)
    assert error_code(reply) == 487
    assert stun.parse(reply).check_integrity(LOCAL_PWD.encode())
    assert agent.remote_address is None


def test_use_candidate_without_ice_controlling_does_not_nominate(agent):
    agent.receive(check(role=None, nominate=True)[1], BROWSER)
    assert agent.selected is None and agent.remote_address == BROWSER


def test_a_malformed_attribute_in_an_authenticated_check_gets_400(agent):
    reply = agent.receive(check(role=None, extra=[(stun.ICE_CONTROLLING, b"\x01")])[1], BROWSER)
    assert error_code(reply) == 400


@pytest.mark.parametrize("data", [
    check(fingerprint=False)[1],                                  # ICE demands FINGERPRINT
    check(cls=stun.INDICATION)[1],                                # indications need nothing
    check(cls=stun.SUCCESS)[1],                                   # a lite agent sent no checks
    check()[1][:-1] + b"\x00",                                    # FINGERPRINT wrong
    b"\x00\x01\x00\x00" + b"\x21\x12\xa4\x42" + b"\x00" * 11,     # short header
    b"\x16\xfe\xfd" + b"\x00" * 40,                               # a DTLS record
])
def test_what_is_not_a_check_is_dropped_silently(agent, data):
    assert agent.receive(data, BROWSER) is None
    assert agent.counters.dropped == 1


def test_without_a_known_remote_ufrag_any_peer_part_is_accepted(clock):
    agent = IceLiteAgent(clock, LOCAL_UFRAG, LOCAL_PWD)
    assert stun.parse(agent.receive(check(username=f"{LOCAL_UFRAG}:anything")[1], BROWSER)).cls == stun.SUCCESS


def test_an_ice_restart_forgets_the_old_pairs_and_credentials(agent):
    agent.receive(check(nominate=True)[1], BROWSER)
    agent.restart("newU", "new-password-for-restart-1", "newR")
    assert agent.remote_address is None and agent.consent_expired()
    assert error_code(agent.receive(check()[1], BROWSER)) == 401
    reply = agent.receive(check(username="newU:newR", password="new-password-for-restart-1")[1], BROWSER)
    assert stun.parse(reply).cls == stun.SUCCESS


def test_credentials_are_long_enough_ice_chars_and_fresh():
    ufrag, pwd = new_credentials()
    assert len(ufrag) >= 4 and len(pwd) >= 22
    assert set(ufrag + pwd) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/")
    assert new_credentials() != (ufrag, pwd)


@given(st.binary(max_size=300))
def test_junk_never_raises(data):
    agent = IceLiteAgent(Clock(), LOCAL_UFRAG, LOCAL_PWD, REMOTE_UFRAG)
    reply = agent.receive(data, BROWSER)
    assert reply is None or stun.parse(reply).cls == stun.ERROR
    assert agent.remote_address is None


@given(st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=24)), max_size=6))
def test_authenticated_checks_with_random_attributes_never_raise(attributes):
    agent = IceLiteAgent(Clock(), LOCAL_UFRAG, LOCAL_PWD, REMOTE_UFRAG)
    attributes = [(kind, value) for kind, value in attributes
                  if kind not in (stun.MESSAGE_INTEGRITY, stun.FINGERPRINT)]
    reply = agent.receive(check(extra=attributes)[1], BROWSER)
    assert stun.parse(reply).check_fingerprint()


def test_rfc5769_sample_request_is_authenticated_and_gets_role_conflict(clock):
    """RFC 5769 §2.1's request, to an agent holding its credentials: it checks out, but it
    says ICE-CONTROLLED, and a lite agent cannot be the controlling one."""
    agent = IceLiteAgent(clock, "evtj", SHORT_TERM_PASSWORD.decode(), "h6vY")
    reply = stun.parse(agent.receive(SAMPLE_REQUEST, BROWSER))
    assert reply.transaction_id == TRANSACTION
    assert stun.decode_error_code(reply.get(stun.ERROR_CODE)) == (487, "Role Conflict")
    assert reply.check_integrity(SHORT_TERM_PASSWORD) and reply.check_fingerprint()
