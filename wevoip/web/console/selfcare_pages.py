"""
Self-care for subscribers (Sipwise's /login/subscriber): the own line, call forwarding,
voicemail settings and the web password.
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


async def forwarding_form(ctx: Ctx):
    settings = await ctx.tx(selfcare.subscriber_settings, ctx.isp_id, _subscriber_id(ctx))
    v = ctx.value if ctx.form else (lambda name, default="": settings.get(name) or default)
    return ctx.render("Call forwarding", Text("A number (+ and digits) or an extension of your PBX; "
                                              "leave a field empty for no forwarding."),
                      Form("/me/forwarding", "Save", [
                          Field("forward_always", "Always forward to", value=v("forward_always")),
                          Field("forward_busy", "When busy, forward to", value=v("forward_busy")),
                          Field("forward_no_answer", "When not answered, forward to", value=v("forward_no_answer")),
                          Field("no_answer_seconds", "Ring for (seconds) before that", "number",
                                v("no_answer_seconds", "20"))]))


@page("/me/forwarding", roles=SUBSCRIBER)
async def forwarding_page(ctx: Ctx):
    return await forwarding_form(ctx)


@page("/me/forwarding", roles=SUBSCRIBER, method="POST", form_of=forwarding_form)
async def forwarding_save(ctx: Ctx):
    await ctx.tx(lambda tx: selfcare.update_subscriber_settings(
        tx, ctx.isp_id, _subscriber_id(ctx), forward_always=ctx.value("forward_always"),
        forward_busy=ctx.value("forward_busy"), forward_no_answer=ctx.value("forward_no_answer"),
        no_answer_seconds=ctx.number("no_answer_seconds")))
    return Redirect("/me/forwarding")


async def voicemail_form(ctx: Ctx):
    settings = await ctx.tx(selfcare.subscriber_settings, ctx.isp_id, _subscriber_id(ctx))
    posted = bool(ctx.form)
    return ctx.render("Voicemail", Facts([("PIN", "set" if settings["voicemail_pin_set"] else "not set")]),
                      Form("/me/voicemail", "Save", [
                          Field("voicemail_enabled", "Voicemail answers when I do not", "checkbox",
                                ctx.checked("voicemail_enabled") if posted else settings["voicemail_enabled"]),
                          Field("voicemail_email", "Send new messages to", "email",
                                ctx.value("voicemail_email") if posted else settings["voicemail_email"]),
                          Field("voicemail_attach", "Attach the recording to the mail", "checkbox",
                                ctx.checked("voicemail_attach") if posted else settings["voicemail_attach"]),
                          Field("pin", "New PIN", "password", autocomplete="off",
                                help="4 to 8 digits; empty keeps the PIN.")]))


@page("/me/voicemail", roles=SUBSCRIBER)
async def voicemail_page(ctx: Ctx):
    return await voicemail_form(ctx)


@page("/me/voicemail", roles=SUBSCRIBER, method="POST", form_of=voicemail_form)
async def voicemail_save(ctx: Ctx):
    changes = {"voicemail_enabled": ctx.checked("voicemail_enabled"), "voicemail_email": ctx.value("voicemail_email"),
               "voicemail_attach": ctx.checked("voicemail_attach")}
    if ctx.value("pin"):
        changes["voicemail_pin_hash"] = await hash_password(ctx.console.reactor,
                                                            selfcare.voicemail_pin("pin", ctx.value("pin")))
    await ctx.tx(lambda tx: selfcare.update_subscriber_settings(tx, ctx.isp_id, _subscriber_id(ctx), **changes))
    return Redirect("/me/voicemail")


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
