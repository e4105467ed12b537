"""
Console security: every page of one ISP refuses another ISP's people (404 or 403), roles
keep to their consoles, forms need their CSRF token, sessions live in PostgreSQL with
safe cookies, and logins are rate-limited per account and per source.
"""

import re

import pytest_twisted

from tests.web.browser import Browser
from tests.web.consolepeople import PASSWORD, log_in, people_of
from wevoip.billing.decks import upload_draft
from wevoip.store import ratedecks
from wevoip.store.customers import set_customer_status
from wevoip.web.console.routes import PAGES


def _concrete(path: str, ids: dict) -> str:
    return re.sub(r"<(?:int:)?(\w+)>", lambda m: str(ids[m.group(1)]), path)


async def _snapshot(database, isp_id):
    tables = ["customers", "tenants", "subscribers", "domains", "carriers", "gateways", "service_plans", "dids",
              "dialplan_rules", "customer_admins", "isp_admins", "subscriber_settings", "ledger", "rate_decks",
              "rate_deck_versions", "rates"]
    return {table: await database.fetch(f"select * from {table} where isp_id = %s order by 1, 2", (isp_id,))
            for table in tables}


@pytest_twisted.ensureDeferred
async def test_every_console_page_refuses_another_isps_people(console):
    victim = await people_of(console, "victim.example.net")
    other = await people_of(console, "other.example.net")
    tree = victim.tree

    async def rate_deck(tx):
        deck = await ratedecks.create_deck(tx, tree.isp["id"], name="Card", kind="carrier",
                                           carrier_id=tree.carrier["id"])
        return deck, await upload_draft(tx, tree.isp["id"], deck["id"], "prefix,cost\n1,0.01\n")
    deck, version = await console.database.transact(rate_deck)
    ids = {"deck_id": deck["id"], "version_id": version["id"], "customer_id": tree.customer["id"],
           "carrier_id": tree.carrier["id"], "tenant_id": tree.tenant["id"],
           "subscriber_id": tree.subscriber["id"], "did_id": tree.did["id"], "domain_id": tree.domain["id"],
           "rule_id": tree.rule["id"], "isp_id": tree.isp["id"], "signup_id": 1}
    before = await _snapshot(console.database, tree.isp["id"])
    sessions = {"isp": other.isp_admin, "customer": other.customer_admin, "subscriber": other.subscriber}
    walked = 0
    for page in PAGES:
        if page.roles is None:
            continue
        path = _concrete(page.path, ids)
        for role, browser in sessions.items():
            if page.method == "GET":
                answer = await browser.request("GET", path)
            else:
                await browser.get({"isp": "/isp", "customer": "/tenants", "subscriber": "/me"}[role])
                answer = await browser.post(path, {"status": "SUSPENDED", "name": "x", "first": "+15550188000"},
                                            follow=False)
            walked += 1
            if role not in page.roles:
                assert answer.code == 403, (role, page.method, path, answer.code)
            elif page.path_params:
                assert answer.code in (403, 404), (role, page.method, path, answer.code)
            else:
                assert answer.code in (200, 303, 422), (role, page.method, path, answer.code)
                assert "victim.example.net" not in answer, (role, page.method, path)
    assert walked > 100
    assert await _snapshot(console.database, tree.isp["id"]) == before
    # And the victim's own people still see their own pages.
    page = await victim.isp_admin.get(f"/isp/customers/{tree.customer['id']}")
    assert page.code == 200 and "Acme" in page
    page = await victim.customer_admin.get(f"/tenants/{tree.tenant['id']}")
    assert page.code == 200 and "acme.victim.example.net" in page


@pytest_twisted.ensureDeferred
async def test_without_a_session_pages_send_to_their_login_and_forms_are_refused(console):
    browser = Browser(console.base)
    for path, login in (("/isp/customers", "/login"), ("/tenants", "/login/customer"),
                        ("/me/calls", "/login/subscriber"), ("/platform", "/login/platform")):
        page = await browser.get(path, follow=False)
        assert page.code == 303 and page.location.startswith(login + "?next="), (path, page.location)
    await browser.get("/login")
    page = await browser.post("/isp/plans", {"name": "Sneaky"}, follow=False)
    assert page.code == 403


