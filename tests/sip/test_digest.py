"""Digest authentication: RFC 7616's own example, nonces that expire, replays refused."""

import re
from types import SimpleNamespace

import hypothesis.strategies as st
import pytest
from hypothesis import given
from twisted.internet.task import Clock

from wevoip.credentials import sip_ha1s
from wevoip.sip.digest import (Credentials, DigestAuthority, MalformedCredentials, Verdict,
                               digest_response, parse_credentials)

# RFC 7616 §3.9.1
MUFASA = dict(username="Mufasa", realm="http-auth@example.org", password="Circle of Life",
              method="GET", uri="/dir/index.html",
              nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
              cnonce_md5="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
              cnonce_sha="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")


@pytest.mark.parametrize("algorithm, column, expected", [
    ("MD5", "ha1_md5", "8ca523f5e9506fed4657c9700eebdbec"),
    ("SHA-256", "ha1_sha256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
])
def test_rfc7616_example(algorithm, column, expected):
    ha1 = sip_ha1s(MUFASA["username"], MUFASA["realm"], MUFASA["password"])[column]
    assert digest_response(algorithm, ha1, MUFASA["nonce"], "GET", MUFASA["uri"], "auth",
                           "00000001", MUFASA["cnonce_md5"]) == expected


def test_rfc7616_example_header_parses():
    header = ('Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html",'
              ' algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",'
              ' nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth,'
              ' response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",'
              ' opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"')
    credentials = parse_credentials(header)
    assert credentials.username == "Mufasa"
    assert credentials.algorithm == "SHA-256"
    assert credentials.nc == "00000001"
    assert credentials.response.startswith("7539")


def test_quoted_values_keep_escaped_quotes_and_commas():
    credentials = parse_credentials('Digest username="a\\"b,c", realm="r", nonce="n", uri="sip:x",'
                                    ' response="ABC"')
    assert credentials.username == 'a"b,c' and credentials.response == "abc"


@pytest.mark.parametrize("header, reason", [
    ("Basic dXNlcjpwYXNz", "Digest"),
    ('Digest username="a", realm="r", nonce="n", uri="u"', "response"),
    ('Digest username="abc', "unterminated"),
    ('Digest username="a", username="b", realm="r", nonce="n", uri="u", response="x"', "repeated"),
    ('Digest username="a", realm="r", nonce="n", uri="u", response="x", algorithm=SHA-512-256', "algorithm"),
    ('Digest username="a", realm="r", nonce="n", uri="u", response="x", qop=auth-int', "qop"),
    ('Digest username="a", realm="r", nonce="n", uri="u", response="x", qop=auth, nc=1', "nc"),
    ("Digest " + "a" * 3000, "too long"),
])
def test_malformed_credentials_say_why(header, reason):
    with pytest.raises(MalformedCredentials, match=reason):
        parse_credentials(header)


@given(st.text(max_size=300))
def test_junk_never_raises_anything_else(text):
    try:
        parse_credentials("Digest " + text)
    except MalformedCredentials:
        pass


REALM = "acme.kages.example.net"
ROW = SimpleNamespace(**sip_ha1s("alice", REALM, "correct-horse-9"))


def _answer(authority, challenge, *, algorithm="SHA-256", password="correct-horse-9", nc=1,
            username="alice", method="REGISTER", uri=f"sip:{REALM}", realm=REALM, qop="auth"):
    nonce = challenge.split('nonce="')[1].split('"')[0]
    ha1 = sip_ha1s(username, realm, password)["ha1_sha256" if algorithm == "SHA-256" else "ha1_md5"]
    nc_text = f"{nc:08x}" if qop else ""
    cnonce = "0a4f113b" if qop else ""
    response = digest_response(algorithm, ha1, nonce, method, uri, qop, nc_text, cnonce)
    return Credentials(username=username, realm=realm, nonce=nonce, uri=uri, response=response,
                       algorithm=algorithm, qop=qop, nc=nc_text, cnonce=cnonce)


@pytest.fixture
def authority():
    clock = Clock()
    clock.advance(1_800_000_000)
    return DigestAuthority(clock, b"s" * 32, nonce_lifetime=300, tracked_nonces=3)


def test_challenges_offer_sha256_then_md5(authority):
    first, second = authority.challenges(REALM)
    assert first.startswith(f'Digest realm="{REALM}"') and "algorithm=SHA-256" in first
    assert "algorithm=MD5" in second and 'qop="auth"' in second and "stale" not in second
    assert all("stale=true" in c for c in authority.challenges(REALM, stale=True))


@pytest.mark.parametrize("agent, offer", [
    ("", ("SHA-256", "MD5")), ("Grandstream GXP2160 1.0.11.23", ("SHA-256", "MD5")),
    ("sipsak 0.9.8.1", ("MD5",)), ("baresip v1.0.0 (x86_64/linux)", ("MD5",)),
    ("baresip v3.10.1 (x86_64/linux)", ("SHA-256", "MD5")), ("friendly-scanner", ("MD5",)),
    ("pyVoIP 1.6.8", ("SHA-256", "MD5")),
])
def test_user_agents_that_cannot_take_the_rfc8760_offer_get_md5_alone(authority, agent, offer):
    """Issue 12 point 9: sipsak and sipvicious read only the first challenge, libre 1.x gives up
    on any that is not MD5; pyVoIP keeps the last one, so it takes the standard offer."""
    challenges = authority.challenges(REALM, user_agent=agent)
    assert tuple(re.search(r"algorithm=([A-Z0-9-]+)", c).group(1) for c in challenges) == offer


def test_md5_alone_is_only_for_sites_that_offer_md5():
    authority = DigestAuthority(Clock(), b"s" * 32, offered=("SHA-256",), md5_user_agents=("sipsak",))
    assert authority.offer("sipsak 0.9.8.1") == ("SHA-256",)
    assert DigestAuthority(Clock(), b"s" * 32, md5_user_agents=()).offer("sipsak") == ("SHA-256", "MD5")


def test_the_offer_order_is_configurable():
    authority = DigestAuthority(Clock(), b"s" * 32, offered=("MD5",))
    [only] = authority.challenges(REALM)
    assert "algorithm=MD5" in only


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_right_password_passes_and_wrong_fails(authority, algorithm):
    challenge = authority.challenges(REALM)[0]
    assert authority.check(_answer(authority, challenge, algorithm=algorithm), "REGISTER", ROW) is Verdict.OK
    wrong = _answer(authority, challenge, algorithm=algorithm, password="battery-staple-1", nc=2)
    assert authority.check(wrong, "REGISTER", ROW) is Verdict.BAD


def test_phone_without_qop_is_accepted_once_per_nonce(authority):
    challenge = authority.challenges(REALM)[0]
    answer = _answer(authority, challenge, algorithm="MD5", qop="")
    assert authority.check(answer, "REGISTER", ROW) is Verdict.OK
    assert authority.check(answer, "REGISTER", ROW) is Verdict.REPLAY


def test_unknown_user_is_bad_even_with_a_matching_dummy(authority):
    answer = _answer(authority, authority.challenges(REALM)[0], username="nobody")
    assert authority.check(answer, "REGISTER", None) is Verdict.BAD


def test_method_and_uri_are_covered(authority):
    answer = _answer(authority, authority.challenges(REALM)[0])
    assert authority.check(answer, "INVITE", ROW) is Verdict.BAD


def test_nonce_expires_and_is_stale(authority):
    challenge = authority.challenges(REALM)[0]
    authority.clock.advance(301)
    assert authority.check(_answer(authority, challenge), "REGISTER", ROW) is Verdict.STALE


def test_nonce_from_another_node_with_the_same_secret_is_good(authority):
    other = DigestAuthority(authority.clock, b"s" * 32)
    answer = _answer(authority, other.challenges(REALM)[0])
    assert authority.check(answer, "REGISTER", ROW) is Verdict.OK


def test_forged_or_foreign_nonce_is_stale(authority):
    other = DigestAuthority(authority.clock, b"t" * 32)
    assert authority.check(_answer(authority, other.challenges(REALM)[0]), "REGISTER", ROW) is Verdict.STALE
    forged = _answer(authority, 'nonce="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"')
    assert authority.check(forged, "REGISTER", ROW) is Verdict.STALE


def test_nonce_is_bound_to_its_realm(authority):
    challenge = authority.challenges("other.example.net")[0]
    assert authority.check(_answer(authority, challenge), "REGISTER", ROW) is Verdict.STALE


def test_nonce_count_must_grow(authority):
    challenge = authority.challenges(REALM)[0]
    assert authority.check(_answer(authority, challenge, nc=1), "REGISTER", ROW) is Verdict.OK
    assert authority.check(_answer(authority, challenge, nc=1), "REGISTER", ROW) is Verdict.REPLAY
    assert authority.check(_answer(authority, challenge, nc=3), "REGISTER", ROW) is Verdict.OK
    assert authority.check(_answer(authority, challenge, nc=2), "REGISTER", ROW) is Verdict.REPLAY


def test_forgetting_a_count_never_reopens_a_replay(authority):
    """Tracking holds 3 nonces; the first one dropped becomes stale rather than reusable."""
    first = authority.challenges(REALM)[0]
    assert authority.check(_answer(authority, first), "REGISTER", ROW) is Verdict.OK
    for _ in range(3):
        authority.clock.advance(1)
        later = authority.challenges(REALM)[0]
        assert authority.check(_answer(authority, later), "REGISTER", ROW) is Verdict.OK
    assert authority.tracked() == 3
    assert authority.check(_answer(authority, first, nc=1), "REGISTER", ROW) is Verdict.STALE
    assert authority.check(_answer(authority, first, nc=9), "REGISTER", ROW) is Verdict.STALE


def test_prune_drops_expired_counts(authority):
    assert authority.check(_answer(authority, authority.challenges(REALM)[0]), "REGISTER", ROW) is Verdict.OK
    authority.clock.advance(400)
    assert authority.check(_answer(authority, authority.challenges(REALM)[0]), "REGISTER", ROW) is Verdict.OK
    assert authority.prune() == 1
    assert authority.tracked() == 1


FIELDS = ("username", "realm", "nonce", "uri", "response", "qop", "nc", "cnonce", "opaque")
_SAFE = {"username": b"alice", "realm": REALM.encode(), "nonce": b"AAAA", "uri": b"sip:" + REALM.encode(),
         "response": b"0" * 64, "qop": b"auth", "nc": b"00000001", "cnonce": b"c0ffee", "opaque": b"x"}


def _register_with(field: str, value: bytes) -> bytes:
    params = dict(_SAFE, **{field: value})
    quoted = b", ".join(f'{name}="'.encode() + params[name] + b'"' for name in FIELDS)
    return (b"REGISTER sip:" + REALM.encode() + b" SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKp\r\n"
            b"From: <sip:alice@" + REALM.encode() + b">;tag=1\r\nTo: <sip:alice@" + REALM.encode() + b">\r\n"
            b"Call-ID: prop\r\nCSeq: 2 REGISTER\r\nAuthorization: Digest algorithm=SHA-256, " + quoted +
            b"\r\nContent-Length: 0\r\n\r\n")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@given(st.sampled_from(FIELDS), st.binary(max_size=40))
def test_any_bytes_in_any_field_are_malformed_or_checked_never_an_error(field, value):
    """Issue 12 point 15: bytes that are not UTF-8 used to raise in hashing (500, a traceback
    per packet, never counted). Through the real parser, every field: either the message is
    refused by the parser, or the credentials are malformed (400, counted), or checked."""
    from wevoip.sip.errors import ParseError
    from wevoip.sip.message import parse
    try:
        request = parse(_register_with(field, value))
        header = request.headers.get("Authorization")
    except ParseError:
        return
    authority = DigestAuthority(Clock(), b"s" * 32)
    try:
        credentials = parse_credentials(header)
    except MalformedCredentials as error:
        assert str(error)
        return
    assert _is_utf8(value), f"{field}={value!r} passed as credentials"
    assert authority.check(credentials, "REGISTER", ROW) in set(Verdict)
    assert authority.check(credentials, "REGISTER", None) is Verdict.BAD


@pytest.mark.parametrize("field", FIELDS)
def test_a_field_that_is_not_utf8_is_named(field):
    from wevoip.sip.message import parse
    request = parse(_register_with(field, b"al\xffce"))
    with pytest.raises(MalformedCredentials, match=f"{field} is not UTF-8"):
        parse_credentials(request.headers.get("Authorization"))
