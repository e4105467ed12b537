"""
The platform admin's pages, the one view that crosses ISPs: every ISP with its
administrators, and the ISP signups in progress.

On a first run without a mail relay nobody receives a signup link, and an ISP created
over the API has nobody who can log in; here the platform admin hands out a fresh link
(mailed again as well) and creates an ISP's first administrator (issue 12, point 10).
"""

from __future__ import annotations

import secrets

from wevoip.credentials import hash_password
from wevoip.store import signups, webusers
from wevoip.store.isps import get_isp, list_isps
from wevoip.web.console.context import Ctx, Redirect
from wevoip.web.console.routes import page
from wevoip.web.console.signup import LINK_LIFETIME, check_new_password, mail_configured
from wevoip.web.console.widgets import Button, Facts, Field, Form, Table, Text

PLATFORM = ("platform",)


def _mail_notice(ctx: Ctx) -> list[Text]:
    if mail_configured(ctx):
        return []
    return [Text("Mail is not configured on this server (mail.relay_host is empty): no signup link and no "
                 "notice is mailed. Hand signup links out from Signups; create ISPs' administrators here.")]


@page("/platform", roles=PLATFORM)
async def platform_page(ctx: Ctx):
    rows = await ctx.tx(list_isps, limit=1000)
    admins = await ctx.tx(webusers.count_isp_admins)
    for row in rows:
        row["admins"] = admins.get(row["id"], 0)
        row["_href"] = f"/platform/isps/{row['id']}/admins"
    return ctx.render("ISPs", *_mail_notice(ctx),
                      Table([("name", "Name"), ("namespace", "Namespace"), ("currency", "Currency"),
                             ("contact_email", "Contact"), ("admins", "Administrators"), ("created_at", "Created")],
                            rows, link="name", empty="No ISP has signed up yet."))


async def admins_form(ctx: Ctx):
    isp_id = ctx.params["isp_id"]

    async def load(tx):
        return await get_isp(tx, isp_id), await webusers.list_isp_admins(tx, isp_id)
    isp, rows = await ctx.tx(load)
    return ctx.render(f"{isp['name']}: administrators",
                      Table([("email", "E-mail"), ("full_name", "Name"), ("created_at", "Created")], rows,
                            empty="Nobody can log into this ISP's console yet: create its first administrator."),
                      Text(f"They log in at /login with the namespace {isp['namespace']}."),
                      Form(f"/platform/isps/{isp_id}/admins", "Create administrator", [
                          Field("email", "E-mail", "email", ctx.value("email"), required=True),
                          Field("full_name", "Full name", value=ctx.value("full_name"), required=True),
                          Field("password", "Password", "password", required=True, autocomplete="new-password",
                                help="At least 12 characters; tell it to them, they can change it."),
                          Field("password_again", "Password again", "password", required=True,
                                autocomplete="new-password")], title="New administrator"))


@page("/platform/isps/<int:isp_id>/admins", roles=PLATFORM)
async def admins_page(ctx: Ctx):
    return await admins_form(ctx)


@page("/platform/isps/<int:isp_id>/admins", roles=PLATFORM, method="POST", form_of=admins_form)
async def admin_create(ctx: Ctx):
    isp_id = ctx.params["isp_id"]
    password_hash = await hash_password(ctx.console.reactor, check_new_password(ctx))

    async def create(tx):
        await get_isp(tx, isp_id)
        return await webusers.create_isp_admin(tx, isp_id, email=ctx.value("email"),
                                               full_name=ctx.value("full_name"), password_hash=password_hash)
    await ctx.tx(create)
    return Redirect(f"/platform/isps/{isp_id}/admins")


@page("/platform/signups", roles=PLATFORM)
async def signups_page(ctx: Ctx):
    rows = await ctx.tx(signups.pending_signups, limit=1000)
    for row in rows:
        row["state"] = "link expired" if row["expired"] else "confirmed" if row["confirmed_at"] else "not confirmed"
        row["mail"] = f"{row['mail_state']}: {row['mail_error']}" if row["mail_error"] else row["mail_state"]
        row["_buttons"] = [Button("New link", f"/platform/signups/{row['id']}/link")]
    return ctx.render("Signups", *_mail_notice(ctx),
                      Text("ISP signups not finished yet. A new link replaces the old one, is mailed again "
                           "and is shown to you here once, to hand over yourself."),
                      Table([("email", "E-mail"), ("created_at", "Started"), ("state", "State"),
                             ("expires_at", "Link valid until"), ("mail", "Mail")], rows, buttons="_buttons",
                            empty="No signup is in progress."))


@page("/platform/signups/<int:signup_id>/link", roles=PLATFORM, method="POST")
async def signup_link(ctx: Ctx):
    token = secrets.token_urlsafe(32)
    link = f"{ctx.console.base_url(ctx.request)}/signup/confirm?token={token}"

    async def renew(tx):
        signup = await signups.renew_link(tx, ctx.params["signup_id"], token, LINK_LIFETIME)
        await signups.mail_link(tx, signup, token, link)
        return signup
    signup = await ctx.tx(renew)
    mailed = "It is mailed again too." if mail_configured(ctx) else "Mail is not configured: hand it over yourself."
    return ctx.render("New signup link", Facts([("E-mail", signup["email"]), ("Link", link),
                                                ("Valid until", signup["expires_at"])]),
                      Text(f"The previous link no longer works. {mailed} This page is the only place the link "
                           f"is shown."))
