"""
ISP signup as WeHostVoIP walks it: an e-mail, the confirmation link from the mail, then
account, ISP information, contact details and theming, and a validate step that creates
the ISP and its first admin in one transaction and logs that admin in.

The link's token is kept only as a SHA-256; once followed it moves into an HttpOnly cookie
so it does not stay in the address bar. The mail goes through the outbox, enqueued in the
transaction that records the signup.
"""

from __future__ import annotations

import datetime
import secrets

from wevoip.credentials import hash_password
from wevoip.store import fields, logins, signups
from wevoip.store.errors import Invalid
from wevoip.store.isps import create_isp, isp_by_namespace, set_isp_logo
from wevoip.store.webusers import create_isp_admin
from wevoip.web.console.branding import sniff_image
from wevoip.web.console.context import Ctx, FormError, Message, Redirect
from wevoip.web.console.routes import page
from wevoip.web.console.widgets import Facts, Field, Form, Text

SIGNUP_COOKIE = b"wevoip_signup"
LINK_LIFETIME = datetime.timedelta(hours=24)
MIN_PASSWORD = 12
STEPS = ("account", "isp", "contact", "theme")
_ISP_FIELDS = ("name", "namespace", "currency", "address_line1", "address_line2", "city", "region",
               "postal_code", "country")
_CONTACT_FIELDS = ("contact_name", "contact_email", "contact_phone")


def mail_configured(ctx: Ctx) -> bool:
    return bool(ctx.console.config.mail.relay_host)


NO_MAIL = ("Mail is not configured on this server (no SMTP relay): no confirmation mail will be sent. "
           "Go on anyway; then ask the platform administrator for your confirmation link.")


async def email_form(ctx: Ctx):
    notice = [] if mail_configured(ctx) else [Text(NO_MAIL)]
    return ctx.render("Create your ISP", *notice,
                      Text("Step 1 of 6: your e-mail address. We send you a link to confirm it."),
                      Form("/signup", "Send the confirmation link", [
                          Field("email", "E-mail", "email", ctx.value("email"), required=True, autocomplete="email")]),
                      narrow=True)


@page("/signup", roles=None)
async def signup_page(ctx: Ctx):
    return await email_form(ctx)


@page("/signup", roles=None, method="POST", form_of=email_form)
async def signup_start(ctx: Ctx):
    email = fields.email("email", ctx.value("email"), required=True).lower()
    web = ctx.console.config.web
    key = f"signup:{ctx.source()}"
    counts = await ctx.tx(logins.recent_failures, [key], datetime.timedelta(minutes=web.login_window_minutes))
    if counts.get(key, 0) >= web.login_failures_per_source:
        return Message(429, "Too many signups", "Too many signups from here; try again later.")
    token = secrets.token_urlsafe(32)
    link = f"{ctx.console.base_url(ctx.request)}/signup/confirm?token={token}"

    async def start(tx):
        signup = await signups.start_signup(tx, email, token, LINK_LIFETIME)
        await logins.record_failure(tx, [key])
        await signups.mail_link(tx, signup, token, link)
    await ctx.tx(start)
    if not mail_configured(ctx):
        return ctx.render("Ask for your link", Text(
            f"Mail is not configured on this server, so no mail goes to {email}. Your signup is recorded: "
            f"ask the platform administrator for your confirmation link (they find it under Signups in the "
            f"platform console). It works for 24 hours from when they make it."), narrow=True)
    return ctx.render("Check your mail", Text(f"We sent a confirmation link to {email}. Open it to go on; "
                                              f"it works for 24 hours."), narrow=True)


@page("/signup/confirm", roles=None)
async def signup_confirm(ctx: Ctx):
    token = ctx.request.args.get(b"token", [b""])[0].decode("ascii", "replace")[:100]
    signup = await ctx.tx(signups.signup_by_token, token) if token else None
    if signup is None:
        return Message(404, "Link not valid", "This confirmation link is wrong, used or older than 24 hours. "
                                              "Start again at /signup.")
    await ctx.tx(signups.confirm_signup, signup["id"])
    ctx.set_cookies.append(ctx.console.sessions.cookie(ctx.request, SIGNUP_COOKIE, token,
                                                       int(LINK_LIFETIME.total_seconds())))
    return Redirect("/signup/account")


