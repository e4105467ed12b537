"""Authentication and tenant resolution against the real store."""

import re

import pytest
import pytest_twisted
from twisted.internet.task import Clock

from tests.store.builders import build_tree
from wevoip.credentials import sip_ha1s
from wevoip.sip.auth import Asked, Authenticator
from wevoip.sip.defence import Defence, DefencePolicy
from wevoip.sip.digest import DigestAuthority, digest_response
from wevoip.sip.directory import Directory

PASSWORD = "correct-horse-9"


@pytest_twisted.async_yield_fixture
async def world(database):
    tree = await build_tree(database, "auth.example.net")
    other = await build_tree(database, "other.example.org")
    clock = Clock()
    clock.advance(1_800_000_000)
    secret = b"k" * 32
    authenticator = Authenticator(DigestAuthority(clock, secret), Directory(database, secret),
                                  Defence(clock, DefencePolicy(ban_after_failures=3)))
    yield authenticator, tree, other


def _asked(method="REGISTER", host="acme.auth.example.net", user="alice", authorization=(),
           source="198.51.100.20"):
    return Asked(method=method, request_host=host, from_user=user, from_host=host, to_user=user,
                 to_host=host, authorization=tuple(authorization), source=source)


def _authorization(challenge, *, username="alice", password=PASSWORD, method="REGISTER",
                   uri="sip:acme.auth.example.net", nc=1):
    realm = re.search(r'realm="([^"]+)"', challenge).group(1)
    nonce = re.search(r'nonce="([^"]+)"', challenge).group(1)
    algorithm = re.search(r"algorithm=([A-Z0-9-]+)", challenge).group(1)
    ha1 = sip_ha1s(username, realm, password)["ha1_md5" if algorithm == "MD5" else "ha1_sha256"]
    response = digest_response(algorithm, ha1, nonce, method, uri, "auth", f"{nc:08x}", "c0ffee")
    return (f'Digest username="{username}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
            f'response="{response}", algorithm={algorithm}, qop=auth, nc={nc:08x}, cnonce="c0ffee"')


def _shape(decision):
    return [(name, re.sub(r'nonce="[^"]+"', "nonce", value)) for name, value in decision.headers]


@pytest_twisted.ensureDeferred
async def test_register_is_challenged_for_the_domain_with_sha256_then_md5(world):
    authenticator, tree, _ = world
    decision = await authenticator.authenticate(_asked())
    assert (decision.status, decision.reason) == (401, "Unauthorized")
    assert [name for name, _ in decision.headers] == ["WWW-Authenticate"] * 2
    assert 'realm="acme.auth.example.net"' in decision.headers[0][1]
    assert "SHA-256" in decision.headers[0][1] and "MD5" in decision.headers[1][1]
    assert decision.tenant.tenant_id == tree.tenant["id"]


@pytest.mark.parametrize("index", [0, 1])
@pytest_twisted.ensureDeferred
async def test_right_password_with_either_algorithm_names_the_subscriber(world, index):
    authenticator, tree, _ = world
    challenge = (await authenticator.authenticate(_asked())).headers[index][1]
    decision = await authenticator.authenticate(_asked(authorization=[_authorization(challenge)]))
    assert decision.subscriber.subscriber_id == tree.subscriber["id"]
    assert (decision.subscriber.isp_id, decision.subscriber.tenant_id) == (tree.isp["id"], tree.tenant["id"])


@pytest_twisted.ensureDeferred
async def test_unknown_user_gets_the_same_challenge_as_a_known_one(world):
    authenticator, _, _ = world
    known = await authenticator.authenticate(_asked(user="alice"))
    unknown = await authenticator.authenticate(_asked(user="nosuchuser"))
    assert _shape(known) == _shape(unknown) and known.status == unknown.status
    wrong = await authenticator.authenticate(_asked(authorization=[_authorization(
        known.headers[0][1], password="wrong-horse-0")]))
    nobody = await authenticator.authenticate(_asked(user="nosuchuser", authorization=[_authorization(
        unknown.headers[0][1], username="nosuchuser")]))
    assert _shape(wrong) == _shape(nobody) and wrong.status == nobody.status == 401
    assert authenticator.defence.counters.failures == 2


