"""The ISP console, the tenant console and self-care, driven through their forms."""

import datetime

import pytest_twisted
from twisted.names import dns

from tests.web.browser import Browser
from tests.web.consoleflows import PNG
from tests.web.consolepeople import PASSWORD, log_in, people_of
from wevoip.store import audit, calls
from wevoip.store.isps import get_isp


@pytest_twisted.ensureDeferred
async def test_customers_are_created_activated_suspended_and_logged_into_with_an_audit_trail(console):
    people = await people_of(console, "cust.example.net")
    isp = people.isp_admin
    page = await isp.submit("/isp/customers", "/isp/customers", {
        "name": "Globex", "service_plan_id": str(people.tree.plan["id"]), "max_subscribers": "1",
        "max_concurrent_calls": "3", "billing_mode": "postpaid", "balance_management": "SOFT",
        "credit_limit": "25.50", "status": "WAIT"})
    assert page.code == 200 and "Globex" in page and "WAIT" in page and "25.500000" in page
    customer_id = int(page.url.rsplit("/", 1)[1])
    page = await isp.post(f"/isp/customers/{customer_id}/status", {"status": "ACTIVE"})
    assert "ACTIVE" in page and "Suspend" in page
    assert 'name="max_concurrent_calls" id="f-max_concurrent_calls" value="3"' in page.text
    page = await isp.post(f"/isp/customers/{customer_id}", {
        "service_plan_id": "", "max_subscribers": "1", "max_concurrent_calls": "4", "billing_mode": "prepaid",
        "balance_management": "HARD", "credit_limit": "-1"})
    assert page.code == 422 and "Credit limit must be at least 0" in page.error
    page = await isp.post(f"/isp/customers/{customer_id}", {
        "service_plan_id": "", "max_subscribers": "1", "max_concurrent_calls": "4", "billing_mode": "prepaid",
        "balance_management": "HARD", "credit_limit": "5"})
    assert page.code == 200 and 'id="f-max_concurrent_calls" value="4"' in page.text and "5.000000" in page
    page = await isp.post(f"/isp/customers/{customer_id}/login-as", {})
    assert page.url.endswith("/tenants") and "Globex: tenants" in page and "on their behalf" in page
    page = await isp.post("/tenants", {"name": "Globex PBX", "label": "globex"})
    assert "globex.cust.example.net" in page
    tenant_id = int(page.url.rsplit("/", 1)[1])
    page = await isp.post(f"/tenants/{tenant_id}/subscribers", {
        "username": "homer", "password": "donut-lover-1", "extension": "200", "e164": "+15550142000",
        "is_pilot": "on"})
    assert page.code == 422 and "is not a number this tenant holds" in page.error, page.error
    [number] = await console.database.fetch("insert into dids (isp_id, e164) values (%s, '+15550142000') returning id",
                                            (people.tree.isp["id"],))
    await isp.post(f"/tenants/{tenant_id}/numbers/{number['id']}/take", {})
    page = await isp.post(f"/tenants/{tenant_id}/subscribers", {
        "username": "homer", "password": "donut-lover-1", "extension": "200", "e164": "+15550142000",
        "is_pilot": "on", "web_username": "homer", "web_password": "simpsons-password"})
    assert page.code == 200 and "homer" in page and "1 of 1 subscribers in use" in page
    page = await isp.post(f"/tenants/{tenant_id}/subscribers", {"username": "marge", "password": "blue-hair-99x"})
    assert page.code == 422
    assert "Your plan allows 1 subscribers and they are all in use" in page.error
    homer = (await console.database.fetch("select id, ha1_md5 from subscribers where username = 'homer'"))[0]
    page = await isp.get(f"/tenants/{tenant_id}/subscribers/{homer['id']}")
    assert "homer@globex.cust.example.net" in page
    page = await isp.post(f"/tenants/{tenant_id}/subscribers/{homer['id']}/sip-password", {"password": "homer"})
    assert page.code == 422 and "Password must be at least 10 characters" in page.error
    await isp.post(f"/tenants/{tenant_id}/subscribers/{homer['id']}/sip-password", {"password": "new-donut-pass-7"})
    changed = (await console.database.fetch("select ha1_md5 from subscribers where id = %s", (homer["id"],)))[0]
    assert changed["ha1_md5"] != homer["ha1_md5"]
    await isp.post(f"/tenants/{tenant_id}/subscribers/{homer['id']}/web-login",
                   {"web_username": "homer.simpson", "web_password": "springfield-nuclear"})
    await log_in(console, "/login/subscriber", {"domain": "globex.cust.example.net", "username": "homer.simpson"},
                 password="springfield-nuclear")
    entries = await console.database.transact(audit.list_audit, people.tree.isp["id"])
    assert [e["action"] for e in entries] == ["customer.login_as", "customer.active"]
    entry = entries[0]
    assert entry["actor"] == "Boss <boss@cust.example.net>"
    assert "Globex" in entry["target"] and entry["source"] == "127.0.0.1"
    isp2 = await log_in(console, "/login", {"namespace": "cust.example.net", "email": "boss@cust.example.net"})
    page = await isp2.submit(f"/isp/customers/{customer_id}", f"/isp/customers/{customer_id}/status",
                             {"status": "SUSPENDED"})
    assert "SUSPENDED" in page
    page = await isp2.get("/isp/audit")
    assert "customer.login_as" in page and "customer.suspended" in page


