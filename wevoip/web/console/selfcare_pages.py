"""
Self-care for subscribers (Sipwise's /login/subscriber): the own line, its calls and the web
password. Call forwarding and voicemail settings are not offered: the call path reads
neither, and a setting without effect is a promise broken (issue 12); they come back with
the features that serve them.
"""

from __future__ import annotations

from wevoip.credentials import hash_password, verify_password
from wevoip.store import selfcare, siplocks, subscribers, tenants
from wevoip.web.console import calllist
from wevoip.web.console.context import Ctx, FormError, Redirect
from wevoip.web.console.routes import page
from wevoip.web.console.signup import check_new_password
from wevoip.web.console.widgets import Facts, Field, Form, Text

SUBSCRIBER = ("subscriber",)


def _subscriber_id(ctx: Ctx) -> int:
    return ctx.session["subscriber_id"]


@page("/me", roles=SUBSCRIBER)
async def me_page(ctx: Ctx):
    now = ctx.console.reactor.seconds()

    async def load(tx):
        subscriber = await subscribers.get_subscriber(tx, ctx.isp_id, _subscriber_id(ctx))
        # Logged in with the web password, this address is the subscriber's own: its phones
        # register from here even while a SIP password guess has the account locked.
        await siplocks.note_source(tx, subscriber["id"], ctx.source(), now)
        return (subscriber, await tenants.get_tenant(tx, ctx.isp_id, subscriber["tenant_id"]),
                await siplocks.lock_of(tx, subscriber["id"]))
    subscriber, tenant, lock = await ctx.tx(load)
    notices = []
    if lock is not None and lock["locked_until"].timestamp() > now:
        notices.append(Text(
            f"Someone has been guessing your SIP password from the internet. Until "
            f"{lock['locked_until']:%Y-%m-%d %H:%M} UTC your phones register only from addresses they used "
            f"lately; this address ({ctx.source()}) is one of them now. If you did not expect this, ask your "
            f"administrator for a new SIP password, which also ends the lock."))
    return ctx.render(subscriber["display_name"] or subscriber["username"], *notices, Facts([
        ("PBX", tenant["name"]), ("SIP address", f"{subscriber['username']}@{tenant['sip_domain']}"),
        ("Extension", subscriber["extension"]), ("Number", subscriber["e164"]),
        ("Web login", subscriber["web_username"])], title="My line"),
        Text("Set up your phone with the SIP address above and your SIP password; your administrator has it."))


async def password_form(ctx: Ctx):
    done = ctx.request.args.get(b"changed") == [b"1"]
    return ctx.render("Password", *([Text("Your password is changed.")] if done else []),
                      Form("/me/password", "Change password", [
                          Field("current", "Current password", "password", required=True,
                                autocomplete="current-password"),
                          Field("password", "New password", "password", required=True, autocomplete="new-password",
                                help="At least 12 characters."),
                          Field("password_again", "New password again", "password", required=True,
                                autocomplete="new-password")]), narrow=True)


@page("/me/password", roles=SUBSCRIBER)
async def password_page(ctx: Ctx):
    return await password_form(ctx)


@page("/me/password", roles=SUBSCRIBER, method="POST", form_of=password_form)
async def password_change(ctx: Ctx):
    stored = await ctx.tx(selfcare.web_password_hash, ctx.isp_id, _subscriber_id(ctx))
    if stored is None or not await verify_password(ctx.console.reactor, stored, ctx.form.get("current", "")):
        raise FormError("current", "is not your current password")
    new_hash = await hash_password(ctx.console.reactor, check_new_password(ctx))
    await ctx.tx(selfcare.set_web_password, ctx.isp_id, _subscriber_id(ctx), new_hash)
    return Redirect("/me/password?changed=1")


@page("/me/calls", roles=SUBSCRIBER)
async def calls_page(ctx: Ctx):
    rows = await calllist.search(ctx, subscriber_id=_subscriber_id(ctx))
    return ctx.render("My calls", *calllist.sections(ctx, rows, "/me/calls"))


@page("/me/calls.csv", roles=SUBSCRIBER)
async def calls_csv(ctx: Ctx):
    return calllist.as_csv(await calllist.search(ctx, subscriber_id=_subscriber_id(ctx)), "my-calls.csv")