async def _signup(ctx: Ctx):
    token = (ctx.request.getCookie(SIGNUP_COOKIE) or b"").decode("ascii", "replace")[:100]
    signup = await ctx.tx(signups.signup_by_token, token) if token else None
    if signup is None or signup["confirmed_at"] is None:
        return None
    return signup


def _step_text(number: int, text: str) -> Text:
    return Text(f"Step {number} of 6: {text}")


async def _with_signup(ctx: Ctx, draw):
    signup = await _signup(ctx)
    if signup is None:
        return Redirect("/signup")
    return await draw(ctx, signup)


async def _save_step(ctx: Ctx, step: str, values_of, then: str):
    """A step's POST: its values checked by `values_of(ctx)` (async), saved, on to `then`."""
    signup = await _signup(ctx)
    if signup is None:
        return Redirect("/signup")
    await ctx.tx(signups.save_signup_step, signup["id"], step, await values_of(ctx))
    return Redirect(then)


def _saved(ctx: Ctx, signup, step: str, name: str, default: str = "") -> str:
    if ctx.request.method == b"POST":
        return ctx.value(name, default)
    return signup["data"].get(step, {}).get(name, default) or default


# --- account -----------------------------------------------------------------------------------

async def account_form(ctx: Ctx):
    async def draw(ctx, signup):
        return ctx.render("Create your account", _step_text(2, f"your name and a password for {signup['email']}."),
                          Form("/signup/account", "Next", [
                              Field("full_name", "Full name", value=_saved(ctx, signup, "account", "full_name"),
                                    required=True, autocomplete="name"),
                              Field("password", "Password", "password", required=True, autocomplete="new-password",
                                    help=f"At least {MIN_PASSWORD} characters."),
                              Field("password_again", "Password again", "password", required=True,
                                    autocomplete="new-password")]), narrow=True)
    return await _with_signup(ctx, draw)


@page("/signup/account", roles=None)
async def account_page(ctx: Ctx):
    return await account_form(ctx)


def check_new_password(ctx: Ctx, name: str = "password", again: str = "password_again") -> str:
    password = ctx.form.get(name, "")
    if len(password) < MIN_PASSWORD:
        raise FormError(name, f"must be at least {MIN_PASSWORD} characters")
    if len(password) > 200:
        raise FormError(name, "must be at most 200 characters")
    if password != ctx.form.get(again, ""):
        raise FormError(again, "is not the same as the password")
    return password


async def _account_values(ctx: Ctx) -> dict:
    full_name = fields.text("full_name", ctx.value("full_name"))
    return {"full_name": full_name,
            "password_hash": await hash_password(ctx.console.reactor, check_new_password(ctx))}


@page("/signup/account", roles=None, method="POST", form_of=account_form)
async def account_save(ctx: Ctx):
    return await _save_step(ctx, "account", _account_values, "/signup/isp")


# --- ISP information -----------------------------------------------------------------------------

async def isp_form(ctx: Ctx):
    async def draw(ctx, signup):
        def saved(name, default=""):
            return _saved(ctx, signup, "isp", name, default)
        return ctx.render("ISP information", _step_text(3, "your ISP. Write the namespace down: you log in with it."),
                          Form("/signup/isp", "Next", [
                              Field("name", "Company name", value=saved("name"), required=True),
                              Field("namespace", "Namespace", value=saved("namespace"), required=True,
                                    help="A DNS name of yours, such as kages.example.net; tenants get "
                                         "<customer>.<namespace> as their SIP domain. It cannot change later."),
                              Field("currency", "Currency", value=saved("currency", "USD"), required=True,
                                    help="ISO 4217 code, such as USD, EUR or BRL."),
                              Field("address_line1", "Address", value=saved("address_line1"), required=True),
                              Field("address_line2", "Address (line 2)", value=saved("address_line2")),
                              Field("city", "City", value=saved("city"), required=True),
                              Field("region", "State or region", value=saved("region")),
                              Field("postal_code", "Postal code", value=saved("postal_code")),
                              Field("country", "Country", value=saved("country"), required=True,
                                    help="ISO 3166 code, such as US, BR or DE.")]), narrow=True)
    return await _with_signup(ctx, draw)


