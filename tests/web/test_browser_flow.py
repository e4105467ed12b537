"""
The getting-started flow in a real browser (Debian's Chromium, driven by Playwright)
against a real node: signup, the mailed link, onboarding, a service plan, a customer, a
carrier with a gateway, a dialplan preset, a DID range, a tenant, a subscriber, and the
subscriber's self-care. Every page is screenshotted into test-artifacts/screenshots/, and
any error in the browser's console (a script error, a blocked style, a missing file) fails
the test.

Playwright's synchronous API runs in a worker thread, so the reactor stays free for the
SMTP relay that receives the node's mail.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor, threads
from twisted.internet.defer import Deferred

from tests.node import ROOT, Node
from tests.pg import reachable_tmpdir
from tests.smtpserver import SmtpServer
from tests.web.consoleflows import PNG

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = ROOT / "test-artifacts" / "screenshots"
EMAIL = "ana@flagon.example"
PASSWORD = "getting-started-1"
ADMIN_PASSWORD = "platform-admin-secret"


class Walk:
    """One browser tab that records console errors and screenshots every page it shows."""

    def __init__(self, page, base: str, relay: SmtpServer):
        self.page = page
        self.base = base
        self.relay = relay
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


def getting_started(base: str, relay: SmtpServer, logo: Path) -> Walk:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            walk = Walk(browser.new_page(viewport={"width": 1280, "height": 800}), base, relay)
            _isp_onboarding(walk, logo)
            _isp_console(walk)
            _tenant_console(walk)
            _self_care(walk)
            _platform(walk)
            return walk
        finally:
            browser.close()


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
    walk.submit({"host": "127.0.0.1", "port": "5080", "strip_digits": "1", "prefix": "00"}, "Add gateway",
                "gateway-added", expect="127.0.0.1/32")
    walk.go("/isp/dialplan", "dialplan")
    walk.submit({"preset": "us"}, "Load preset", "dialplan-preset", expect="international with 011")
    walk.submit({"dialled": "6175550123", "country_code": "1", "area_code": "617"}, "Show", "dialplan-translate",
                expect="+16175550123")
    walk.go("/isp/numbers", "numbers")
    walk.submit({"first": "+16175550100", "last": "+16175550109"}, "Add numbers", "numbers-added",
                expect="+16175550109")
    walk.go("/isp/domains", "domains")
    walk.go("/isp/branding", "branding")
    walk.go("/isp/customers", "customers-list")
    page.get_by_role("link", name="Acme Corp").click()
    page.wait_for_load_state()
    with page.expect_navigation():
        page.get_by_role("button", name="Log in as this customer").click()
    assert page.url.endswith("/tenants")
    walk.shot("tenants")


def _tenant_console(walk: Walk) -> None:
    page = walk.page
    walk.submit({"name": "Acme HQ", "label": "acme"}, "Create tenant", "tenant", expect="acme.flagon.example.net")
    tenant_path = page.url[len(walk.base):]
    walk.submit({"username": "alice", "password": "Tr0ub4dor-sip", "display_name": "Alice", "extension": "100",
                 "e164": "+16175550100", "web_username": "alice", "web_password": "alice-web-password"},
                "Create subscriber", "subscriber", expect="1 of 5 subscribers in use")
    walk.go(f"{tenant_path}/numbers", "tenant-numbers")
    with page.expect_navigation():
        page.get_by_role("row", name=re.compile(r"\+16175550100")).get_by_role("button", name="Take").click()
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
    walk.go("/me/forwarding", "forwarding")
    walk.submit({"forward_busy": "+16175550199", "forward_no_answer": "100"}, "Save", "forwarding-saved")
    walk.go("/me/voicemail", "voicemail")
    walk.go("/me/password", "password")
    with walk.page.expect_navigation():
        walk.page.get_by_role("button", name="Log out").click()


def _platform(walk: Walk) -> None:
    walk.go("/login/platform", "platform-login")
    walk.submit({"username": "admin", "password": ADMIN_PASSWORD}, "Log in", "platform", expect="flagon.example.net")


@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_the_getting_started_flow_in_a_browser():
    tmp_path = reachable_tmpdir("wevoip-test-browser-")
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    logo = tmp_path / "logo.png"
    logo.write_bytes(PNG)
    relay = SmtpServer()
    relay_port = relay.start()
    node = Node(tmp_path, env={"WEVOIP_ADMIN_PASSWORD": ADMIN_PASSWORD})
    base = f"http://127.0.0.1:{node.web_port}"
    node.config_path.write_text(node.default_config().replace(
        "[web]\n", f'[web]\npublic_url = "{base}"\n') + f'[mail]\nrelay_port = {relay_port}\n'
        f'sender = "signup@wevoip.example"\n')
    node.start()
    try:
        await node.wait_ready()
        walk = await threads.deferToThread(getting_started, base, relay, logo)
    finally:
        await node.stop()
        await relay.stop()
        shutil.rmtree(tmp_path, ignore_errors=True)
    assert walk.errors == []
    assert walk.shots > 30
    [(envelope, message)] = relay.inbox
    assert envelope == ("signup@wevoip.example", EMAIL) and message["Subject"].startswith("Confirm your e-mail")
