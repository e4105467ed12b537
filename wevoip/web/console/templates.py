"""
Drawing pages with Jinja2 (autoescaped), in the brand of the ISP whose page it is.

The ISP's colours go into an inline style block allowed by a per-response nonce, so the
Content-Security-Policy can forbid every other inline style and all scripts.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from wevoip.web.console import widgets
from wevoip.web.console.routes import HOME_PATHS

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

NAVIGATION = {
    "platform": [("/platform", "ISPs"), ("/platform/signups", "Signups")],
    "isp": [("/isp", "Dashboard"), ("/isp/plans", "Service plans"), ("/isp/customers", "Customers"),
            ("/isp/carriers", "Carriers"), ("/isp/dialplan", "Dialplan"), ("/isp/numbers", "Numbers"),
            ("/isp/rate-decks", "Rate decks"), ("/isp/reports", "Reports"),
            ("/isp/domains", "Domains"), ("/isp/branding", "Branding"), ("/isp/audit", "Audit trail")],
    "customer": [("/tenants", "Tenants")],
    "subscriber": [("/me", "My line"), ("/phone", "Phone"), ("/me/calls", "Calls"),
                   ("/me/password", "Password")],
}


def security_headers(request, nonce: str, connect: str = "") -> None:
    """`connect`: the one WebSocket a page with a script (the phone) may open; only such a
    page may run script, and only this server's files (no inline script, no eval)."""
    script = f"script-src 'self'; connect-src {connect}; media-src 'self' blob:; " if connect else ""
    request.setHeader(b"Content-Security-Policy", (
        f"default-src 'none'; {script}style-src 'self' 'nonce-{nonce}'; img-src 'self'; form-action 'self'; "
        f"frame-ancestors 'none'; base-uri 'none'").encode())
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    request.setHeader(b"Referrer-Policy", b"same-origin")
    request.setHeader(b"X-Frame-Options", b"DENY")
    request.setHeader(b"Cache-Control", b"no-store")


class Templates:
    def __init__(self):
        self.env = Environment(loader=FileSystemLoader(str(TEMPLATES)),
                               autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
        self.env.globals.update(Form=widgets.Form, Table=widgets.Table, Facts=widgets.Facts, Text=widgets.Text)

    def page(self, ctx, title: str, sections, *, heading: str | None = None, narrow: bool = False,
             connect: str = "") -> bytes:
        nonce = secrets.token_urlsafe(16)
        security_headers(ctx.request, nonce, connect)
        ctx.request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        role = ctx.role
        session = ctx.session or {}
        return self.env.get_template("page.html").render(
            title=title, heading=heading if heading is not None else title, sections=sections,
            brand=ctx.brand, nonce=nonce, csrf=ctx.csrf, error=ctx.error, error_field=ctx.error_field,
            role=role, nav=NAVIGATION.get(role, []), home=HOME_PATHS.get(role, "/"),
            impersonated=bool(session.get("impersonator_id")), path=ctx.request.path.decode(),
            narrow=narrow, kind=lambda section: type(section).__name__).encode("utf-8")
