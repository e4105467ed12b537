"""
The tenant console of a customer admin: tenants (PBXs), their subscribers (the pilot with
the E.164 base number, extensions, SIP and web credentials), numbers taken from the ISP's
inventory and routed to a subscriber, and the live registrations.
"""

from __future__ import annotations

from wevoip.credentials import hash_password
from wevoip.store import dids, domains, registrations, selfcare, subscribers, tenants
from wevoip.store.database import Tx
from wevoip.store.errors import NotFound
from wevoip.store.customers import get_customer
from wevoip.web.console import calllist
from wevoip.web.console.context import Ctx, FormError, Redirect
from wevoip.web.console.routes import page
from wevoip.web.console.widgets import Button, Facts, Field, Form, Links, Table, Text

CUSTOMER = ("customer",)


async def own_tenant(tx: Tx, ctx: Ctx, tenant_id: int):
    """The customer's own tenant; another customer's (or ISP's) is NotFound, like a missing one."""
    tenant = await tenants.get_tenant(tx, ctx.isp_id, tenant_id)
    if tenant["customer_id"] != ctx.session["customer_id"]:
        raise NotFound("tenant")
    return tenant


def tenant_links(tenant_id: int) -> Links:
    base = f"/tenants/{tenant_id}"
    return Links([(base, "Subscribers"), (f"{base}/numbers", "Numbers"),
                  (f"{base}/registrations", "Registrations"), (f"{base}/calls", "Calls"),
                  (f"{base}/webrtc", "WebRTC calls now")])


# --- tenants ---------------------------------------------------------------------------------------

async def tenants_form(ctx: Ctx):
    customer_id = ctx.session["customer_id"]

    async def load(tx):
        return (await get_customer(tx, ctx.isp_id, customer_id),
                await tenants.list_tenants(tx, ctx.isp_id, customer_id, limit=1000),
                await domains.list_domains(tx, ctx.isp_id, limit=1000))
    customer, rows, domain_rows = await ctx.tx(load)
    names = {d["id"]: d["name"] for d in domain_rows}
    for row in rows:
        row["_href"] = f"/tenants/{row['id']}"
        row["sip_domain"] = names.get(row["domain_id"], "")
    verified = [(str(d["id"]), d["name"]) for d in domain_rows
                if d["kind"] == "verified" and d["verified_at"] is not None
                and d["id"] not in {row["domain_id"] for row in rows}]
    fields = [Field("name", "Name", value=ctx.value("name"), required=True),
              Field("label", "SIP domain", value=ctx.value("label"),
                    help=f"One word: the PBX's domain becomes <word>.{ctx.brand['namespace']}.")]
    if verified:
        fields.append(Field("domain_id", "Or a verified domain", "select", ctx.value("domain_id"),
                            [("", "(use the word above)")] + verified))
    return ctx.render(f"{customer['name']}: tenants", Table(
        [("name", "Tenant"), ("sip_domain", "SIP domain"), ("created_at", "Created")], rows, link="name",
        empty="No tenant yet: create your first PBX below."),
        Form("/tenants", "Create tenant", fields, title="New tenant"))


@page("/tenants", roles=CUSTOMER)
async def tenants_page(ctx: Ctx):
    return await tenants_form(ctx)


@page("/tenants", roles=CUSTOMER, method="POST", form_of=tenants_form)
async def tenants_create(ctx: Ctx):
    domain_id = ctx.number("domain_id", required=False)
    label = None if domain_id else ctx.value("label")
    if domain_id is None and not label:
        raise FormError("label", "is required (or choose a verified domain)")
    row = await ctx.tx(lambda tx: tenants.create_tenant(tx, ctx.isp_id, ctx.session["customer_id"],
                                                        name=ctx.value("name"), label=label, domain_id=domain_id))
    return Redirect(f"/tenants/{row['id']}")


# --- subscribers ---------------------------------------------------------------------------------------

