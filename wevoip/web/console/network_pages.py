"""
The ISP console's network pages: carriers and gateways, the number inventory (single DIDs
and ranges, with who holds each), SIP domains, and the ISP's branding and hostname.
"""

from __future__ import annotations

from wevoip.resolver import LookupFailed, txt_values
from wevoip.store import carriers, dids, domains, hostnames, isps
from wevoip.web.console.context import Ctx, FormError, Redirect
from wevoip.web.console.routes import page
from wevoip.web.console.signup import theme_values, uploaded_logo
from wevoip.web.console.widgets import Button, Facts, Field, Form, Table, Text

ISP = ("isp",)


# --- carriers and gateways -------------------------------------------------------------------

async def carriers_form(ctx: Ctx):
    rows = await ctx.tx(carriers.list_carriers, ctx.isp_id, limit=1000)
    for row in rows:
        row["_href"] = f"/isp/carriers/{row['id']}"
        row["state"] = "enabled" if row["enabled"] else "disabled"
    return ctx.render("Carriers", Table([("name", "Name"), ("state", "State"),
                                         ("max_concurrent_calls", "Max calls")], rows, link="name",
                                        empty="No carrier yet: calls have nowhere to go."),
                      Form("/isp/carriers", "Create carrier", [
                          Field("name", "Name", value=ctx.value("name"), required=True),
                          Field("max_concurrent_calls", "Max concurrent calls", "number",
                                ctx.value("max_concurrent_calls"), help="Empty: no limit.")],
                           title="New carrier"))


@page("/isp/carriers", roles=ISP)
async def carriers_page(ctx: Ctx):
    return await carriers_form(ctx)


@page("/isp/carriers", roles=ISP, method="POST", form_of=carriers_form)
async def carriers_create(ctx: Ctx):
    row = await ctx.tx(lambda tx: carriers.create_carrier(
        tx, ctx.isp_id, name=ctx.value("name"),
        max_concurrent_calls=ctx.number("max_concurrent_calls", required=False)))
    return Redirect(f"/isp/carriers/{row['id']}")


async def carrier_form(ctx: Ctx):
    carrier_id = ctx.params["carrier_id"]

    async def load(tx):
        return (await carriers.get_carrier(tx, ctx.isp_id, carrier_id),
                await carriers.list_gateways(tx, ctx.isp_id, carrier_id, limit=1000))
    carrier, gateways = await ctx.tx(load)
    for row in gateways:
        row["sources"] = _trusted(row)
        row["port"] = row["port"] or "SRV"
    v = ctx.value
    return ctx.render(carrier["name"], Table(
        [("host", "Host"), ("port", "Port"), ("transport", "Transport"), ("strip_digits", "Strip"),
         ("prefix", "Prefix"), ("sources", "Accepts calls from"), ("priority", "Priority")], gateways,
        title="Gateways", empty="No gateway yet."),
        Form(f"/isp/carriers/{carrier_id}/gateways", "Add gateway", [
            Field("host", "Host", value=v("host"), required=True, help="IP address or DNS name of the carrier's SBC."),
            Field("port", "Port", "number", v("port"),
                  help="Empty: 5060 (5061 for TLS) for an IP address; for a DNS name, DNS SRV finds it."),
            Field("transport", "Transport", "select", v("transport", "udp"),
                  [("udp", "UDP"), ("tcp", "TCP"), ("tls", "TLS")]),
            Field("strip_digits", "Strip digits", "number", v("strip_digits", "0"),
                  help="How many leading digits to remove before sending a number to this gateway."),
            Field("prefix", "Prefix", value=v("prefix"), help="Digits to put in front after stripping, such as 00."),
            Field("source_ips", "Calls come from", value=v("source_ips"),
                  help="IP addresses or networks, separated by commas; empty: the host's address, or for a "
                       "DNS name the addresses it resolves to, looked up again as its records' TTL ends."),
            Field("priority", "Priority", "number", v("priority", "10"), help="Lower is tried first.")],
            title="New gateway"))


