"""
The phone console: a subscriber's browser as a SIP phone (JsSIP over WebSocket), and the
media state the WebRTC gateway sees for its call.

The page carries no SIP secret: the subscriber types the SIP password, which JsSIP keeps
in memory for the digest and which the server never sends (see ARCHITECTURE.md, "The
phone console"). The WebSocket port is the node's secure one when it has one.
"""

from __future__ import annotations

import json

from wevoip.store import siplocks, subscribers, tenants
from wevoip.web.console import calllist
from wevoip.web.console.context import Ctx
from wevoip.web.console.routes import page
from wevoip.web.console.widgets import Phone, Text

SUBSCRIBER = ("subscriber",)


def _websocket(ctx: Ctx) -> tuple[str, int] | None:
    listeners = ctx.console.services.listeners
    for transport in ("wss", "ws"):
        try:
            return transport, listeners.find("sip", transport).port
        except (KeyError, AttributeError):
            continue
    return None


@page("/phone", roles=SUBSCRIBER)
async def phone_page(ctx: Ctx):
    websocket = _websocket(ctx)
    if websocket is None:
        return ctx.render("Phone", Text("This server takes no SIP over WebSocket, so the phone in the browser "
                                        "is off; ask your provider."))

    async def load(tx):
        subscriber = await subscribers.get_subscriber(tx, ctx.isp_id, ctx.session["subscriber_id"])
        # The browser phone registers from this address: the web login vouches for it even
        # while a SIP password guess has the account locked (wevoip/sip/lockout.py).
        await siplocks.note_source(tx, subscriber["id"], ctx.source(), ctx.console.reactor.seconds())
        return subscriber, await tenants.get_tenant(tx, ctx.isp_id, subscriber["tenant_id"])
    subscriber, tenant = await ctx.tx(load)
    rows = await calllist.search(ctx, subscriber_id=ctx.session["subscriber_id"])
    scheme, port = websocket
    host = (ctx.request.getRequestHostname() or b"localhost").decode("ascii", "replace")
    host = f"[{host}]" if ":" in host else host
    phone = Phone(f"sip:{subscriber['username']}@{tenant['sip_domain']}",
                  subscriber["display_name"] or subscriber["username"], scheme, port)
    return ctx.render("Phone", phone, *calllist.sections(ctx, rows, "/me/calls"),
                      connect=f"'self' {scheme}://{host}:{port}")


@page("/phone/media", roles=SUBSCRIBER)
async def phone_media(ctx: Ctx):
    """The gateway's view of the browser leg whose ICE username fragment is `ufrag`: only
    the two ends of that call have it, from the SDP."""
    ufrag = ctx.query("ufrag")
    gateway = ctx.console.services.gateway
    found = gateway.leg_stats(ufrag) if (gateway is not None and ufrag) else None
    ctx.request.setHeader(b"Content-Type", b"application/json")
    ctx.request.setHeader(b"Cache-Control", b"no-store")
    if not ufrag:
        ctx.status = 422
        return json.dumps({"error": "invalid", "message": "ufrag (the ICE ufrag from the call's SDP) is required"
                           }).encode()
    if found is None:
        ctx.status = 404
        return json.dumps({"error": "not_found", "message": "no call in progress with that ICE ufrag"}).encode()
    return json.dumps(found).encode()