@pytest_twisted.ensureDeferred
async def test_sessions_are_kept_in_postgresql_with_safe_cookies_and_end_at_logout(console):
    people = await people_of(console, "cookies.example.net")
    browser = Browser(console.base)
    await browser.get("/login")
    answer = await browser.request("POST", "/login", data={
        "namespace": "cookies.example.net", "email": "boss@cookies.example.net", "password": PASSWORD,
        "csrf": browser.last.csrf})
    assert answer.code == 303 and answer.location == "/isp"
    [cookie] = [c for c in answer.headers.getRawHeaders("set-cookie") if c.startswith("wevoip_session=")]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    token = cookie.split(";")[0].split("=", 1)[1]
    stored = await console.database.fetch("select id_sha256 from web_sessions")
    assert stored and all(bytes(row["id_sha256"]) != token.encode() for row in stored)
    # The cookie alone, looked up in PostgreSQL, lets the browser in.
    page = await browser.get("/isp")
    assert page.code == 200 and "Dashboard" in page
    page = await browser.post("/logout", {})
    assert page.url.endswith("/login")
    assert (await browser.get("/isp", follow=False)).code == 303
    assert (await people.isp_admin.get("/isp")).code == 200


@pytest_twisted.ensureDeferred
async def test_logins_are_limited_per_account_and_per_source(console):
    await people_of(console, "limits.example.net")
    browser = Browser(console.base)
    fields = {"namespace": "limits.example.net", "email": "boss@limits.example.net"}
    for _ in range(5):
        page = await browser.submit("/login", "/login", {**fields, "password": "wrong-password"})
        assert page.code == 401 and "not right" in page.error
    page = await browser.submit("/login", "/login", {**fields, "password": PASSWORD})
    assert page.code == 429 and "Too many failed logins" in page
    # Another account from the same source still gets in (the source limit is higher) ...
    await log_in(console, "/login/customer", {"namespace": "limits.example.net", "email": "it@limits.example.net"})
    # ... until the source itself passes its limit, whichever account it tries.
    for _ in range(14):
        await browser.submit("/login/subscriber", "/login/subscriber",
                             {"domain": "acme.limits.example.net", "username": "alice", "password": "nope-nope"})
    page = await browser.submit("/login/subscriber", "/login/subscriber",
                                {"domain": "acme.limits.example.net", "username": "alice", "password": PASSWORD})
    assert page.code == 429


@pytest_twisted.ensureDeferred
async def test_a_suspended_customer_is_logged_out_and_cannot_log_in(console):
    people = await people_of(console, "suspend.example.net")
    tree = people.tree
    await console.database.transact(set_customer_status, tree.isp["id"], tree.customer["id"], "SUSPENDED")
    assert (await people.customer_admin.get("/tenants", follow=False)).code == 303
    assert (await people.subscriber.get("/me", follow=False)).code == 303
    browser = Browser(console.base)
    page = await browser.submit("/login/customer", "/login/customer", {
        "namespace": "suspend.example.net", "email": "it@suspend.example.net", "password": PASSWORD})
    assert page.code == 401 and "suspended" in page.error


@pytest_twisted.ensureDeferred
async def test_next_after_login_stays_on_this_site(console):
    await people_of(console, "next.example.net")
    browser = Browser(console.base)
    await browser.get("/login?next=//evil.example/x")
    answer = await browser.post("/login", {"namespace": "next.example.net", "email": "boss@next.example.net",
                                           "password": PASSWORD, "next": "//evil.example/x"}, follow=False)
    assert answer.location == "/isp"
    await browser.get("/login")
    answer = await browser.post("/login", {"namespace": "next.example.net", "email": "boss@next.example.net",
                                           "password": PASSWORD, "next": "/isp/carriers"}, follow=False)
    assert answer.location == "/isp/carriers"