@pytest_twisted.ensureDeferred
async def test_carriers_numbers_and_dialplan(console):
    people = await people_of(console, "net.example.net")
    isp = people.isp_admin
    page = await isp.submit("/isp/carriers", "/isp/carriers", {"name": "Flagon", "max_concurrent_calls": ""})
    carrier_path = page.url[len(console.base):]
    page = await isp.post(f"{carrier_path}/gateways", {
        "host": "198.51.100.7", "port": "5060", "transport": "udp", "strip_digits": "1", "prefix": "00",
        "source_ips": "198.51.100.0/28, 203.0.113.9", "priority": "5"})
    assert "198.51.100.0/28, 203.0.113.9/32" in page and "00" in page
    page = await isp.post(f"{carrier_path}/gateways", {"host": "bad host!", "port": "5060", "transport": "udp",
                                                       "strip_digits": "0", "prefix": "", "priority": "5"})
    assert page.code == 422 and page.error.startswith("Host must be a DNS name")
    page = await isp.submit("/isp/numbers", "/isp/numbers", {"first": "+15550123000", "last": "+15550123009"})
    assert "+15550123009" in page and page.text.count(">free<") >= 10
    assert "Acme / Acme HQ" in page  # the tree's number, held by its tenant
    page = await isp.post("/isp/numbers", {"first": "+15550123005", "last": ""})
    assert page.code == 422 and "already in the inventory" in page.error
    page = await isp.submit("/isp/dialplan", "/isp/dialplan/preset", {"preset": "us"})
    assert "ten digits" in page and "international with 011" in page
    page = await isp.post("/isp/dialplan/translate", {"dialled": "5551234", "country_code": "1", "area_code": "312"})
    assert "+13125551234" in page and "seven-digit local number" in page
    page = await isp.post("/isp/dialplan/translate", {"dialled": "12", "country_code": "1", "area_code": ""})
    assert "no rule matches" in page
    page = await isp.post("/isp/dialplan", {"match": "(a+)+", "subs": "^(.*)$", "replacement": "+1\\1"})
    assert page.code == 422 and "Match" in page.error


@pytest_twisted.ensureDeferred
async def test_a_verified_domain_becomes_usable_once_its_txt_record_is_seen(console):
    people = await people_of(console, "dom.example.net")
    isp = people.isp_admin
    page = await isp.submit("/isp/domains", "/isp/domains", {"name": "pbx.customer.test"})
    assert "waiting for TXT" in page
    token = page.text.split('waiting for TXT &#34;')[1].split("&#34;")[0]
    rows = await console.database.fetch("select id from domains where name = 'pbx.customer.test'")
    page = await isp.post(f"/isp/domains/{rows[0]['id']}/verify", {})
    assert page.code == 422 and "has no TXT record" in page.error
    console.dns_server.add("pbx.customer.test", dns.Record_TXT(token.encode(), ttl=60))
    page = await isp.post(f"/isp/domains/{rows[0]['id']}/verify", {})
    assert page.code == 200 and "verified" in page
    page = await isp.post("/isp/domains", {"name": "sales.dom.example.net"})
    assert "sales.dom.example.net" in page