async def tenant_form(ctx: Ctx):
    tenant_id = ctx.params["tenant_id"]

    async def load(tx):
        tenant = await own_tenant(tx, ctx, tenant_id)
        return (tenant, await subscribers.list_subscribers(tx, ctx.isp_id, tenant_id, limit=1000),
                await get_customer(tx, ctx.isp_id, tenant["customer_id"]),
                await subscribers.count_subscribers(tx, ctx.isp_id, tenant["customer_id"]))
    tenant, rows, customer, used = await ctx.tx(load)
    for row in rows:
        row["_href"] = f"/tenants/{tenant_id}/subscribers/{row['id']}"
        row["role"] = "pilot" if row["is_pilot"] else "extension"
        row["web"] = row["web_username"] or "—"
        row["_buttons"] = [Button("Delete", f"/tenants/{tenant_id}/subscribers/{row['id']}/delete", danger=True)]
    has_pilot = any(row["is_pilot"] for row in rows)
    v = ctx.value
    return ctx.render(tenant["name"], tenant_links(tenant_id),
                      Text(f"SIP domain {tenant['sip_domain']}: phones register as <username>@{tenant['sip_domain']}. "
                           f"{used} of {customer['max_subscribers']} subscribers in use."),
                      Table([("username", "SIP username"), ("display_name", "Name"), ("extension", "Extension"),
                             ("e164", "Number"), ("role", "Role"), ("web", "Web login")], rows, link="username",
                            buttons="_buttons",
                            empty="No subscriber yet: start with the pilot, the PBX's main number.", title="Subscribers"),
                      Form(f"/tenants/{tenant_id}/subscribers", "Create subscriber", [
                          Field("username", "SIP username", value=v("username"), required=True),
                          Field("password", "SIP password", "password", required=True, autocomplete="new-password",
                                help="At least 10 characters; not the username, not only digits."),
                          Field("display_name", "Display name", value=v("display_name")),
                          Field("extension", "Extension", value=v("extension"), help="2 to 8 digits."),
                          Field("e164", "E.164 number", value=v("e164"),
                                help="One of this tenant's numbers (Numbers tab): carriers are shown it as the "
                                     "caller ID. The pilot's number is the PBX's base number."),
                          Field("is_pilot", "This is the pilot subscriber", "checkbox",
                                ctx.checked("is_pilot") if ctx.form else not has_pilot),
                          Field("web_username", "Web username", value=v("web_username"),
                                help="For the self-care pages; empty: no web login."),
                          Field("web_password", "Web password", "password", autocomplete="new-password")],
                           title="New subscriber"))


@page("/tenants/<int:tenant_id>", roles=CUSTOMER)
async def tenant_page(ctx: Ctx):
    return await tenant_form(ctx)


@page("/tenants/<int:tenant_id>/subscribers", roles=CUSTOMER, method="POST", form_of=tenant_form)
async def subscriber_create(ctx: Ctx):
    tenant_id = ctx.params["tenant_id"]
    web_username = ctx.value("web_username") or None
    web_password = ctx.form.get("web_password", "")
    if web_username and len(web_password) < 12:
        raise FormError("web_password", "must be at least 12 characters for a web login")
    web_hash = await hash_password(ctx.console.reactor, web_password) if web_username else None

    async def create(tx):
        await own_tenant(tx, ctx, tenant_id)
        return await subscribers.create_subscriber(
            tx, ctx.isp_id, tenant_id, username=ctx.value("username"), password=ctx.form.get("password", ""),
            web_username=web_username, web_password_hash=web_hash, display_name=ctx.value("display_name"),
            extension=ctx.value("extension") or None, e164=ctx.value("e164") or None,
            is_pilot=ctx.checked("is_pilot"))
    await ctx.tx(create)
    return Redirect(f"/tenants/{tenant_id}")


async def _own_subscriber(tx: Tx, ctx: Ctx):
    tenant = await own_tenant(tx, ctx, ctx.params["tenant_id"])
    subscriber = await subscribers.get_subscriber(tx, ctx.isp_id, ctx.params["subscriber_id"])
    if subscriber["tenant_id"] != tenant["id"]:
        raise NotFound("subscriber")
    return tenant, subscriber


