"""
The getting-started flow in a real browser (Debian's Chromium, driven by Playwright)
against a real node: signup, the mailed link, onboarding, a service plan, a customer, a
carrier with a gateway, a dialplan preset, a DID range, a tenant, a subscriber, and the
subscriber's self-care; then a real SIP phone (baresip) registers with the credentials
made in the browser and calls out through that gateway (another baresip, answering as the
carrier), and the call shows in the subscriber's call list. Every page is screenshotted
into test-artifacts/screenshots/, and any error in the browser's console (a script error,
a blocked style, a missing file) fails the test.

Playwright's synchronous API runs in a worker thread, so the reactor stays free for the
SMTP relay that receives the node's mail.
"""

from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytest_twisted
from twisted.internet import reactor, threads
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue

from tests.billing.world import price_north_america
from tests.calls.test_phones_call import EXTRA, Baresip, until
from tests.node import ROOT, Node, free_port
from tests.pg import reachable_tmpdir
from tests.smtpserver import SmtpServer
from tests.web.consoleflows import PNG
from wevoip.routing.dialplan import denormalise
from wevoip.store.database import Database

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = ROOT / "test-artifacts" / "screenshots"
EMAIL = "ana@flagon.example"
PASSWORD = "getting-started-1"
ADMIN_PASSWORD = "platform-admin-secret"
SIP_PASSWORD = "Tr0ub4dor-sip"
DOMAIN = "acme.flagon.example.net"
CARRIER_HOST = "127.0.0.3"
DIALLED = "6175550123"


class Walk:
    """One browser tab that records console errors and screenshots every page it shows."""

    def __init__(self, page, base: str, relay: SmtpServer, gateway_port: int = 0):
        self.page = page
        self.base = base
        self.relay = relay
        self.gateway_port = gateway_port
        self.errors: list[str] = []
        self.shots = 0
        page.set_default_timeout(10_000)
        page.on("console", lambda message: message.type == "error" and self.errors.append(
            f"{page.url}: {message.text}"))
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))

    def shot(self, name: str) -> None:
        self.shots += 1
        self.page.screenshot(path=str(SHOTS / f"{self.shots:02d}-{name}.png"), full_page=True)

    def go(self, path: str, name: str) -> None:
        response = self.page.goto(self.base + path)
        assert response.status == 200, (path, response.status)
        self.shot(name)

    def fill(self, values: dict[str, str]) -> None:
        for name, value in values.items():
            field = self.page.locator(f'form.card [name="{name}"]').last
            if field.evaluate("e => e.tagName") == "SELECT":
                field.select_option(value)
            else:
                field.fill(value)

    def submit(self, values: dict[str, str], button: str, name: str, *, expect: str | None = None) -> None:
        self.fill(values)
        with self.page.expect_navigation():
            self.page.get_by_role("button", name=button, exact=True).click()
        body = self.page.inner_text("main")
        assert self.page.locator("p.error").count() == 0, body[:2000]
        if expect is not None:
            assert expect in body, (expect, body[:2000])
        self.shot(name)

    def mail_link(self) -> str:
        message = threads.blockingCallFromThread(
            reactor, lambda: Deferred.fromCoroutine(self.relay.mail_to(EMAIL)))
        return re.search(r"http://\S+", message.get_content()).group(0)


def in_browser(base: str, relay: SmtpServer, steps, *, gateway_port: int = 0, shots: int = 0) -> Walk:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            walk = Walk(browser.new_page(viewport={"width": 1280, "height": 800}), base, relay, gateway_port)
            walk.shots = shots
            for step in steps:
                step(walk)
            return walk
        finally:
            browser.close()


def getting_started(walk: Walk, logo: Path) -> None:
    _isp_onboarding(walk, logo)
    _isp_console(walk)
    _tenant_console(walk)
    _self_care(walk)
    _platform(walk)