@pytest_twisted.ensureDeferred
async def test_the_isps_brand_is_on_its_customers_pages_and_its_hostname_maps_to_it(console):
    people = await people_of(console, "brand.example.net")
    isp = people.isp_admin
    await isp.get("/isp/branding")
    page = await isp.post("/isp/branding", {"brand_title": "Brand Voice", "brand_primary": "#112233",
                                            "brand_accent": "#445566", "hostname": "voice.brand.test",
                                            "smtp_sender": "noreply@brand.test"},
                          files={"logo": ("l.png", "image/png", PNG)})
    assert page.code == 200
    isp_row = await console.database.transact(get_isp, people.tree.isp["id"])
    assert (isp_row["hostname"], isp_row["brand_title"]) == ("voice.brand.test", "Brand Voice")
    for browser, path in ((people.customer_admin, "/tenants"), (people.subscriber, "/me")):
        page = await browser.get(path)
        assert "Brand Voice" in page and "--primary: #112233" in page.text and 'src="/brand/logo"' in page.text
        assert (await browser.request("GET", "/brand/logo")).body == PNG
    # Before anyone logs in, the ISP's own hostname shows its brand and needs no namespace.
    visitor = Browser(console.base, host="voice.brand.test")
    page = await visitor.get("/login/customer")
    assert "Brand Voice" in page and 'name="namespace" value="brand.example.net"' in page.text
    page = await visitor.post("/login/customer", {"namespace": "brand.example.net", "email": "it@brand.example.net",
                                                  "password": PASSWORD})
    assert page.url.endswith("/tenants")
    page = await Browser(console.base, host="acme.brand.example.net").get("/login/subscriber")
    assert "Brand Voice" in page
    page = await Browser(console.base, host="unknown.test").get("/login")
    assert "WeVoIP" in page and "Brand Voice" not in page


@pytest_twisted.ensureDeferred
async def test_tenant_numbers_are_taken_routed_and_released(console):
    people = await people_of(console, "nums.example.net")
    tree = people.tree
    await console.database.transact(lambda tx: tx.execute(
        "insert into dids (isp_id, e164) values (%s, '+15550177001')", (tree.isp["id"],)))
    admin = people.customer_admin
    base = f"/tenants/{tree.tenant['id']}/numbers"
    page = await admin.get(base)
    free_id = (await console.database.fetch("select id from dids where e164 = '+15550177001'"))[0]["id"]
    page = await admin.post(f"{base}/{free_id}/take", {})
    assert page.text.index("+15550177001") < page.text.index("Free numbers")
    page = await admin.post(f"{base}/route", {"did_id": str(free_id), "subscriber_id": str(tree.subscriber["id"])})
    row = (await console.database.fetch("select * from dids where id = %s", (free_id,)))[0]
    assert row["subscriber_id"] == tree.subscriber["id"]
    assert "voicemail" not in page and "ivr" not in page and 'value="echo"' in page
    page = await admin.post(f"{base}/route", {"did_id": str(free_id), "subscriber_id": "", "feature": "voicemail:100"})
    assert page.code == 422 and "no installed call application serves 'voicemail'" in page.error
    page = await admin.post(f"{base}/route", {"did_id": str(free_id), "subscriber_id": "", "feature": "echo"})
    row = (await console.database.fetch("select * from dids where id = %s", (free_id,)))[0]
    assert (row["subscriber_id"], row["feature"]) == (None, "echo")
    page = await admin.post(f"{base}/{free_id}/release", {})
    row = (await console.database.fetch("select * from dids where id = %s", (free_id,)))[0]
    assert row["tenant_id"] is None and row["feature"] is None
    page = await admin.get(f"/tenants/{tree.tenant['id']}/registrations")
    assert "sip:alice@192.0.2.50:5060" in page


@pytest_twisted.ensureDeferred
async def test_self_care_offers_no_setting_the_call_path_does_not_read_and_changes_the_password(console):
    """Forwarding and voicemail settings had no effect on any call (issue 12, point 5): the
    pages are gone, from the menu too, and posting to them changes nothing."""
    people = await people_of(console, "care.example.net")
    tree = people.tree
    me = people.subscriber
    page = await me.get("/me")
    assert "alice@acme.care.example.net" in page and "+15550100100" in page
    assert "/me/calls" in page and "/me/password" in page
    assert "forward" not in page.text.lower() and "voicemail" not in page.text.lower()
    for path in ("/me/forwarding", "/me/voicemail"):
        assert (await me.get(path)).code == 404
        assert (await me.post(path, {"forward_always": "+15550100999", "voicemail_enabled": "on"})).code == 404
    assert await console.database.fetch("select * from subscriber_settings where isp_id = %s",
                                        (tree.isp["id"],)) == []
    page = await me.submit("/me/password", "/me/password", {"current": "wrong", "password": "new-password-123",
                                                             "password_again": "new-password-123"})
    assert page.code == 422 and "not your current password" in page.error
    page = await me.post("/me/password", {"current": PASSWORD, "password": "new-password-123",
                                          "password_again": "new-password-123"})
    assert "Your password is changed" in page
    await log_in(console, "/login/subscriber", {"domain": "acme.care.example.net", "username": "alice"},
                 password="new-password-123")