@pytest_twisted.ensureDeferred
async def test_other_requests_get_407_and_trunks_need_no_digest(world):
    authenticator, tree, _ = world
    decision = await authenticator.authenticate(_asked(method="INVITE"))
    assert decision.status == 407 and decision.headers[0][0] == "Proxy-Authenticate"
    trunk = await authenticator.authenticate(_asked(method="INVITE", host="203.0.113.1", source="192.0.2.10"))
    assert trunk.trunk.gateway_id == tree.gateway["id"] and trunk.trunk.isp_id == tree.isp["id"]
    register = await authenticator.authenticate(_asked(source="192.0.2.10"))
    assert register.status == 401


@pytest_twisted.ensureDeferred
async def test_a_domain_nobody_serves_is_refused(world):
    authenticator, _, _ = world
    decision = await authenticator.authenticate(_asked(host="pbx.nowhere.example"))
    assert (decision.status, decision.reason) == (403, "Domain not served here")


@pytest_twisted.ensureDeferred
async def test_bare_ip_phone_gets_its_tenants_realm_and_registers(world):
    authenticator, tree, _ = world
    ip = "203.0.113.5"
    decision = await authenticator.authenticate(_asked(host=ip))
    assert 'realm="acme.auth.example.net"' in decision.headers[0][1]
    answer = _authorization(decision.headers[0][1], uri=f"sip:{ip}")
    identity = await authenticator.authenticate(_asked(host=ip, authorization=[answer]))
    assert identity.subscriber.subscriber_id == tree.subscriber["id"]
    assert identity.tenant.domain == "acme.auth.example.net"


@pytest_twisted.ensureDeferred
async def test_bare_ip_unknown_or_ambiguous_name_gets_a_decoy_tenant_realm(world):
    """alice exists in both trees: ambiguous, so like an unknown name she gets a decoy."""
    authenticator, tree, other = world
    realms = {tree.tenant["sip_domain"], other.tenant["sip_domain"]}
    for user in ("alice", "ghost", "100", "admin"):
        decision = await authenticator.authenticate(_asked(host="203.0.113.5", user=user))
        realm = re.search(r'realm="([^"]+)"', decision.headers[0][1]).group(1)
        assert decision.status == 401 and realm in realms


@pytest_twisted.ensureDeferred
async def test_guessing_gets_the_source_banned_and_then_ignored(world):
    authenticator, _, _ = world
    challenge = (await authenticator.authenticate(_asked())).headers[0][1]
    results = []
    for n, password in enumerate(["guess-one-1", "guess-two-2", "guess-three-3", PASSWORD]):
        results.append(await authenticator.authenticate(_asked(authorization=[
            _authorization(challenge, password=password, nc=n + 1)])))
    assert [r.status for r in results[:2]] == [401, 401]
    assert results[2].drop is True
    assert authenticator.defence.bans()[0]["address"] == "198.51.100.20"
    assert not authenticator.defence.admit("198.51.100.20")


@pytest_twisted.ensureDeferred
async def test_malformed_credentials_get_400_and_count(world):
    authenticator, _, _ = world
    decision = await authenticator.authenticate(_asked(authorization=['Digest username="alice"']))
    assert decision.status == 400 and decision.reason.startswith("Bad credentials")
    assert authenticator.defence.counters.failures == 1


@pytest.mark.parametrize("host, expected", [("192.0.2.1", True), ("[2001:db8::1]", True), ("2001:db8::1", True),
                                            ("acme.example.net", False), ("123.example.net", False),
                                            ("1.2.3", False), ("", False)])
def test_what_counts_as_a_bare_address(host, expected):
    from wevoip.sip.auth import is_address
    assert is_address(host) is expected


@pytest_twisted.ensureDeferred
async def test_credentials_that_are_not_utf8_get_400_naming_the_field_and_count_towards_a_ban(world):
    """Issue 12 point 15: these used to raise in hashing (500, never counted)."""
    authenticator, _, _ = world
    challenge = (await authenticator.authenticate(_asked())).headers[0][1]
    good = _authorization(challenge)
    decisions = []
    for field, bad in (("username", 'username="al\udcffice"'), ("cnonce", 'cnonce="\udcfe\udcff"'),
                       ("uri", 'uri="sip:acme.auth.example.net\udc80"')):
        value = re.sub(field + r'="[^"]*"', bad, good)
        decisions.append(await authenticator.authenticate(_asked(authorization=[value])))
    assert [(d.status, d.reason) for d in decisions[:2]] == [
        (400, "Bad credentials: username is not UTF-8"), (400, "Bad credentials: cnonce is not UTF-8")]
    assert decisions[2].drop is True
    assert not authenticator.defence.admit("198.51.100.20")
