import re
from dataclasses import dataclass, replace

import jsonschema
import pytest
import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.web.server import Site

from wevoip.config import Config
from wevoip.store.admins import create_api_token
from tests.dnsserver import LoopbackDNS
from wevoip.config import DnsConfig, Listen
from wevoip.interfaces import ICallApplication, IDialplanPreset
from wevoip.plugins import discover, require
from wevoip.resolver import make_resolver
from wevoip.web.api.openapi import openapi_document
from wevoip.web.api.routes import ROUTES, Services
from wevoip.web.root import build_web_app

PLATFORM_TOKEN = "p" * 40


@dataclass
class FakeStore:
    """Only the attribute the web app reads; the database behind it is real."""
    database: object


class Api:
    def __init__(self, base: str, dns: LoopbackDNS | None = None):
        self.base = base
        self.dns = dns

    async def call(self, method, path, token=PLATFORM_TOKEN, json=None, headers=None, data=None):
        all_headers = {"Authorization": f"Bearer {token}"} if token else {}
        all_headers.update(headers or {})
        kwargs = {"headers": all_headers}
        if json is not None:
            kwargs["json"] = json
        if data is not None:
            kwargs["data"] = data
        response = await treq.request(method, self.base + path, **kwargs)
        text = await response.text()
        body = None
        if text:
            import json as jsonlib
            body = jsonlib.loads(text)
        conforms(method, path, response.code, body)
        return response.code, body, response


_DOCUMENT = openapi_document(ROUTES)
_OPERATIONS = [(re.compile("^" + re.sub(r"\\{\w+\\}", "[0-9]+", re.escape(template)) + "$"), template)
               for template in _DOCUMENT["paths"]]


def conforms(method: str, path: str, status: int, body) -> None:
    """Every JSON answer any API test receives matches what /api/openapi.json promises for it."""
    path = path.split("?")[0]
    if body is None or not path.startswith("/api/v1/"):
        return
    templates = [template for pattern, template in _OPERATIONS if pattern.match(path)]
    operation = next((_DOCUMENT["paths"][t][method.lower()] for t in templates
                      if method.lower() in _DOCUMENT["paths"][t]), None)
    if operation is None:
        return
    answer = operation["responses"].get(str(status))
    assert answer is not None, f"{method} {path} answered {status}, which the document does not list"
    schema = answer["content"]["application/json"]["schema"]
    validator = jsonschema.Draft202012Validator({**schema, "components": _DOCUMENT["components"]})
    error = jsonschema.exceptions.best_match(validator.iter_errors(body))
    assert error is None, f"{method} {path} {status}: {error.message} at {list(error.absolute_path)}"


def served_applications() -> dict:
    """The call applications a node with the default configuration serves, found as it finds them."""
    enabled = require(discover(ICallApplication), Config().calls.applications, "call application")
    return {application.name: application for application in enabled}


@pytest.fixture(scope="module")
def dns_server():
    """The tests' own DNS server: the zone example.org, where verified domains publish TXT records."""
    server = LoopbackDNS("example.org", {})
    yield server
    pytest_twisted.blockon(server.close())


@pytest_twisted.async_yield_fixture
async def api(database, dns_server):
    await database.transact(lambda tx: create_api_token(tx, PLATFORM_TOKEN, name="platform"))

    async def health():
        return {"status": "ok"}
    resolver = make_resolver(reactor, DnsConfig(servers=(Listen(*dns_server.address),), timeout_seconds=2))
    app = build_web_app(FakeStore(database), health, Config(), reactor,
                        Services(discover(IDialplanPreset), resolver, applications=served_applications()))
    port = reactor.listenTCP(0, Site(app.resource()), interface="127.0.0.1")
    yield Api(f"http://127.0.0.1:{port.getHost().port}", dns_server)
    await port.stopListening()


@pytest_twisted.async_yield_fixture
async def console(database, dns_server):
    """The web app on loopback with a real SMTP relay behind the outbox: (base URL, relay, drain)."""
    from tests.smtpserver import SmtpServer
    from wevoip.config import MailConfig
    from wevoip.mail import SmtpSender
    from wevoip.outbox import OutboxDrainer
    from twisted.internet.task import Clock

    relay = SmtpServer()
    relay.start()

    async def health():
        return {"status": "ok"}
    resolver = make_resolver(reactor, DnsConfig(servers=(Listen(*dns_server.address),), timeout_seconds=2))
    mail = MailConfig(relay_host="127.0.0.1", relay_port=relay.port.getHost().port)
    app = build_web_app(FakeStore(database), health, replace(Config(), mail=mail), reactor,
                        Services(discover(IDialplanPreset), resolver, applications=served_applications()))
    port = reactor.listenTCP(0, Site(app.resource()), interface="127.0.0.1")
    sender = SmtpSender(reactor, mail, database)
    drainer = OutboxDrainer(Clock(), database, "mail", sender.send)
    yield ConsoleSite(f"http://127.0.0.1:{port.getHost().port}", relay, drainer, database, dns_server)
    await port.stopListening()
    await relay.stop()


@dataclass
class ConsoleSite:
    base: str
    relay: object
    drainer: object
    database: object
    dns_server: object
