"""
The console gate: every page of the route table behind the same checks.

In order: a live store; a body no larger than `MAX_BODY`; the session from the cookie; the
brand (the session's ISP, else the ISP the Host header names); the page's roles (no
session: to the login page; another role: 403); on POST the CSRF token of the session
(or the visitor's cookie) and a same-origin Origin header. Then the handler; a store
NotFound is 404, so another ISP's objects look like missing ones, and a bad value draws
the form again with the error next to its field.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from klein import Klein
from twisted.logger import Logger

from wevoip.store.errors import Invalid, LimitReached, NotFound
from wevoip.store.hostnames import isp_brand, isp_for_host
from wevoip.web.console import (  # noqa: F401 (importing them fills the route table)
    billing_pages, branding, customer_pages, dialplan_pages, isp_pages, login, network_pages, phone_pages,
    platform_pages, report_pages, selfcare_pages, signup)
from wevoip.web.console.context import DEFAULT_BRAND, Asset, Ctx, Download, FormError, Message, Redirect
from wevoip.web.console.routes import LOGIN_PATHS, PAGES, Page
from wevoip.web.console.sessions import Sessions
from wevoip.web.console.templates import Templates
from wevoip.web.console.widgets import Text

log = Logger(namespace="wevoip.web.console")

MAX_BODY = 1024 * 1024


def describe(error: Exception) -> tuple[str, str]:
    """The sentence and the field a person sees for a refused form."""
    if isinstance(error, LimitReached):
        if error.limit == "max_subscribers":
            return (f"Your plan allows {error.value} subscribers and they are all in use: remove one, "
                    f"or ask your provider for a larger plan.", "")
        return f"The plan's limit {error.limit} ({error.value}) is reached.", ""
    field = getattr(error, "field", "")
    problem = getattr(error, "problem", str(error))
    label = field.replace("_", " ").capitalize()
    return f"{label} {problem}." if field else problem, field


class ConsoleApp:
    def __init__(self, app: Klein, store, config, reactor, services):
        """`services` holds the node's dialplan presets and DNS resolver, as the API's do."""
        self.klein = app
        self.services = services
        self.store = store
        self.config = config
        self.reactor = reactor
        self.templates = Templates()
        self.sessions = Sessions(config)
        self.public_url = config.web.public_url
        for page in PAGES:
            self._register(page)

    @property
    def database(self):
        return self.store.database

    def _register(self, page: Page) -> None:
        async def endpoint(request, **params):
            return await self._serve(page, request, params)
        self.klein.route(page.path, methods=[page.method], endpoint=f"console {page.method} {page.path}")(endpoint)

    def base_url(self, request) -> str:
        if self.public_url:
            return self.public_url
        host = request.getHost()
        scheme = "https" if request.isSecure() else "http"
        return f"{scheme}://{host.host}:{host.port}"

    async def _serve(self, page: Page, request, params: dict):
        database = self.database
        if database is None or not database.running:
            request.setResponseCode(503)
            request.setHeader(b"Retry-After", b"5")
            return b"The service is starting; try again in a moment."
        length = int(request.getHeader(b"content-length") or 0)
        if length > MAX_BODY:
            request.setResponseCode(413)
            return b"That upload is too large (at most 1 MiB)."
        session, brand = await database.transact(self._visitor, request)
        set_cookies: list[bytes] = []
        csrf = session["csrf_token"] if session else self.sessions.visitor_csrf(request, set_cookies)
        form, files = _read_form(request)
        ctx = Ctx(request, self, session, brand, params, form, files, csrf, set_cookies=set_cookies)
        try:
            result = await self._guarded(page, ctx)
        except NotFound:
            result = Message(404, "Not found", "There is no such page, or it is not yours to see.")
        return self._answer(ctx, result)

    async def _guarded(self, page: Page, ctx: Ctx):
        if page.roles is not None:
            if ctx.session is None:
                if ctx.request.method == b"GET":
                    return Redirect(f"{LOGIN_PATHS[page.roles[0]]}?next={quote(ctx.request.uri.decode())}")
                return Message(403, "Please log in", "Your session has ended; log in again.")
            if ctx.role not in page.roles:
                return Message(403, "Not allowed", "This page is not part of your console.")
        if ctx.request.method == b"POST" and not self._same_origin(ctx):
            return Message(403, "Form expired", "This form was not sent from this site, or it has expired: "
                                                "go back, reload the page and send it again.")
        try:
            return await page.handler(ctx)
        except (Invalid, LimitReached, FormError) as error:
            if page.form_of is None:
                raise
            ctx.error, ctx.error_field = describe(error)
            ctx.status = 422
            return await page.form_of(ctx)

    def _same_origin(self, ctx: Ctx) -> bool:
        if not self.sessions.csrf_matches(ctx.csrf, ctx.form.get("csrf", "")):
            return False
        origin = ctx.request.getHeader(b"origin")
        if origin is None:
            return True
        host = (ctx.request.getHeader(b"host") or b"").decode("latin-1")
        return urlsplit(origin.decode("latin-1")).netloc == host

    async def _visitor(self, tx, request) -> tuple[dict | None, dict]:
        """The session and the brand, in one read: the session's ISP, else the Host's."""
        session = await self.sessions.current(tx, request)
        if session is not None and session["isp_id"] is not None:
            return session, await isp_brand(tx, session["isp_id"])
        host = (request.getHeader(b"host") or b"").decode("latin-1")
        isp = await isp_for_host(tx, host) if host else None
        return session, isp or DEFAULT_BRAND

    def _answer(self, ctx: Ctx, result) -> bytes:
        request = ctx.request
        for cookie in ctx.set_cookies:
            request.responseHeaders.addRawHeader(b"Set-Cookie", cookie)
        if isinstance(result, Redirect):
            request.setResponseCode(303)
            request.setHeader(b"Location", result.location.encode())
            return b""
        if isinstance(result, Message):
            ctx.status = result.status
            result = ctx.render(result.title, Text(result.text), narrow=True)
        if isinstance(result, Asset):
            request.setHeader(b"Content-Type", result.content_type.encode())
            request.setHeader(b"X-Content-Type-Options", b"nosniff")
            request.setHeader(b"Content-Security-Policy", b"default-src 'none'; style-src 'unsafe-inline'; sandbox")
            request.setHeader(b"Cache-Control", b"private, max-age=300")
            return result.body
        if isinstance(result, Download):
            request.setHeader(b"Content-Type", result.content_type.encode())
            request.setHeader(b"Content-Disposition", f'attachment; filename="{result.filename}"'.encode())
            request.setHeader(b"X-Content-Type-Options", b"nosniff")
            return result.body
        request.setResponseCode(ctx.status)
        return result


def _read_form(request) -> tuple[dict[str, str], dict[str, bytes]]:
    """Text fields as str (first value); a field that is not UTF-8 text is kept as a file."""
    if request.method != b"POST":
        return {}, {}
    form, files = {}, {}
    for key, values in (request.args or {}).items():
        name = key.decode("utf-8", "replace")
        if not values:
            continue
        try:
            form[name] = values[0].decode("utf-8")
        except UnicodeDecodeError:
            form[name] = ""
        files[name] = values[0]
    return form, files
