"""ISP signup in the console: the mail's link, each step's checks, and the ISP it makes."""

import re

import pytest_twisted
from twisted.internet import reactor

from tests.web.browser import Browser
from tests.web.consoleflows import PASSWORD, PNG, mailed_link, sign_up
from tests.web.consolepeople import log_in
from wevoip.credentials import hash_password
from wevoip.store.admins import create_platform_admin
from wevoip.store.isps import isp_by_namespace

PLATFORM_PASSWORD = "platform-password-1"


@pytest_twisted.ensureDeferred
async def test_signup_through_the_mailed_link_makes_the_isp_and_logs_its_admin_in(console):
    browser = await sign_up(console, "ana@kages.example", "kages.example.net")
    page = browser.last
    assert page.code == 200 and "Dashboard" in page and "kages.example.net" in page
    assert "Kages Voice" in page and "--primary: #aa3300" in page.text
    isp = await console.database.transact(isp_by_namespace, "kages.example.net")
    assert (isp["currency"], isp["country"], isp["contact_phone"]) == ("USD", "US", "+15550100200")
    assert bytes(isp["brand_logo"]) == PNG and isp["brand_logo_type"] == "image/png"
    logo = await browser.request("GET", "/brand/logo")
    assert logo.code == 200
    # The link is used up; the admin logs in again with namespace, e-mail and password.
    fresh = Browser(console.base)
    page = await fresh.submit("/login", "/login", {"namespace": "kages.example.net", "email": "ANA@kages.example",
                                                   "password": PASSWORD})
    assert page.url.endswith("/isp"), page.error


@pytest_twisted.ensureDeferred
async def test_a_wrong_or_used_link_leads_nowhere(console):
    browser = Browser(console.base)
    page = await browser.get("/signup/confirm?token=guessed")
    assert page.code == 404 and "Link not valid" in page
    page = await browser.get("/signup/account")
    assert page.url.endswith("/signup")


@pytest_twisted.ensureDeferred
async def test_each_step_names_the_field_that_is_wrong(console):
    await sign_up(console, "first@taken.example", "taken.example.net")
    browser = Browser(console.base)
    await browser.submit("/signup", "/signup", {"email": "second@taken.example"})
    await browser.get(await mailed_link(console, "second@taken.example"))
    page = await browser.post("/signup/account", {"full_name": "B", "password": "short", "password_again": "short"})
    assert page.code == 422 and "Password must be at least 12 characters" in page.error
    page = await browser.post("/signup/account", {"full_name": "B", "password": PASSWORD, "password_again": "other"})
    assert "Password again is not the same" in page.error
    await browser.post("/signup/account", {"full_name": "B", "password": PASSWORD, "password_again": PASSWORD})
    isp = {"name": "B", "namespace": "taken.example.net", "currency": "USD", "address_line1": "x",
           "city": "y", "country": "US"}
    page = await browser.post("/signup/isp", isp)
    assert page.code == 422 and "Namespace is already taken" in page.error
    assert 'value="B"' in page.text  # what was typed stays in the form
    page = await browser.post("/signup/isp", {**isp, "namespace": "not a name"})
    assert "Namespace must be a DNS name" in page.error
    page = await browser.post("/signup/isp", {**isp, "namespace": "b.example.net", "currency": "XYZ"})
    assert "Currency 'XYZ' is not an ISO 4217 currency code" in page.error
    await browser.post("/signup/isp", {**isp, "namespace": "b.example.net"})
    await browser.post("/signup/contact", {"contact_name": "B", "contact_email": "b@b.example"})
    page = await browser.post("/signup/theme", {"brand_primary": "#000000", "brand_accent": "#ffffff"},
                              files={"logo": ("evil.png", "image/png", b"<html><script>alert(1)</script>")})
    assert page.code == 422 and "Logo must be a PNG, JPEG or SVG image" in page.error
    page = await browser.get("/signup/validate")
    assert "Still missing: the theming (step 5)" in page


@pytest_twisted.ensureDeferred
async def test_a_form_without_its_csrf_token_is_refused(console):
    browser = Browser(console.base)
    page = await browser.post("/signup", {"email": "x@y.example"}, csrf="forged-forged-forged-forged-forged")
    assert page.code == 403
    await browser.get("/signup")
    page = await browser.post("/signup", {"email": "x@y.example"}, headers={"Origin": "http://evil.example"})
    assert page.code == 403
    assert console.relay.inbox == [] and await console.drainer.drain() == 0


@pytest_twisted.ensureDeferred
async def test_the_platform_admin_has_a_signup_link_mailed_again_through_the_relay(console):
    """Issue 12, point 10: a link that got lost is replaced by the platform admin; the relay
    gets the new one, and only the new one works."""
    visitor = Browser(console.base)
    page = await visitor.submit("/signup", "/signup", {"email": "lost@kages.example"})
    assert "Check your mail" in page and "Mail is not configured" not in page
    first = await mailed_link(console, "lost@kages.example")
    await console.database.transact(create_platform_admin, "root", await hash_password(reactor, PLATFORM_PASSWORD))
    admin = await log_in(console, "/login/platform", {"username": "root"}, password=PLATFORM_PASSWORD)
    page = await admin.get("/platform/signups")
    assert re.search(r"lost@kages\.example.*?not confirmed.*?sent", page.text, re.S), page.text
    [signup] = await console.database.fetch("select id from signups where email = 'lost@kages.example'")
    page = await admin.post(f"/platform/signups/{signup['id']}/link", {})
    shown = re.search(r"http://\S+/signup/confirm\?token=[\w-]+", page.text).group(0)
    assert "It is mailed again too" in page
    again = await mailed_link(console, "lost@kages.example")
    assert again == shown != first
    assert (await visitor.get(first)).code == 404
    page = await visitor.get(again)
    assert page.url.endswith("/signup/account")
