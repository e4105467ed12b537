"""The REGISTER handler end to end on parsed messages, with the real store behind it."""

import re

import pytest_twisted
from twisted.internet import reactor

from tests.store.builders import build_tree
from wevoip.credentials import sip_ha1s
from wevoip.sip.auth import Authenticator
from wevoip.sip.defence import Defence, DefencePolicy
from wevoip.sip.digest import DigestAuthority, digest_response
from wevoip.sip.directory import Directory
from wevoip.sip.location import Location
from wevoip.sip.message import parse
from wevoip.sip.register import RegisterHandler
from wevoip.sip.registrar import Registrar, RegistrarPolicy
from wevoip.store import registrations

DOMAIN = "acme.reg.example.net"


class Source:
    """Stands where the transport's Flow does: the handler reads only these."""

    def __init__(self, transport, remote, local):
        self.transport, self.remote, self.local = transport, remote, local
        self.reliable = transport != "udp"


SOURCE = Source("udp", ("198.51.100.30", 40000), ("127.0.0.1", 5060))


@pytest_twisted.async_yield_fixture
async def handler(database):
    tree = await build_tree(database, "reg.example.net")
    secret = b"r" * 32
    registrar = Registrar(reactor, RegistrarPolicy(min_expires=60, max_expires=3600), node="t")
    handler = RegisterHandler(
        Authenticator(DigestAuthority(reactor, secret), Directory(database, secret),
                      Defence(reactor, DefencePolicy())),
        registrar, Location(reactor, database, registrar, "t"))
    handler.tree = tree
    yield handler
    registrar.stop()


def _register(*, user="alice", contact="<sip:alice@192.168.1.20:5060>", cseq=1, expires=None,
              authorization=None, call_id="reg-call-1", host=DOMAIN, extra="", agent="test-phone/1.0"):
    lines = [f"REGISTER sip:{host} SIP/2.0",
             f"Via: SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK{cseq}x{abs(hash(contact)) % 9999}",
             "Max-Forwards: 70", f"From: <sip:{user}@{host}>;tag=abc", f"To: <sip:{user}@{host}>",
             f"Call-ID: {call_id}", f"CSeq: {cseq} REGISTER", f"User-Agent: {agent}"]
    if contact is not None:
        lines.append(f"Contact: {contact}")
    if expires is not None:
        lines.append(f"Expires: {expires}")
    if authorization:
        lines.append(f"Authorization: {authorization}")
    if extra:
        lines.append(extra)
    return parse(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape"))


def _credentials(response, *, password="correct-horse-9", host=DOMAIN, user="alice"):
    challenge = response.headers.get_all("WWW-Authenticate")[0]
    realm = re.search(r'realm="([^"]+)"', challenge).group(1)
    nonce = re.search(r'nonce="([^"]+)"', challenge).group(1)
    ha1 = sip_ha1s(user, realm, password)["ha1_sha256"]
    uri = f"sip:{host}"
    digest = digest_response("SHA-256", ha1, nonce, "REGISTER", uri, "auth", "00000001", "abcd")
    return (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
            f'response="{digest}", algorithm=SHA-256, qop=auth, nc=00000001, cnonce="abcd"')


async def _authenticated(handler, **kw):
    challenge = await handler.handle(_register(**{**kw, "cseq": kw.get("cseq", 1) * 2 - 1}), SOURCE)
    assert challenge.status == 401
    return await handler.handle(_register(**{**kw, "cseq": kw.get("cseq", 1) * 2,
                                             "authorization": _credentials(challenge, host=kw.get("host", DOMAIN))}),
                                SOURCE)


@pytest_twisted.ensureDeferred
async def test_register_with_digest_binds_and_lists_contacts(handler, database):
    response = await _authenticated(handler, contact="<sip:alice@192.168.1.20:5060>;q=0.7", expires=600)
    assert response.status == 200
    assert response.to.tag and response.headers.get("Server") == "WeVoIP"
    assert response.headers.get_all("Contact") == ["<sip:alice@192.168.1.20:5060>;expires=600;q=0.7"]
    rows = await database.transact(registrations.bindings_of, handler.tree.isp["id"], handler.tree.subscriber["id"])
    row = next(r for r in rows if r["contact"] == "sip:alice@192.168.1.20:5060")
    assert (row["source"], row["transport"], row["user_agent"]) == ("198.51.100.30:40000", "udp", "test-phone/1.0")
    [binding] = handler.registrar.bindings(handler.tree.subscriber["id"])
    assert binding.source == "198.51.100.30:40000"


@pytest_twisted.ensureDeferred
async def test_too_brief_gets_423_with_min_expires(handler):
    response = await _authenticated(handler, expires=10)
    assert (response.status, response.headers.get("Min-Expires")) == (423, "60")


@pytest_twisted.ensureDeferred
async def test_star_with_expires_zero_removes_everything(handler):
    assert (await _authenticated(handler, expires=600)).status == 200
    response = await _authenticated(handler, contact="*", expires=0, cseq=2)
    assert response.status == 200 and response.headers.get_all("Contact") == []
    assert handler.registrar.bindings(handler.tree.subscriber["id"]) == []


@pytest_twisted.ensureDeferred
async def test_bad_contact_or_expires_is_a_400_naming_it(handler):
    assert (await _authenticated(handler, contact="<sip:alice@192.168.1.20>;q=2")).reason == "Contact q must be from 0 to 1"
    assert (await _authenticated(handler, expires="soon", cseq=2)).reason == "Malformed Expires header"
    response = await _authenticated(handler, contact="<tel:+15550100100>", cseq=3)
    assert response.status == 400 and "sip:" in response.reason


@pytest_twisted.ensureDeferred
async def test_nobody_registers_someone_elses_address(handler, database):
    from wevoip.store import subscribers
    await database.transact(lambda tx: subscribers.create_subscriber(
        tx, handler.tree.isp["id"], handler.tree.tenant["id"], username="bob", password="sesame-street-7"))
    challenge = await handler.handle(_register(user="alice"), SOURCE)
    forged = _register(user="alice", cseq=2, authorization=_credentials(challenge, user="bob",
                                                                          password="sesame-street-7"))
    response = await handler.handle(forged, SOURCE)
    assert response.status == 403 and "To" in response.reason


@pytest_twisted.ensureDeferred
async def test_query_lists_without_changing(handler):
    await _authenticated(handler, expires=600)
    response = await _authenticated(handler, contact=None, cseq=2)
    assert response.status == 200
    assert [c.split(";")[0] for c in response.headers.get_all("Contact")] == ["<sip:alice@192.168.1.20:5060>"]


@pytest_twisted.ensureDeferred
async def test_bytes_that_are_not_utf8_in_call_id_or_user_agent_are_no_server_error(handler, database):
    """The parser keeps such bytes as surrogates; the store takes only UTF-8 (issue 12 point 15)."""
    refused = await _authenticated(handler, call_id="reg-\udcff")
    assert (refused.status, refused.reason) == (400, "Call-ID is not UTF-8")
    saved = await _authenticated(handler, call_id="reg-call-ua", agent="phone-\udcff/1")
    assert saved.status == 200
    rows = await database.transact(registrations.bindings_of, handler.tree.isp["id"],
                                   handler.tree.subscriber["id"])
    assert "phone-\ufffd/1" in [r["user_agent"] for r in rows]
