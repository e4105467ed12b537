"""The platform admin's page: every ISP on the platform, the one view that crosses ISPs."""

from __future__ import annotations

from wevoip.store.isps import list_isps
from wevoip.web.console.context import Ctx
from wevoip.web.console.routes import page
from wevoip.web.console.widgets import Table


@page("/platform", roles=("platform",))
async def platform_page(ctx: Ctx):
    rows = await ctx.tx(list_isps, limit=1000)
    return ctx.render("ISPs", Table([("name", "Name"), ("namespace", "Namespace"), ("currency", "Currency"),
                                     ("contact_email", "Contact"), ("created_at", "Created")], rows,
                                    empty="No ISP has signed up yet."))