def _trusted(row: dict) -> str:
    """What IP authentication trusts, and for a DNS name when it was resolved or why not."""
    if not row["ip_auth"]:
        return "(no IP auth)"
    trusted = ", ".join(row["trusted_sources"]) or "nothing yet"
    if row["source_ips"] or carriers.is_address(row["host"]):
        return trusted
    when = f"resolved {row['resolved_at']:%Y-%m-%d %H:%M:%S} UTC" if row["resolved_at"] else "not resolved yet"
    failed = f"; last look-up failed: {row['resolve_error']}" if row["resolve_error"] else ""
    return f"{trusted} ({when}{failed})"


@page("/isp/carriers/<int:carrier_id>", roles=ISP)
async def carrier_page(ctx: Ctx):
    return await carrier_form(ctx)


@page("/isp/carriers/<int:carrier_id>/gateways", roles=ISP, method="POST", form_of=carrier_form)
async def gateway_create(ctx: Ctx):
    carrier_id = ctx.params["carrier_id"]
    details = {"port": ctx.number("port", required=False), "transport": ctx.value("transport"),
               "strip_digits": ctx.number("strip_digits"), "prefix": ctx.value("prefix"),
               "priority": ctx.number("priority")}
    sources = [part.strip() for part in ctx.value("source_ips").split(",") if part.strip()]
    if sources:
        details["source_ips"] = sources
    await ctx.tx(lambda tx: carriers.create_gateway(tx, ctx.isp_id, carrier_id, host=ctx.value("host"), **details))
    return Redirect(f"/isp/carriers/{carrier_id}")


# --- number inventory ----------------------------------------------------------------------------

async def numbers_form(ctx: Ctx):
    limit, offset = ctx.page_window()
    rows = await ctx.tx(lambda tx: dids.list_dids(tx, ctx.isp_id, limit=limit, offset=offset))
    pages = ctx.pager(rows)
    for row in rows:
        row["holder"] = (f"{row['customer_name']} / {row['tenant_name']}" if row["tenant_id"] else "free")
    return ctx.render("Numbers", Table(
        [("e164", "Number"), ("holder", "Held by"), ("subscriber_username", "Routed to"),
         ("allocated_at", "Since")], rows, empty="No numbers yet.", **pages),
        Form("/isp/numbers", "Add numbers", [
            Field("first", "Number", value=ctx.value("first"), required=True, help="E.164, such as +15550199000."),
            Field("last", "Last number of a range", value=ctx.value("last"),
                  help="Empty for a single number; a range adds every number from the first to this one.")],
            title="Add a DID or a range"))


@page("/isp/numbers", roles=ISP)
async def numbers_page(ctx: Ctx):
    return await numbers_form(ctx)


@page("/isp/numbers", roles=ISP, method="POST", form_of=numbers_form)
async def numbers_add(ctx: Ctx):
    await ctx.tx(dids.add_dids, ctx.isp_id, ctx.value("first"), ctx.value("last") or None)
    return Redirect("/isp/numbers")


# --- domains -------------------------------------------------------------------------------------

async def domains_form(ctx: Ctx):
    rows = await ctx.tx(domains.list_domains, ctx.isp_id, limit=1000)
    for row in rows:
        if row["kind"] == "namespace":
            row["state"] = "usable"
        elif row["verified_at"]:
            row["state"] = f"verified {row['verified_at']:%Y-%m-%d}"
        else:
            row["state"] = f'waiting for TXT "{row["verification_token"]}"'
            row["_buttons"] = [Button("Check DNS now", f"/isp/domains/{row['id']}/verify")]
    return ctx.render("Domains", Text(
        f"Tenants get <label>.{ctx.brand['namespace']} at once. A domain of your customer's own is "
        f"usable once its DNS holds the TXT record shown."),
        Table([("name", "Domain"), ("kind", "Kind"), ("state", "State")], rows, buttons="_buttons",
              empty="No domain yet."),
        Form("/isp/domains", "Add domain", [
            Field("name", "Domain", value=ctx.value("name"), required=True,
                  help=f"Such as pbx.customer.com, or a name under {ctx.brand['namespace']}.")],
            title="New domain"))


