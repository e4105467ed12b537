"""
The four logins (platform admin, ISP admin, customer admin, subscriber) and logout.

Failures are counted per source address and per account in PostgreSQL; past the limits
a login is refused for the window even with the right password. An unknown account costs
the same argon2 work as a wrong password, so timing does not tell which accounts exist.
"""

from __future__ import annotations

import datetime
from urllib.parse import urlsplit

from wevoip.credentials import hash_password, verify_password
from wevoip.store import logins
from wevoip.store.admins import platform_admin_by_username
from wevoip.store.customers import get_customer
from wevoip.store.isps import isp_by_namespace
from wevoip.store.selfcare import subscriber_for_login
from wevoip.store.webusers import customer_admin_for_login, isp_admin_for_login
from wevoip.web.console.context import Ctx, Message, Redirect
from wevoip.web.console.routes import HOME_PATHS, LOGIN_PATHS, page
from wevoip.web.console.widgets import Field, Form, Text

_dummy_hash: list[str] = []


class TooManyAttempts(Exception):
    pass


async def _password_matches(ctx: Ctx, stored: str | None, password: str) -> bool:
    if stored is None:
        if not _dummy_hash:
            _dummy_hash.append(await hash_password(ctx.console.reactor, "not-a-real-password"))
        await verify_password(ctx.console.reactor, _dummy_hash[0], password)
        return False
    return await verify_password(ctx.console.reactor, stored, password)


async def _rate_limited_check(ctx: Ctx, account: str, stored: str | None, password: str) -> bool:
    web = ctx.console.config.web
    window = datetime.timedelta(minutes=web.login_window_minutes)
    keys = [f"source:{ctx.source()}", f"account:{account}"]
    counts = await ctx.tx(logins.recent_failures, keys, window)
    if counts.get(keys[0], 0) >= web.login_failures_per_source \
            or counts.get(keys[1], 0) >= web.login_failures_per_account:
        raise TooManyAttempts()
    if await _password_matches(ctx, stored, password):
        await ctx.tx(logins.clear_failures, keys[1])
        return True
    await ctx.tx(logins.record_failure, keys)
    return False


def _next(ctx: Ctx, role: str) -> str:
    """Where to go after login: a local path from ?next=, else the role's home."""
    target = ctx.value("next")
    parts = urlsplit(target)
    if target.startswith("/") and not target.startswith("//") and not parts.scheme and not parts.netloc \
            and "\\" not in target:
        return target
    return HOME_PATHS[role]


def _login_form(ctx: Ctx, action: str, fields: list[Field]) -> Form:
    next_path = ctx.request.args.get(b"next", [b""])[0].decode("utf-8", "replace") or ctx.value("next")
    return Form(action, "Log in", [*fields, Field("password", "Password", "password", required=True,
                                                   autocomplete="current-password"),
                                   Field("next", "", "hidden", next_path)])


def _namespace_field(ctx: Ctx) -> Field:
    """Asked only where the host does not already say which ISP this is."""
    if ctx.brand.get("id"):
        return Field("namespace", "", "hidden", ctx.brand["namespace"])
    return Field("namespace", "Namespace", value=ctx.value("namespace"), required=True,
                 help="Your provider's namespace, such as kages.example.net")


async def _refused(ctx: Ctx, form_page, text: str = "The login or the password is not right."):
    ctx.error, ctx.status = text, 401
    return await form_page(ctx)


async def _attempt(ctx: Ctx, form_page, account: str, row, stored_hash, role: str, *, suspended: bool = False,
                   **owner):
    if suspended:
        return await _refused(ctx, form_page, "This account is suspended; please contact your provider.")
    try:
        good = await _rate_limited_check(ctx, account, stored_hash, ctx.form.get("password", ""))
    except TooManyAttempts:
        minutes = ctx.console.config.web.login_window_minutes
        return Message(429, "Too many attempts",
                       f"Too many failed logins from here or for this account. Try again in {minutes} minutes.")
    if not good or row is None:
        return await _refused(ctx, form_page)
    await ctx.console.sessions.begin(ctx, role, **owner)
    return Redirect(_next(ctx, role))


# --- platform admin ---------------------------------------------------------------------------

async def platform_form(ctx: Ctx):
    return ctx.render("Platform administration", Text("Log in with the platform administrator's account."),
                      _login_form(ctx, "/login/platform", [
                          Field("username", "Username", value=ctx.value("username"), required=True,
                                autocomplete="username")]), narrow=True)


@page("/login/platform", roles=None)
async def platform_page(ctx: Ctx):
    return await platform_form(ctx)