@page("/signup/isp", roles=None)
async def isp_page(ctx: Ctx):
    return await isp_form(ctx)


async def _isp_values(ctx: Ctx) -> dict:
    values = {
        "name": fields.text("name", ctx.value("name")),
        "namespace": fields.dns_name("namespace", ctx.value("namespace")),
        "currency": fields.currency("currency", ctx.value("currency")),
        "address_line1": fields.text("address_line1", ctx.value("address_line1")),
        "address_line2": fields.text("address_line2", ctx.value("address_line2"), required=False),
        "city": fields.text("city", ctx.value("city")),
        "region": fields.text("region", ctx.value("region"), required=False),
        "postal_code": fields.text("postal_code", ctx.value("postal_code"), max_length=20, required=False),
        "country": fields.country("country", ctx.value("country")),
    }
    if values["country"] is None:
        raise FormError("country", "is required")
    if await ctx.tx(isp_by_namespace, values["namespace"]) is not None:
        raise FormError("namespace", "is already taken: choose another")
    return values


@page("/signup/isp", roles=None, method="POST", form_of=isp_form)
async def isp_save(ctx: Ctx):
    return await _save_step(ctx, "isp", _isp_values, "/signup/contact")


# --- contact ---------------------------------------------------------------------------------------

async def contact_form(ctx: Ctx):
    async def draw(ctx, signup):
        def saved(name, default=""):
            return _saved(ctx, signup, "contact", name, default)
        return ctx.render("Contact details", _step_text(4, "who we write to with announcements and warnings."),
                          Form("/signup/contact", "Next", [
                              Field("contact_name", "Contact name",
                                    value=saved("contact_name", signup["data"].get("account", {}).get("full_name", "")),
                                    required=True),
                              Field("contact_email", "Contact e-mail", "email",
                                    value=saved("contact_email", signup["email"]), required=True),
                              Field("contact_phone", "Contact phone", "tel", value=saved("contact_phone"),
                                    help="E.164, such as +15550100200.")]), narrow=True)
    return await _with_signup(ctx, draw)


@page("/signup/contact", roles=None)
async def contact_page(ctx: Ctx):
    return await contact_form(ctx)


async def _contact_values(ctx: Ctx) -> dict:
    return {"contact_name": fields.text("contact_name", ctx.value("contact_name")),
            "contact_email": fields.email("contact_email", ctx.value("contact_email"), required=True),
            "contact_phone": fields.e164("contact_phone", ctx.value("contact_phone"), required=False)}


@page("/signup/contact", roles=None, method="POST", form_of=contact_form)
async def contact_save(ctx: Ctx):
    return await _save_step(ctx, "contact", _contact_values, "/signup/theme")


# --- theming --------------------------------------------------------------------------------------

async def theme_form(ctx: Ctx):
    async def draw(ctx, signup):
        def saved(name, default=""):
            return _saved(ctx, signup, "theme", name, default)
        isp_name = signup["data"].get("isp", {}).get("name", "")
        return ctx.render("Theming", _step_text(5, "your logo and colours, shown to your customers."),
                          Form("/signup/theme", "Next", [
                              Field("brand_title", "Title", value=saved("brand_title", isp_name),
                                    help="Shown at the top of every page your customers see."),
                              Field("brand_primary", "Main colour", "color", saved("brand_primary", "#1f6feb")),
                              Field("brand_accent", "Accent colour", "color", saved("brand_accent", "#0b3d91")),
                              Field("logo", "Logo", "file",
                                    help="PNG, JPEG or SVG, at most 512 KiB." +
                                         (" A logo is already uploaded; choose a file to replace it."
                                          if signup["logo"] else ""))],
                               multipart=True), narrow=True)
    return await _with_signup(ctx, draw)


@page("/signup/theme", roles=None)
async def theme_page(ctx: Ctx):
    return await theme_form(ctx)


def theme_values(ctx: Ctx) -> dict:
    return {"brand_title": fields.text("brand_title", ctx.value("brand_title"), max_length=100, required=False),
            "brand_primary": fields.colour("brand_primary", ctx.value("brand_primary")),
            "brand_accent": fields.colour("brand_accent", ctx.value("brand_accent"))}


