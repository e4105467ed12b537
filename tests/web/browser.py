"""
A form-filling HTTP client for the consoles: keeps cookies, finds each form's CSRF token in
the page it came from, and follows redirects by hand so tests can see every step.
"""

from __future__ import annotations

import html
import re
from http.cookiejar import CookieJar

from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.web.client import Agent

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Page:
    def __init__(self, code: int, text: str, location: str | None, url: str):
        self.code = code
        self.text = text
        self.location = location
        self.url = url

    @property
    def csrf(self) -> str:
        match = _CSRF.search(self.text)
        assert match, f"no form on {self.url}"
        return html.unescape(match.group(1))

    @property
    def error(self) -> str:
        match = re.search(r'<p class="error" role="alert">(.*?)</p>', self.text, re.S)
        return html.unescape(match.group(1)) if match else ""

    def __contains__(self, text: str) -> bool:
        return text in html.unescape(self.text)


class Browser:
    def __init__(self, base: str, host: str | None = None):
        self.base = base
        self.cookies = CookieJar()
        self.client = HTTPClient(Agent(reactor), cookiejar=self.cookies)
        self.host = host
        self.last: Page | None = None

    def _headers(self, extra: dict | None = None) -> dict:
        headers = {"Host": self.host} if self.host else {}
        headers.update(extra or {})
        return headers

    async def request(self, method: str, path: str, *, data=None, files=None, headers=None) -> Page:
        url = path if path.startswith("http") else self.base + path
        response = await self.client.request(method, url, data=data, files=files,
                                             headers=self._headers(headers), allow_redirects=False)
        location = (response.headers.getRawHeaders("location") or [None])[0]
        body = await response.content()
        page = Page(response.code, body.decode("utf-8", "replace"), location, url)
        page.body = body
        page.headers = response.headers
        return page

    async def get(self, path: str, *, follow: bool = True) -> Page:
        page = await self.request("GET", path)
        while follow and page.code in (301, 302, 303) and page.location:
            page = await self.request("GET", page.location)
        self.last = page
        return page

    async def post(self, path: str, fields: dict | None = None, *, csrf: str | None = None, files=None,
                   follow: bool = True, headers=None) -> Page:
        """Posts with the CSRF token of the last page seen (or `csrf`)."""
        data = dict(fields or {})
        if csrf is None and self.last is not None and _CSRF.search(self.last.text):
            csrf = self.last.csrf
        if csrf is not None:
            data["csrf"] = csrf
        if files:
            data = list(data.items())
        page = await self.request("POST", path, data=data, files=files, headers=headers)
        if follow and page.code in (301, 302, 303) and page.location:
            return await self.get(page.location)
        self.last = page
        return page

    async def submit(self, form_path: str, action: str, fields: dict, **options) -> Page:
        """Open the form's page, then send the form, as a person would."""
        await self.get(form_path)
        return await self.post(action, fields, **options)