def _cdr(tree, call_id, *, subscriber=True, **values):
    started = datetime.datetime(2026, 3, 10, 9, 0, tzinfo=datetime.timezone.utc)
    return {"direction": "outbound", "started_at": started, "ended_at": started + datetime.timedelta(seconds=95),
            "duration_ms": 95_000, "talk_ms": 90_000, "disposition": "answered", "a_call_id": call_id,
            "customer_id": tree.customer["id"], "tenant_id": tree.tenant["id"],
            "subscriber_id": tree.subscriber["id"] if subscriber else None, "price": "0.12", **values}


@pytest_twisted.ensureDeferred
async def test_the_call_lists_filter_and_export_csv(console):
    people = await people_of(console, "calls.example.net")
    tree = people.tree
    later = datetime.datetime(2026, 3, 12, 18, 0, tzinfo=datetime.timezone.utc)

    async def add(tx):
        await calls.insert_cdr(tx, tree.isp["id"], _cdr(tree, "a", caller_e164="+15550100100",
                                                        callee_e164="+442071234567", callee_dialled="011442071234567",
                                                        media_flow="caller_only"))
        await calls.insert_cdr(tx, tree.isp["id"], _cdr(
            tree, "b", direction="inbound", disposition="no_answer", started_at=later,
            ended_at=later, talk_ms=0, caller_dialled="=HYPERLINK(\"http://evil\")", callee_e164="+15550199000"))
        await calls.insert_cdr(tx, tree.isp["id"], _cdr(tree, "c", subscriber=False, callee_e164="+15550100555"))
    await console.database.transact(add)
    admin = people.customer_admin
    base = f"/tenants/{tree.tenant['id']}/calls"
    page = await admin.get(base)
    assert page.code == 200 and page.text.count("<tr>") == 4 and "1:30" in page
    assert page.text.count("one way: only the caller was heard") == 1
    page = await admin.get(f"{base}?number=4420&direction=&disposition=")
    assert page.text.count("<tr>") == 2 and "+442071234567" in page
    page = await admin.get(f"{base}?since=2026-03-11&until=2026-03-12")
    assert page.text.count("<tr>") == 2 and "no_answer" in page
    page = await admin.get(f"{base}?since=2026-03-11&direction=inbound")
    assert 'href="' + base + '.csv?since=2026-03-11&amp;direction=inbound"' in page.text
    page = await admin.get(f"{base}?since=yesterday")
    assert page.code == 422 and "Since must be a date" in page.error
    download = await admin.request("GET", f"{base}.csv?direction=inbound")
    assert download.code == 200 and download.headers.getRawHeaders("content-type") == ["text/csv; charset=utf-8"]
    lines = download.body.decode().splitlines()
    assert lines[0] == "Started (UTC),Direction,Subscriber,From,To,Talk time,Result,Media,Price"
    assert lines[1].startswith("2026-03-12 18:00:00,inbound,alice,")
    assert len(lines) == 2 and "'=HYPERLINK" in lines[1] and "+15550199000" in lines[1]
    page = await people.subscriber.get("/me/calls")
    assert page.text.count("<tr>") == 3 and "+15550100555" not in page
    await console.database.alone(calls.insert_refusal, tree.isp["id"], call_id="d", node="n", direction="outbound",
                                 sip_code=402, reason="Payment Required: the balance is used up", at=later,
                                 customer_id=tree.customer["id"], tenant_id=tree.tenant["id"],
                                 subscriber_id=tree.subscriber["id"], callee_dialled="011442071234567")
    page = await admin.get(f"{base}?disposition=refused")
    assert page.text.count("<tr>") == 2 and "refused 402 Payment Required: the balance is used up" in page
    download = await admin.request("GET", f"{base}.csv?disposition=refused")
    assert ",refused 402 Payment Required: the balance is used up," in download.body.decode()


@pytest_twisted.ensureDeferred
async def test_long_lists_come_in_pages(console):
    people = await people_of(console, "pages.example.net")
    isp = people.isp_admin
    await isp.submit("/isp/numbers", "/isp/numbers", {"first": "+15550130000", "last": "+15550130149"})
    page = await isp.get("/isp/numbers")
    assert page.text.count("<tr>") == 101 and 'href="/isp/numbers?page=2" rel="next"' in page.text
    # The tree holds +15550100100 (the pilot's own number) and +15550199000 besides these 150.
    assert "+15550100100" in page and "+15550130098" in page and "+15550130099" not in page
    page = await isp.get("/isp/numbers?page=2")
    assert page.text.count("<tr>") == 53 and "+15550130099" in page and "+15550199000" in page
    assert 'rel="next"' not in page.text
    assert 'href="/isp/numbers?page=1" rel="prev"' in page.text
    page = await isp.get("/isp/customers?page=x")
    assert page.code == 200 and "Acme" in page and 'rel="next"' not in page.text