def uploaded_logo(ctx: Ctx, name: str = "logo") -> tuple[bytes, str] | None:
    data = ctx.files.get(name) or b""
    if not data:
        return None
    kind = sniff_image(data)
    if kind is None:
        raise FormError(name, "must be a PNG, JPEG or SVG image")
    if len(data) > 512 * 1024:
        raise FormError(name, "must be at most 512 KiB")
    return data, kind


@page("/signup/theme", roles=None, method="POST", form_of=theme_form)
async def theme_save(ctx: Ctx):
    signup = await _signup(ctx)
    if signup is None:
        return Redirect("/signup")
    values = theme_values(ctx)
    logo = uploaded_logo(ctx)

    async def save(tx):
        await signups.save_signup_step(tx, signup["id"], "theme", values)
        if logo is not None:
            await signups.set_signup_logo(tx, signup["id"], *logo)
    await ctx.tx(save)
    return Redirect("/signup/validate")


# --- validate --------------------------------------------------------------------------------------

def _missing(signup) -> list[str]:
    labels = {"account": "your account (step 2)", "isp": "the ISP information (step 3)",
              "contact": "the contact details (step 4)", "theme": "the theming (step 5)"}
    return [labels[step] for step in STEPS if step not in signup["data"]]


async def validate_form(ctx: Ctx):
    async def draw(ctx, signup):
        data = signup["data"]
        isp, contact, theme = data.get("isp", {}), data.get("contact", {}), data.get("theme", {})
        missing = _missing(signup)
        sections = [_step_text(6, "check everything, then create your ISP."),
                    Facts([("E-mail", signup["email"]), ("Full name", data.get("account", {}).get("full_name")),
                           ("Company", isp.get("name")), ("Namespace", isp.get("namespace")),
                           ("Currency", isp.get("currency")),
                           ("Address", ", ".join(filter(None, (isp.get("address_line1"), isp.get("address_line2"),
                                                               isp.get("city"), isp.get("region"),
                                                               isp.get("postal_code"), isp.get("country"))))),
                           ("Contact", f"{contact.get('contact_name', '')} <{contact.get('contact_email', '')}> "
                                       f"{contact.get('contact_phone') or ''}".strip()),
                           ("Title and colours", f"{theme.get('brand_title', '')} {theme.get('brand_primary', '')} "
                                                 f"{theme.get('brand_accent', '')}".strip()),
                           ("Logo", "uploaded" if signup["logo"] else "none")])]
        if missing:
            sections.append(Text("Still missing: " + "; ".join(missing) + "."))
        else:
            sections.append(Form("/signup/validate", "Validate and create my ISP"))
        return ctx.render("Validate", *sections, narrow=True)
    return await _with_signup(ctx, draw)


@page("/signup/validate", roles=None)
async def validate_page(ctx: Ctx):
    return await validate_form(ctx)


@page("/signup/validate", roles=None, method="POST", form_of=validate_form)
async def validate_create(ctx: Ctx):
    signup = await _signup(ctx)
    if signup is None:
        return Redirect("/signup")
    if _missing(signup):
        raise Invalid("signup", "is not complete: " + ", ".join(_missing(signup)))
    data = signup["data"]

    async def create(tx):
        isp = await create_isp(tx, **data["isp"], **data["contact"], **data["theme"])
        if signup["logo"] is not None:
            await set_isp_logo(tx, isp["id"], bytes(signup["logo"]), signup["logo_type"])
        admin = await create_isp_admin(tx, isp["id"], email=signup["email"],
                                       full_name=data["account"]["full_name"],
                                       password_hash=data["account"]["password_hash"])
        await signups.finish_signup(tx, signup["id"], isp["id"])
        return isp, admin
    isp, admin = await ctx.tx(create)
    ctx.set_cookies.append(ctx.console.sessions.cookie(ctx.request, SIGNUP_COOKIE, "", 0))
    await ctx.console.sessions.begin(ctx, "isp", isp_id=isp["id"], isp_admin_id=admin["id"])
    return Redirect("/isp?welcome=1")