async def subscriber_form(ctx: Ctx):
    tenant, subscriber = await ctx.tx(_own_subscriber, ctx)
    base = f"/tenants/{tenant['id']}/subscribers/{subscriber['id']}"
    return ctx.render(f"{tenant['name']}: {subscriber['username']}", tenant_links(tenant["id"]), Facts([
        ("SIP address", f"{subscriber['username']}@{tenant['sip_domain']}"), ("Name", subscriber["display_name"]),
        ("Extension", subscriber["extension"]), ("Number", subscriber["e164"]),
        ("Web login", subscriber["web_username"])]),
        Form(f"{base}/sip-password", "Set SIP password", [
            Field("password", "New SIP password", "password", required=True, autocomplete="new-password",
                  help="At least 10 characters; the phone must be set up again with it.")], title="SIP password"),
        Form(f"{base}/web-login", "Save web login", [
            Field("web_username", "Web username", value=ctx.value("web_username") or subscriber["web_username"] or "",
                  help="Empty: no web login."),
            Field("web_password", "New web password", "password", autocomplete="new-password",
                  help="At least 12 characters.")], title="Self-care login"))


@page("/tenants/<int:tenant_id>/subscribers/<int:subscriber_id>", roles=CUSTOMER)
async def subscriber_page(ctx: Ctx):
    return await subscriber_form(ctx)


@page("/tenants/<int:tenant_id>/subscribers/<int:subscriber_id>/sip-password", roles=CUSTOMER, method="POST",
      form_of=subscriber_form)
async def subscriber_sip_password(ctx: Ctx):
    async def change(tx):
        _, subscriber = await _own_subscriber(tx, ctx)
        await subscribers.set_sip_password(tx, ctx.isp_id, subscriber["id"], ctx.form.get("password", ""))
    await ctx.tx(change)
    return Redirect(f"/tenants/{ctx.params['tenant_id']}/subscribers/{ctx.params['subscriber_id']}")


@page("/tenants/<int:tenant_id>/subscribers/<int:subscriber_id>/web-login", roles=CUSTOMER, method="POST",
      form_of=subscriber_form)
async def subscriber_web_login(ctx: Ctx):
    username, password = ctx.value("web_username") or None, ctx.form.get("web_password", "")
    if username and len(password) < 12:
        raise FormError("web_password", "must be at least 12 characters for a web login")
    password_hash = await hash_password(ctx.console.reactor, password) if username else None

    async def change(tx):
        _, subscriber = await _own_subscriber(tx, ctx)
        await selfcare.set_web_login(tx, ctx.isp_id, subscriber["id"], username, password_hash)
    await ctx.tx(change)
    return Redirect(f"/tenants/{ctx.params['tenant_id']}/subscribers/{ctx.params['subscriber_id']}")


@page("/tenants/<int:tenant_id>/subscribers/<int:subscriber_id>/delete", roles=CUSTOMER, method="POST")
async def subscriber_delete(ctx: Ctx):
    async def delete(tx):
        _, subscriber = await _own_subscriber(tx, ctx)
        await subscribers.delete_subscriber(tx, ctx.isp_id, subscriber["id"])
    await ctx.tx(delete)
    return Redirect(f"/tenants/{ctx.params['tenant_id']}")


# --- numbers ----------------------------------------------------------------------------------------------