def _isp_onboarding(walk: Walk, logo: Path) -> None:
    page = walk.page
    walk.go("/login", "isp-login")
    walk.go("/signup", "signup-email")
    walk.submit({"email": EMAIL}, "Send the confirmation link", "signup-sent", expect="We sent a confirmation link")
    page.goto(walk.mail_link())
    assert page.url.endswith("/signup/account")
    walk.shot("signup-account")
    walk.submit({"full_name": "Ana Flagon", "password": PASSWORD, "password_again": PASSWORD}, "Next",
                "signup-isp", expect="Namespace")
    walk.submit({"name": "Flagon Telecom", "namespace": "flagon.example.net", "currency": "USD",
                 "address_line1": "10 Harbour Road", "city": "Boston", "region": "MA", "postal_code": "02110",
                 "country": "US"}, "Next", "signup-contact", expect="Contact e-mail")
    walk.submit({"contact_phone": "+16175550100"}, "Next", "signup-theme", expect="Logo")
    page.locator('input[name="brand_primary"]').fill("#7a1f5c")
    page.locator('input[name="brand_accent"]').fill("#1f5c7a")
    page.locator('input[name="logo"]').set_input_files(str(logo))
    walk.submit({"brand_title": "Flagon Voice"}, "Next", "signup-validate", expect="flagon.example.net")
    walk.submit({}, "Validate and create my ISP", "isp-dashboard", expect="To start selling")
    assert page.title().endswith("Flagon Voice")
    assert page.locator("header img.logo").evaluate("img => img.naturalWidth") == 1


def _isp_console(walk: Walk) -> None:
    page = walk.page
    walk.go("/isp/plans", "plans")
    walk.submit({"name": "Default"}, "Create service plan", "plan-created", expect="Default")
    walk.go("/isp/customers", "customers")
    walk.submit({"name": "Acme Corp", "service_plan_id": "Default", "max_subscribers": "5",
                 "max_concurrent_calls": "2", "email": "it@acme.example"}, "Create customer", "customer",
                expect="Log in as this customer")
    walk.go("/isp/carriers", "carriers")
    walk.submit({"name": "Flagon Carrier"}, "Create carrier", "carrier", expect="No gateway yet")
    walk.submit({"host": CARRIER_HOST, "port": str(walk.gateway_port), "strip_digits": "1", "prefix": "00"},
                "Add gateway", "gateway-added", expect=f"{CARRIER_HOST}/32")
    walk.go("/isp/dialplan", "dialplan")
    walk.submit({"preset": "us"}, "Load preset", "dialplan-preset", expect="international with 011")
    walk.submit({"dialled": "6175550123", "country_code": "1", "area_code": "617"}, "Show", "dialplan-translate",
                expect="+16175550123")
    walk.go("/isp/numbers", "numbers")
    walk.submit({"first": "+16175550100", "last": "+16175550109"}, "Add numbers", "numbers-added",
                expect="+16175550109")
    walk.go("/isp/domains", "domains")
    walk.go("/isp/branding", "branding")
    walk.go("/isp/rate-decks", "rate-decks")
    walk.go("/isp/reports", "reports")
    assert page.locator("figure svg.chart rect.bar.minutes").count() == 30
    walk.go("/isp/customers", "customers-list")
    page.get_by_role("link", name="Acme Corp").click()
    page.wait_for_load_state()
    page.get_by_role("link", name="Billing", exact=True).click()
    page.wait_for_load_state()
    walk.shot("customer-billing")
    page.get_by_role("link", name="Customer", exact=True).click()
    page.wait_for_load_state()
    with page.expect_navigation():
        page.get_by_role("button", name="Log in as this customer").click()
    assert page.url.endswith("/tenants")
    walk.shot("tenants")