@page("/login/platform", roles=None, method="POST")
async def platform_login(ctx: Ctx):
    username = ctx.value("username")[:63]
    row = await ctx.tx(platform_admin_by_username, username)
    return await _attempt(ctx, platform_form, f"platform:{username}", row, row and row["password_hash"],
                          "platform", platform_admin_id=row and row["id"])


# --- ISP admin ---------------------------------------------------------------------------------

async def isp_form(ctx: Ctx):
    return ctx.render(f"Log in to {ctx.brand.get('brand_title') or ctx.brand['name']}",
                      _login_form(ctx, "/login", [
                          _namespace_field(ctx),
                          Field("email", "E-mail", "email", ctx.value("email"), required=True,
                                autocomplete="username")]),
                      Text("New provider? Create your ISP at /signup. Customers log in at /login/customer, "
                           "subscribers at /login/subscriber."), heading="ISP console", narrow=True)


@page("/login", roles=None)
async def isp_page(ctx: Ctx):
    return await isp_form(ctx)


async def _isp_of(ctx: Ctx):
    namespace = ctx.value("namespace")[:253].lower()
    return await ctx.tx(isp_by_namespace, namespace) if namespace else None


@page("/login", roles=None, method="POST")
async def isp_login(ctx: Ctx):
    isp = await _isp_of(ctx)
    email = ctx.value("email")[:254].lower()
    row = await ctx.tx(isp_admin_for_login, isp["id"], email) if isp else None
    return await _attempt(ctx, isp_form, f"isp:{ctx.value('namespace').lower()}:{email}", row,
                          row and row["password_hash"], "isp", isp_id=row and row["isp_id"],
                          isp_admin_id=row and row["id"])


# --- customer admin ----------------------------------------------------------------------------

async def customer_form(ctx: Ctx):
    return ctx.render("Tenant console", _login_form(ctx, "/login/customer", [
        _namespace_field(ctx),
        Field("email", "E-mail", "email", ctx.value("email"), required=True, autocomplete="username")]),
        narrow=True)


@page("/login/customer", roles=None)
async def customer_page(ctx: Ctx):
    return await customer_form(ctx)


@page("/login/customer", roles=None, method="POST")
async def customer_login(ctx: Ctx):
    isp = await _isp_of(ctx)
    email = ctx.value("email")[:254].lower()
    row = await ctx.tx(customer_admin_for_login, isp["id"], email) if isp else None
    suspended = row is not None and await _customer_suspended(ctx, row)
    return await _attempt(ctx, customer_form, f"customer:{ctx.value('namespace').lower()}:{email}", row,
                          row and row["password_hash"], "customer", suspended=suspended, isp_id=row and row["isp_id"],
                          customer_id=row and row["customer_id"], customer_admin_id=row and row["id"])


async def _customer_suspended(ctx: Ctx, row) -> bool:
    customer = await ctx.tx(get_customer, row["isp_id"], row["customer_id"])
    return customer["status"] == "SUSPENDED"


# --- subscriber (self-care) --------------------------------------------------------------------

async def subscriber_form(ctx: Ctx):
    return ctx.render("Self-care", _login_form(ctx, "/login/subscriber", [
        Field("domain", "SIP domain", value=ctx.value("domain"), required=True,
              help="Your PBX's domain, such as acme.kages.example.net"),
        Field("username", "Web username", value=ctx.value("username"), required=True, autocomplete="username")]),
        narrow=True)


@page("/login/subscriber", roles=None)
async def subscriber_page(ctx: Ctx):
    return await subscriber_form(ctx)


@page("/login/subscriber", roles=None, method="POST")
async def subscriber_login(ctx: Ctx):
    domain, username = ctx.value("domain")[:253].lower(), ctx.value("username")[:254]
    row = await ctx.tx(subscriber_for_login, domain, username) if domain and username else None
    return await _attempt(ctx, subscriber_form, f"subscriber:{domain}:{username}", row,
                          row and row["web_password_hash"], "subscriber",
                          suspended=row is not None and row["status"] == "SUSPENDED", isp_id=row and row["isp_id"],
                          customer_id=row and row["customer_id"], subscriber_id=row and row["id"])


@page("/logout", roles=None, method="POST")
async def logout(ctx: Ctx):
    role = ctx.role or "isp"
    await ctx.console.sessions.end(ctx)
    return Redirect(LOGIN_PATHS[role])


@page("/", roles=None)
async def home(ctx: Ctx):
    if ctx.session is not None:
        return Redirect(HOME_PATHS[ctx.role])
    return Redirect("/login")
