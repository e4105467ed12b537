"""
The first run without a mail relay (issue 12, point 10), against a real node: the log says
mail is not configured at start and whenever mail is queued, the signup page says so, the
platform admin sees the pending signup and hands a fresh link over, and an ISP created
over the API gets its first administrator, who logs into the console.
"""

from __future__ import annotations

import re

import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.task import deferLater

from tests.node import Node
from tests.pg import reachable_tmpdir
from tests.web.browser import Browser
from tests.web.conftest import conforms

ADMIN_PASSWORD = "platform-admin-password"
ADMIN_TOKEN = "wvp_" + "f" * 40
ISP_PASSWORD = "a-long-isp-password"


async def _api(base: str, method: str, path: str, body=None):
    response = await treq.request(method, base + path, json=body,
                                  headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    answer = await response.json()
    conforms(method, path, response.code, answer)
    return response.code, answer


async def _logged(node: Node, text: str) -> None:
    for _ in range(100):
        if text in node.output.text:
            return
        await deferLater(reactor, 0.1, lambda: None)
    raise AssertionError(f"{text!r} not in the log:\n{node.output.text[-3000:]}")


@pytest_twisted.ensureDeferred
async def test_a_first_run_without_a_relay_gets_an_isp_and_its_admins_through_the_platform_admin():
    node = Node(reachable_tmpdir("wevoip-test-firstrun-"),
                env={"WEVOIP_ADMIN_PASSWORD": ADMIN_PASSWORD, "WEVOIP_ADMIN_TOKEN": ADMIN_TOKEN})
    await node.start_ready()
    base = f"http://127.0.0.1:{node.web_port}"
    try:
        assert "mail is not configured (mail.relay_host is empty)" in node.output.text
        # A visitor signs up: the page tells them no mail is coming, and whom to ask.
        visitor = Browser(base)
        page = await visitor.get("/signup")
        assert "Mail is not configured on this server" in page
        page = await visitor.submit("/signup", "/signup", {"email": "ana@kages.example"})
        assert "Ask for your link" in page and "platform administrator" in page and "Check your mail" not in page
        await _logged(node, "mail queued but not sent: 1 mail(s) wait in the outbox")

        # The platform admin sees it waiting, and makes a link to hand over.
        admin = Browser(base)
        page = await admin.submit("/login/platform", "/login/platform",
                                  {"username": "admin", "password": ADMIN_PASSWORD})
        assert "Signups" in page and "Mail is not configured" in page
        page = await admin.get("/platform/signups")
        assert "ana@kages.example" in page and "queued" in page and "not confirmed" in page
        code, listed = await _api(base, "GET", "/api/v1/signups")
        [signup] = listed["items"]
        assert (code, signup["email"], signup["mail_state"]) == (200, "ana@kages.example", "queued")
        page = await admin.post(f"/platform/signups/{signup['id']}/link", {})
        link = re.search(r"http://\S+/signup/confirm\?token=[\w-]+", page.text).group(0)
        assert link.startswith(base) and "hand it over yourself" in page
        # Over the API too; each new link replaces the one before.
        code, renewed = await _api(base, "POST", f"/api/v1/signups/{signup['id']}/link")
        assert code == 200 and renewed["link"].startswith(base + "/signup/confirm?token=")
        page = await visitor.get(link)
        assert page.code == 404 and "Link not valid" in page
        page = await visitor.get(renewed["link"])
        assert page.url.endswith("/signup/account"), page.url

        # An ISP made over the API has nobody who can log in, until the platform admin makes one.
        code, isp = await _api(base, "POST", "/api/v1/isps", {"name": "Flagon", "namespace": "flagon.example.net",
                                                               "currency": "USD"})
        assert code == 201
        page = await admin.get("/platform")
        assert re.search(r"Flagon.*?<td>0</td>", page.text, re.S), "no administrator yet"
        page = await admin.get(f"/platform/isps/{isp['id']}/admins")
        assert "Nobody can log into this ISP's console yet" in page
        page = await admin.post(f"/platform/isps/{isp['id']}/admins", {
            "email": "ops@flagon.example", "full_name": "Flagon Ops", "password": "short", "password_again": "short"})
        assert page.code == 422 and "at least 12 characters" in page.error
        page = await admin.post(f"/platform/isps/{isp['id']}/admins", {
            "email": "ops@flagon.example", "full_name": "Flagon Ops", "password": ISP_PASSWORD,
            "password_again": ISP_PASSWORD})
        assert "ops@flagon.example" in page
        code, error = await _api(base, "POST", f"/api/v1/isps/{isp['id']}/admins",
                                 {"email": "second@flagon.example", "full_name": "Second", "password": "short"})
        assert (code, error["field"]) == (422, "password")
        code, second = await _api(base, "POST", f"/api/v1/isps/{isp['id']}/admins",
                                  {"email": "second@flagon.example", "full_name": "Second", "password": ISP_PASSWORD})
        assert code == 201 and second["email"] == "second@flagon.example" and "password_hash" not in second
        code, admins = await _api(base, "GET", f"/api/v1/isps/{isp['id']}/admins")
        assert [a["email"] for a in admins["items"]] == ["ops@flagon.example", "second@flagon.example"]
        for email in ("ops@flagon.example", "second@flagon.example"):
            isp_admin = Browser(base)
            page = await isp_admin.submit("/login", "/login", {"namespace": "flagon.example.net", "email": email,
                                                               "password": ISP_PASSWORD})
            assert page.url.endswith("/isp") and "Log out" in page, page.error
    finally:
        await node.stop()
