"""Sessions live in PostgreSQL: another node (or this one after a restart) knows them, and
the housekeeping timer clears what has expired."""

import datetime

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.web.server import Site

from tests.web.conftest import FakeStore
from tests.web.browser import Browser
from tests.web.consolepeople import PASSWORD, people_of
from wevoip.config import Config
from wevoip.store import logins
from wevoip.web.console.housekeeping import ConsoleHousekeeping
from wevoip.web.root import build_web_app


@pytest_twisted.ensureDeferred
async def test_a_session_made_on_one_node_works_on_another(console):
    people = await people_of(console, "nodes.example.net")

    async def health():
        return {"status": "ok"}
    second = build_web_app(FakeStore(console.database), health, Config(), reactor)
    port = reactor.listenTCP(0, Site(second.resource()), interface="127.0.0.1")
    try:
        people.isp_admin.base = f"http://127.0.0.1:{port.getHost().port}"
        page = await people.isp_admin.get("/isp/customers")
        assert page.code == 200 and "Acme" in page
        page = await people.isp_admin.post("/isp/plans", {"name": "Made on node two"})
        assert "Made on node two" in page
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_housekeeping_clears_expired_sessions_failures_and_signups(console):
    people = await people_of(console, "sweep.example.net")
    database = console.database
    await database.transact(logins.record_failure, ["account:old"])
    await database.transact(lambda tx: tx.execute("update login_failures set at = now() - interval '1 hour'"))
    await database.transact(lambda tx: tx.execute(
        "insert into signups (email, token_sha256, expires_at) values ('x@y.example', %s, now() - interval '1 s')",
        (b"\x01" * 32,)))
    await database.transact(lambda tx: tx.execute("update web_sessions set expires_at = now() - interval '1 s'"
                                                  " where role = 'subscriber'"))
    clock = Clock()
    housekeeping = ConsoleHousekeeping(clock, database, datetime.timedelta(minutes=15), every_seconds=60)
    housekeeping.startService()
    try:
        await housekeeping.last_sweep  # the first sweep runs at start
        assert housekeeping.swept == 3
        assert await database.transact(housekeeping.sweep) == 0
        roles = [row["role"] for row in await database.fetch("select role from web_sessions order by role")]
        assert roles == ["customer", "isp"]
        assert await database.fetch("select * from login_failures where key = 'account:old'") == []
        assert await database.fetch("select * from signups") == []
        assert (await people.subscriber.get("/me", follow=False)).code == 303
        assert (await people.isp_admin.get("/isp")).code == 200
    finally:
        housekeeping.stopService()


@pytest_twisted.ensureDeferred
async def test_behind_https_cookies_are_secure_and_pages_carry_a_strict_policy(console):
    from dataclasses import replace

    await people_of(console, "tls.example.net")
    config = Config()
    config = replace(config, web=replace(config.web, public_url="https://voice.tls.example.net"))

    async def health():
        return {"status": "ok"}
    app = build_web_app(FakeStore(console.database), health, config, reactor)
    port = reactor.listenTCP(0, Site(app.resource()), interface="127.0.0.1")
    try:
        browser = Browser(f"http://127.0.0.1:{port.getHost().port}")
        page = await browser.get("/login")
        policy = page.headers.getRawHeaders("content-security-policy")[0]
        assert "default-src 'none'" in policy and "script-src" not in policy and "frame-ancestors 'none'" in policy
        assert page.headers.getRawHeaders("x-frame-options") == ["DENY"]
        [visitor] = page.headers.getRawHeaders("set-cookie")
        assert visitor.startswith("wevoip_csrf=") and visitor.endswith("; Secure")
        # A browser sends a Secure cookie over TLS only; this test speaks plain HTTP, so by hand.
        answer = await browser.request("POST", "/login", data={
            "namespace": "tls.example.net", "email": "boss@tls.example.net", "password": PASSWORD,
            "csrf": page.csrf}, headers={"Cookie": visitor.split(";")[0]})
        cookies = answer.headers.getRawHeaders("set-cookie")
        assert any(c.startswith("wevoip_session=") and c.endswith("; Secure") for c in cookies), cookies
    finally:
        await port.stopListening()
