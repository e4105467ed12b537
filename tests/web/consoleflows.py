"""Walks through the consoles as people do, for the tests that need a signed-up ISP."""

from __future__ import annotations

import re

from tests.web.browser import Browser

PASSWORD = "a-long-isp-password"
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4"
       b"\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d\x00\x00\x00\x00"
       b"IEND\xaeB`\x82")


async def mailed_link(site, to: str) -> str:
    waiting = site.relay.next_mail()
    await site.drainer.drain()
    message = await waiting
    assert message["To"] == to
    return re.search(r"http://\S+", message.get_content()).group(0)


async def sign_up(site, email: str, namespace: str, *, title: str = "Kages Voice") -> Browser:
    browser = Browser(site.base)
    page = await browser.submit("/signup", "/signup", {"email": email})
    assert "Check your mail" in page, page.text
    link = await mailed_link(site, email)
    page = await browser.get(link)
    assert page.url.endswith("/signup/account"), page.url
    page = await browser.post("/signup/account", {"full_name": "Ana Kages", "password": PASSWORD,
                                                  "password_again": PASSWORD})
    assert page.url.endswith("/signup/isp"), page.error
    page = await browser.post("/signup/isp", {
        "name": "Kages Telecom", "namespace": namespace, "currency": "usd", "address_line1": "1 Main St",
        "city": "Springfield", "region": "IL", "postal_code": "62701", "country": "us"})
    assert page.url.endswith("/signup/contact"), page.error
    page = await browser.post("/signup/contact", {"contact_name": "Ana Kages", "contact_email": email,
                                                  "contact_phone": "+15550100200"})
    assert page.url.endswith("/signup/theme"), page.error
    page = await browser.post("/signup/theme", {"brand_title": title, "brand_primary": "#aa3300",
                                                "brand_accent": "#003366"},
                              files={"logo": ("logo.png", "application/octet-stream", PNG)})
    assert page.url.endswith("/signup/validate"), page.error
    page = await browser.post("/signup/validate", {})
    assert page.url.endswith("/isp?welcome=1"), (page.code, page.error, page.url)
    return browser