async def numbers_form(ctx: Ctx):
    tenant_id = ctx.params["tenant_id"]

    async def load(tx):
        tenant = await own_tenant(tx, ctx, tenant_id)
        return (tenant, await dids.list_dids(tx, ctx.isp_id, tenant_id, limit=1000),
                await dids.list_dids(tx, ctx.isp_id, state="free", limit=200),
                await subscribers.list_subscribers(tx, ctx.isp_id, tenant_id, limit=1000))
    tenant, own, free, subscriber_rows = await ctx.tx(load)
    usernames = {s["id"]: s["username"] for s in subscriber_rows}
    for row in own:
        row["routed"] = usernames.get(row["subscriber_id"]) or row["feature"] or "not routed"
        row["_buttons"] = [Button("Release", f"/tenants/{tenant_id}/numbers/{row['id']}/release", danger=True)]
    for row in free:
        row["_buttons"] = [Button("Take", f"/tenants/{tenant_id}/numbers/{row['id']}/take")]
    base = f"/tenants/{tenant_id}/numbers"
    sections = [tenant_links(tenant_id),
                Table([("e164", "Number"), ("routed", "Routed to")], own, buttons="_buttons",
                      title="This tenant's numbers", empty="No number yet: take one from the inventory below.")]
    if own:
        sections.append(Form(f"{base}/route", "Route", [
            Field("did_id", "Number", "select", ctx.value("did_id"), [(str(d["id"]), d["e164"]) for d in own]),
            Field("subscriber_id", "To a subscriber", "select", ctx.value("subscriber_id"),
                  [("", "(none)")] + [(str(s["id"]), f"{s['username']} {s['extension'] or ''}".strip())
                                      for s in subscriber_rows]),
            Field("feature", "Or to a feature", "select", ctx.value("feature"),
                  [("", "(none)")] + [(name, f"{name}: {application.description}")
                                      for name, application in sorted(ctx.console.services.applications.items())],
                  help="Only the features this server answers; both empty: not routed.")], title="Route a number"))
    sections.append(Table([("e164", "Number")], free, buttons="_buttons", title="Free numbers of your provider",
                          empty="Your provider has no free numbers."))
    return ctx.render(f"{tenant['name']}: numbers", *sections)


@page("/tenants/<int:tenant_id>/numbers", roles=CUSTOMER)
async def numbers_page(ctx: Ctx):
    return await numbers_form(ctx)


async def _with_own_did(ctx: Ctx, work):
    tenant_id, did_id = ctx.params["tenant_id"], ctx.params.get("did_id") or ctx.number("did_id")

    async def run(tx):
        await own_tenant(tx, ctx, tenant_id)
        did = await dids.get_did(tx, ctx.isp_id, did_id)
        return await work(tx, did)
    await ctx.tx(run)
    return Redirect(f"/tenants/{tenant_id}/numbers")


@page("/tenants/<int:tenant_id>/numbers/<int:did_id>/take", roles=CUSTOMER, method="POST", form_of=numbers_form)
async def number_take(ctx: Ctx):
    return await _with_own_did(ctx, lambda tx, did: dids.allocate_did(tx, ctx.isp_id, did["id"],
                                                                       ctx.params["tenant_id"]))


def _require_held(did, tenant_id: int) -> None:
    if did["tenant_id"] != tenant_id:
        raise NotFound("DID")


@page("/tenants/<int:tenant_id>/numbers/<int:did_id>/release", roles=CUSTOMER, method="POST", form_of=numbers_form)
async def number_release(ctx: Ctx):
    async def release(tx, did):
        _require_held(did, ctx.params["tenant_id"])
        return await dids.release_did(tx, ctx.isp_id, did["id"])
    return await _with_own_did(ctx, release)


@page("/tenants/<int:tenant_id>/numbers/route", roles=CUSTOMER, method="POST", form_of=numbers_form)
async def number_route(ctx: Ctx):
    subscriber_id = ctx.number("subscriber_id", required=False)
    feature = ctx.value("feature") or None

    async def route(tx, did):
        _require_held(did, ctx.params["tenant_id"])
        return await dids.route_did(tx, ctx.isp_id, did["id"], subscriber_id, feature,
                                    ctx.console.services.applications)
    return await _with_own_did(ctx, route)


# --- registrations ---------------------------------------------------------------------------------------

@page("/tenants/<int:tenant_id>/registrations", roles=CUSTOMER)
async def registrations_page(ctx: Ctx):
    tenant_id = ctx.params["tenant_id"]

    async def load(tx):
        return (await own_tenant(tx, ctx, tenant_id),
                await registrations.tenant_registrations(tx, ctx.isp_id, tenant_id))
    tenant, rows = await ctx.tx(load)
    return ctx.render(f"{tenant['name']}: registrations", tenant_links(tenant_id), Table(
        [("username", "Subscriber"), ("contact", "Contact"), ("source", "From"), ("transport", "Transport"),
         ("user_agent", "Phone"), ("expires_at", "Expires")], rows, empty="No phone is registered right now."))