def _tenant_console(walk: Walk) -> None:
    page = walk.page
    walk.submit({"name": "Acme HQ", "label": "acme"}, "Create tenant", "tenant", expect="acme.flagon.example.net")
    tenant_path = page.url[len(walk.base):]
    # A subscriber's number is one its tenant holds (issue 12, point 7): take it first.
    walk.go(f"{tenant_path}/numbers", "tenant-numbers")
    with page.expect_navigation():
        page.get_by_role("row", name=re.compile(r"\+16175550100")).get_by_role("button", name="Take").click()
    walk.go(tenant_path, "tenant-again")
    walk.submit({"username": "alice", "password": SIP_PASSWORD, "display_name": "Alice", "extension": "100",
                 "e164": "+16175550100", "web_username": "alice", "web_password": "alice-web-password"},
                "Create subscriber", "subscriber", expect="1 of 5 subscribers in use")
    walk.go(f"{tenant_path}/numbers", "tenant-numbers-taken")
    features = page.locator('form.card [name="feature"] option').all_inner_texts()
    assert [f.split(":")[0] for f in features] == ["(none)", "announcement", "echo"], features
    walk.submit({"subscriber_id": "alice 100"}, "Route", "tenant-number-routed", expect="alice")
    walk.go(f"{tenant_path}/registrations", "registrations")
    walk.go(f"{tenant_path}/calls", "tenant-calls")
    walk.submit({"number": "617", "direction": "outbound"}, "Search", "tenant-calls-search", expect="No calls match")
    with page.expect_navigation():
        page.get_by_role("button", name="Log out").click()


def _self_care(walk: Walk) -> None:
    walk.go("/login/subscriber", "subscriber-login")
    walk.submit({"domain": "acme.flagon.example.net", "username": "alice", "password": "alice-web-password"},
                "Log in", "me", expect="alice@acme.flagon.example.net")
    assert walk.page.title().endswith("Flagon Voice")
    walk.go("/me/calls", "my-calls")
    menu = walk.page.inner_text("nav").lower()
    assert "calls" in menu and "forwarding" not in menu and "voicemail" not in menu, menu
    walk.go("/me/password", "password")
    with walk.page.expect_navigation():
        walk.page.get_by_role("button", name="Log out").click()


def _platform(walk: Walk) -> None:
    walk.go("/login/platform", "platform-login")
    walk.submit({"username": "admin", "password": ADMIN_PASSWORD}, "Log in", "platform", expect="flagon.example.net")


def _my_calls(walk: Walk) -> None:
    walk.go("/login/subscriber", "subscriber-login-again")
    walk.submit({"domain": DOMAIN, "username": "alice", "password": "alice-web-password"}, "Log in", "me-again")
    walk.go("/me/calls", "my-calls-after-the-call")
    body = walk.page.inner_text("main")
    assert "+16175550123" in body and "answered" in body, body


async def _price_the_carrier(database) -> None:
    """Billing is set up as the billing tests do (no console page for rate decks yet): the
    carrier's card sells North America at 0.01 a minute, the plan at cost, and the customer
    has 10.00 to spend."""
    async def work(tx):
        isp = await tx.fetch_one("select * from isps where namespace = 'flagon.example.net'")
        names = {"carrier": "Flagon Carrier", "plan": "Default", "customer": "Acme Corp"}
        found = {kind: await tx.fetch_one(f"select * from {table} where isp_id = %s and name = %s",
                                          (isp["id"], names[kind]))
                 for kind, table in (("carrier", "carriers"), ("plan", "service_plans"), ("customer", "customers"))}
        await price_north_america(tx, isp["id"], SimpleNamespace(**found))
    await database.transact(work)


