"""
White label: the stylesheet, the icon and the logo of the ISP whose page is shown.

The logo is the brand of the request (the session's ISP, else the one the Host header
names); an SVG logo is served sandboxed, so a script inside it cannot run.
"""

from __future__ import annotations

from pathlib import Path

from wevoip.store.hostnames import isp_logo
from wevoip.web.console.context import Asset, Ctx, Message
from wevoip.web.console.routes import page

STATIC = Path(__file__).resolve().parent.parent / "static"
_FILES = {"console.css": "text/css; charset=utf-8", "favicon.svg": "image/svg+xml",
          "phone.js": "text/javascript; charset=utf-8"}


@page("/static/<name>", roles=None)
async def static_file(ctx: Ctx):
    name = ctx.params["name"]
    if name not in _FILES:
        return Message(404, "Not found", "There is no such file.")
    return Asset(_FILES[name], (STATIC / name).read_bytes())


@page("/favicon.ico", roles=None)
async def favicon(ctx: Ctx):
    return Asset(_FILES["favicon.svg"], (STATIC / "favicon.svg").read_bytes())


@page("/brand/logo", roles=None)
async def logo(ctx: Ctx):
    logo = await ctx.tx(isp_logo, ctx.brand["id"]) if ctx.brand.get("has_logo") else None
    if logo is None:
        return Message(404, "Not found", "This provider has no logo.")
    return Asset(logo["brand_logo_type"], bytes(logo["brand_logo"]))


def sniff_image(data: bytes) -> str | None:
    """The type of an uploaded logo from its first bytes, never from what the browser says."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    head = data[:512].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in data[:2048].lower()):
        return "image/svg+xml"
    return None