# --- calls ------------------------------------------------------------------------------------------

def _counted(counters: dict) -> str:
    return f"{counters['packets']} / {counters['octets']} B"


def webrtc_rows(calls: list[dict]) -> list[dict]:
    """One row per browser leg of the calls in progress, as `calls.live` gives them."""
    rows = []
    for call in calls:
        for leg in call["legs"]:
            ice, dtls, plain = leg["ice"], leg["dtls"], leg["plain"]
            rows.append({
                "call": f"{call['caller'].removeprefix('sip:')} → {call['dialled']}",
                "answered": f"{call['answered_at']:%H:%M:%S}" if call["answered_at"] else "ringing",
                "side": leg["side"],
                "ice": ice["state"] + (f" {ice['nominated']}" if ice["nominated"] else "")
                + ("" if ice["consent"] else ", no consent") + f", {ice['checks_answered']} checks",
                "dtls": f"{dtls['state']} ({dtls['role'] or '-'})" + (f", {dtls['cipher']}" if dtls["cipher"] else "")
                + (f": {dtls['failure']}" if dtls["failure"] else ""),
                "srtp": leg["srtp"]["profile"] or "no keys",
                "from_browser": _counted(leg["from_browser"]), "to_browser": _counted(leg["to_browser"]),
                "plain": f"{_counted(plain['to_relay'])} out, {_counted(plain['from_relay'])} in",
                "one_way": "ONE WAY" if call["one_way"] else "no"})
    return rows


@page("/tenants/<int:tenant_id>/webrtc", roles=CUSTOMER)
async def webrtc_page(ctx: Ctx):
    """What the WebRTC gateway sees of the tenant's browser calls right now, on this node."""
    tenant_id = ctx.params["tenant_id"]
    tenant = await ctx.tx(own_tenant, ctx, tenant_id)
    calls = ctx.console.services.calls
    found = calls.webrtc_calls(ctx.isp_id, customer_id=tenant["customer_id"], tenant_id=tenant_id) if calls else []
    node = ctx.console.config.node.name
    return ctx.render(f"{tenant['name']}: WebRTC calls now", tenant_links(tenant_id), Links(
        [(f"/tenants/{tenant_id}/webrtc", "Refresh")]), Text(
        f"Calls with a browser leg that node {node} carries at this moment; packets / bytes each way "
        "(from and to the browser, and between the gateway and the relay). A call whose media flows only "
        "one way is flagged here and, when it ends, in its record."), Table(
        [("call", "Call"), ("answered", "Answered (UTC)"), ("side", "Browser is"), ("ice", "ICE"),
         ("dtls", "DTLS"), ("srtp", "SRTP"), ("from_browser", "From browser"), ("to_browser", "To browser"),
         ("plain", "Relay side"), ("one_way", "One way")], webrtc_rows(found),
        empty="No WebRTC call of this tenant is in progress on this node."))


async def _tenant_calls(ctx: Ctx):
    tenant_id = ctx.params["tenant_id"]
    tenant = await ctx.tx(own_tenant, ctx, tenant_id)
    return tenant, await calllist.search(ctx, tenant_id=tenant_id)


@page("/tenants/<int:tenant_id>/calls", roles=CUSTOMER)
async def calls_page(ctx: Ctx):
    tenant, rows = await _tenant_calls(ctx)
    return ctx.render(f"{tenant['name']}: calls", tenant_links(tenant["id"]),
                      *calllist.sections(ctx, rows, f"/tenants/{tenant['id']}/calls"))


@page("/tenants/<int:tenant_id>/calls.csv", roles=CUSTOMER)
async def calls_csv(ctx: Ctx):
    tenant, rows = await _tenant_calls(ctx)
    return calllist.as_csv(rows, f"calls-tenant-{tenant['id']}.csv")