async def _call_out(node: Node, folder: Path, gateway_port: int, database) -> dict:
    """alice's phone registers with what the browser made, and calls out through the gateway."""
    sip_port = Node.sip_port((await node.health())[1], "udp")
    for hertz in (1000, 440):
        await getProcessOutputAndValue("/usr/bin/sox", ["-n", "-r", "8000", "-c", "1", "-b", "16",
                                                        str(folder / f"{hertz}.wav"), "synth", "30", "sine", str(hertz)])
    digits = denormalise("+1" + DIALLED, 1, "00")
    alice = Baresip(folder / "alice", "alice",
                    f'<sip:alice@{DOMAIN}>;auth_pass={SIP_PASSWORD};outbound="sip:127.0.0.1:{sip_port};transport=udp"'
                    f";regint=600;answermode=auto;audio_codecs=PCMU", source=f"aufile,{folder / '1000.wav'}")
    gateway = Baresip(folder / "gateway", digits,
                      f"<sip:{digits}@{CARRIER_HOST}>;regint=0;answermode=auto;audio_codecs=PCMU",
                      source=f"aufile,{folder / '440.wav'}", host=CARRIER_HOST, sip_port=gateway_port)
    for phone in (alice, gateway):
        phone.start()
    try:
        async def registered():
            return await database.fetch("select * from registrations where source like '127.0.0.1:%%'")
        await until(registered, lambda: f"alice to register:\n{alice.output}")
        await alice.command("dial", DIALLED)

        async def established():
            return "Call established" in alice.output and "Call established" in gateway.output
        await until(established, lambda: f"the call to be answered\n{alice.output}\n{gateway.output}\n"
                                         f"{node.output.text[-3000:]}", timeout=30)
        # The gateway as made in the browser: strip one character, then the prefix 00.
        assert f"INVITE sip:{digits}@{CARRIER_HOST}:{gateway_port}" in gateway.output, gateway.output
        await deferLater(reactor, 1, lambda: None)
        await alice.command("hangup")

        async def recorded():
            return await database.fetch("select * from cdrs where direction = 'outbound'")
        [cdr] = await until(recorded, lambda: f"the call record\n{node.output.text[-3000:]}")
        return cdr
    finally:
        for phone in (alice, gateway):
            await phone.stop()


@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_the_getting_started_flow_in_a_browser_ending_in_a_call():
    tmp_path = reachable_tmpdir("wevoip-test-browser-")
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    logo = tmp_path / "logo.png"
    logo.write_bytes(PNG)
    relay = SmtpServer()
    relay_port = relay.start()
    gateway_port = free_port(socket.SOCK_DGRAM)
    node = Node(tmp_path, env={"WEVOIP_ADMIN_PASSWORD": ADMIN_PASSWORD}, sip=True)
    base = f"http://127.0.0.1:{node.web_port}"
    node.config_path.write_text(node.default_config(sip=True).replace(
        "[web]\n", f'[web]\npublic_url = "{base}"\n') + f'[mail]\nrelay_host = "127.0.0.1"\nrelay_port = {relay_port}\n'
        f'sender = "signup@wevoip.example"\n' + EXTRA)
    node.start()
    database = None
    try:
        await node.wait_ready()
        walk = await threads.deferToThread(in_browser, base, relay, [lambda walk: getting_started(walk, logo)],
                                           gateway_port=gateway_port)
        database = Database(reactor, node.dsn, size=2)
        await database.connect()
        await _price_the_carrier(database)
        cdr = await _call_out(node, tmp_path, gateway_port, database)
        after = await threads.deferToThread(in_browser, base, relay, [_my_calls], shots=walk.shots)
    finally:
        if database is not None:
            await database.close()
        await node.stop()
        await relay.stop()
        shutil.rmtree(tmp_path, ignore_errors=True)
    assert walk.errors == [] and after.errors == []
    assert walk.shots > 30
    [(envelope, message)] = relay.inbox
    assert envelope == ("signup@wevoip.example", EMAIL) and message["Subject"].startswith("Confirm your e-mail")
    assert (cdr["direction"], cdr["disposition"], cdr["callee_e164"]) == ("outbound", "answered", "+16175550123")
    assert cdr["caller_e164"] == "+16175550100"  # alice's number, given in the browser