@page("/isp/domains", roles=ISP)
async def domains_page(ctx: Ctx):
    return await domains_form(ctx)


@page("/isp/domains", roles=ISP, method="POST", form_of=domains_form)
async def domains_add(ctx: Ctx):
    name = ctx.value("name").lower().rstrip(".")
    suffix = "." + ctx.brand["namespace"]
    if name.endswith(suffix) and "." not in name[:-len(suffix)]:
        await ctx.tx(domains.create_namespace_domain, ctx.isp_id, name[:-len(suffix)])
    else:
        await ctx.tx(domains.add_verified_domain, ctx.isp_id, name)
    return Redirect("/isp/domains")


# --- branding ---------------------------------------------------------------------------------------

async def branding_form(ctx: Ctx):
    isp = ctx.brand
    v = ctx.value if ctx.request.method == b"POST" else (lambda name, default="": isp.get(name) or default)
    return ctx.render("Branding", Text("Your customers and their subscribers see this title, these colours and "
                                       "this logo on every page, and can reach the consoles at your hostname."),
                      Facts([("Logo", "uploaded" if isp["has_logo"] else "none")]),
                      Form("/isp/branding", "Save", [
                          Field("brand_title", "Title", value=v("brand_title")),
                          Field("brand_primary", "Main colour", "color", v("brand_primary")),
                          Field("brand_accent", "Accent colour", "color", v("brand_accent")),
                          Field("logo", "Logo", "file", help="PNG, JPEG or SVG, at most 512 KiB; empty keeps the logo."),
                          Field("hostname", "Console hostname", value=v("hostname"),
                                help="Such as voice.yourisp.com, pointed at this platform in your DNS."),
                          Field("smtp_sender", "Mail sender", "email", v("smtp_sender"),
                                help="The From address of mail to your customers.")], multipart=True))


@page("/isp/branding", roles=ISP)
async def branding_page(ctx: Ctx):
    return await branding_form(ctx)


@page("/isp/branding", roles=ISP, method="POST", form_of=branding_form)
async def branding_save(ctx: Ctx):
    values = theme_values(ctx)
    logo = uploaded_logo(ctx)

    async def save(tx):
        await isps.update_isp(tx, ctx.isp_id, smtp_sender=ctx.value("smtp_sender"), **values)
        await hostnames.set_isp_hostname(tx, ctx.isp_id, ctx.value("hostname") or None)
        if logo is not None:
            await isps.set_isp_logo(tx, ctx.isp_id, *logo)
    await ctx.tx(save)
    return Redirect("/isp/branding")


@page("/isp/domains/<int:domain_id>/verify", roles=ISP, method="POST", form_of=domains_form)
async def domain_verify(ctx: Ctx):
    """Looks up the TXT record now (twisted.names); usable from the moment the token is seen."""
    domain = await ctx.tx(domains.get_domain, ctx.isp_id, ctx.params["domain_id"])
    if domain["kind"] != "verified" or domain["verified_at"] is not None:
        return Redirect("/isp/domains")
    try:
        found = await txt_values(ctx.console.services.resolver, domain["name"])
    except LookupFailed as error:
        raise FormError("name", f"could not be checked: {error}") from None
    if domain["verification_token"] not in found:
        raise FormError("name", f"{domain['name']} has no TXT record \"{domain['verification_token']}\" yet")
    await ctx.tx(domains.mark_domain_verified, ctx.isp_id, domain["id"])
    return Redirect("/isp/domains")
