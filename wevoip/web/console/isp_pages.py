"""
The ISP console: dashboard, service plans, customers (create, activate, suspend, log in as
one, with each such login in the audit trail), the customer's admins, and the audit trail.
"""

from __future__ import annotations

from wevoip.credentials import hash_password
from wevoip.store import audit, customers, siplocks, subscribers, tenants, webusers
from wevoip.store.database import Tx
from wevoip.store.webusers import get_isp_admin
from wevoip.web.console.context import Ctx, Redirect
from wevoip.web.console.routes import page
from wevoip.web.console.signup import check_new_password
from wevoip.web.console.widgets import Button, Facts, Field, Form, Links, Table, Text

ISP = ("isp",)


async def _counts(tx: Tx, isp_id: int) -> dict:
    return await tx.fetch_one(
        "select (select count(*) from customers where isp_id = %(i)s) as customers,"
        " (select count(*) from customers where isp_id = %(i)s and status = 'WAIT') as waiting,"
        " (select count(*) from tenants where isp_id = %(i)s) as tenants,"
        " (select count(*) from subscribers where isp_id = %(i)s) as subscribers,"
        " (select count(*) from carriers where isp_id = %(i)s) as carriers,"
        " (select count(*) from dids where isp_id = %(i)s) as dids,"
        " (select count(*) from dids where isp_id = %(i)s and tenant_id is null) as free_dids,"
        " (select count(*) from service_plans where isp_id = %(i)s) as plans", {"i": isp_id})


@page("/isp", roles=ISP)
async def dashboard(ctx: Ctx):
    counts = await ctx.tx(_counts, ctx.isp_id)
    isp = ctx.brand
    steps = [("Service plans", counts["plans"], "/isp/plans"), ("Customers", counts["customers"], "/isp/customers"),
             ("Carriers", counts["carriers"], "/isp/carriers"), ("Numbers", counts["dids"], "/isp/numbers")]
    todo = [name for name, count, _ in steps if not count]
    sections = [Facts([("Namespace", isp["namespace"]), ("Currency", isp["currency"]),
                       ("Customers", f"{counts['customers']} ({counts['waiting']} waiting for activation)"),
                       ("Tenants", counts["tenants"]), ("Subscribers", counts["subscribers"]),
                       ("Carriers", counts["carriers"]), ("Service plans", counts["plans"]),
                       ("Numbers", f"{counts['dids']} ({counts['free_dids']} free)")], title="Your ISP")]
    if todo:
        sections.insert(0, Text("To start selling: create " + ", then ".join(t.lower() for t in todo) +
                                ". The menu on the left has a page for each."))
    locks = await ctx.tx(siplocks.list_locks, ctx.isp_id, limit=1000)
    if locks:
        for lock in locks:
            lock["user"] = f"{lock['username']}@{lock['domain']}"
            lock["_buttons"] = [Button("Unlock", f"/isp/sip-locks/{lock['subscriber_id']}/unlock")]
        sections.insert(0, Table(
            [("user", "SIP user"), ("locked_at", "Locked"), ("locked_until", "Until"), ("reason", "Why")], locks,
            title="SIP users locked after password guessing", buttons="_buttons"))
        sections.insert(1, Text("Until the lock ends, these users' phones register only from the addresses "
                                "they used lately. Unlock when the user has a new SIP password, or knows why."))
    return ctx.render("Dashboard", *sections)


@page("/isp/sip-locks/<int:subscriber_id>/unlock", roles=ISP, method="POST")
async def sip_lock_unlock(ctx: Ctx):
    subscriber_id = ctx.params["subscriber_id"]

    async def unlock(tx):
        await subscribers.get_subscriber(tx, ctx.isp_id, subscriber_id)     # another ISP's: 404
        if await siplocks.unlock_user(tx, subscriber_id, ctx.isp_id):
            await audit.record(tx, ctx.isp_id, actor=await _actor(tx, ctx), action="sip_lock.unlock",
                               target=f"subscriber {subscriber_id}", source=ctx.source())
    await ctx.tx(unlock)
    return Redirect("/isp")


# --- service plans ---------------------------------------------------------------------------

async def plans_form(ctx: Ctx):
    plans = await ctx.tx(customers.list_service_plans, ctx.isp_id, limit=1000)
    return ctx.render("Service plans",
                      Table([("name", "Name"), ("created_at", "Created")], plans, empty="No service plan yet."),
                      Form("/isp/plans", "Create service plan", [
                          Field("name", "Name", value=ctx.value("name"), required=True, help="Such as Default.")],
                          title="New service plan"))


@page("/isp/plans", roles=ISP)
async def plans_page(ctx: Ctx):
    return await plans_form(ctx)


@page("/isp/plans", roles=ISP, method="POST", form_of=plans_form)
async def plans_create(ctx: Ctx):
    await ctx.tx(customers.create_service_plan, ctx.isp_id, name=ctx.value("name"))
    return Redirect("/isp/plans")


# --- customers ---------------------------------------------------------------------------------

def _status_buttons(row) -> list[Button]:
    base = f"/isp/customers/{row['id']}/status"
    if row["status"] == "ACTIVE":
        return [Button("Suspend", base, {"status": "SUSPENDED"}, danger=True)]
    return [Button("Activate", base, {"status": "ACTIVE"})]


_TERMS_DEFAULTS = {"service_plan_id": "", "max_subscribers": "10", "max_concurrent_calls": "2",
                   "billing_mode": "prepaid", "balance_management": "HARD", "credit_limit": "0"}


def _terms_fields(ctx: Ctx, plans, current: dict) -> list[Field]:
    """What a customer buys: plan, licences, calls, billing; for creating and for changing."""
    def v(name):
        if ctx.form:
            return ctx.value(name)
        value = current.get(name)
        return _TERMS_DEFAULTS[name] if value is None else str(value)
    return [
        Field("service_plan_id", "Service plan", "select", v("service_plan_id"),
              [("", "(none)")] + [(str(p["id"]), p["name"]) for p in plans]),
        Field("max_subscribers", "Max subscribers", "number", v("max_subscribers"), required=True,
              help="How many subscribers (licences) the customer may create."),
        Field("max_concurrent_calls", "Max concurrent calls", "number", v("max_concurrent_calls"), required=True),
        Field("billing_mode", "Billing", "select", v("billing_mode"), [("prepaid", "Prepaid"), ("postpaid", "Postpaid")]),
        Field("balance_management", "Balance management", "select", v("balance_management"),
              [("HARD", "HARD: calls stop at the limit"), ("SOFT", "SOFT: warn only")]),
        Field("credit_limit", "Credit limit", value=v("credit_limit"), help=f"In {ctx.brand['currency']}.")]


def _terms_values(ctx: Ctx) -> dict:
    return {"service_plan_id": ctx.number("service_plan_id", required=False),
            "max_subscribers": ctx.number("max_subscribers"),
            "max_concurrent_calls": ctx.number("max_concurrent_calls"),
            "billing_mode": ctx.value("billing_mode"), "balance_management": ctx.value("balance_management"),
            "credit_limit": ctx.value("credit_limit") or "0"}


async def customers_form(ctx: Ctx):
    limit, offset = ctx.page_window()

    async def load(tx):
        return (await customers.list_customers(tx, ctx.isp_id, limit=limit, offset=offset),
                await customers.list_service_plans(tx, ctx.isp_id, limit=1000))
    rows, plans = await ctx.tx(load)
    pages = ctx.pager(rows)
    plan_names = {plan["id"]: plan["name"] for plan in plans}
    for row in rows:
        row["_href"] = f"/isp/customers/{row['id']}"
        row["plan"] = plan_names.get(row["service_plan_id"], "")
        row["_buttons"] = _status_buttons(row)
    v = ctx.value
    return ctx.render("Customers", Table(
        [("name", "Name"), ("status", "Status"), ("plan", "Plan"), ("max_subscribers", "Max subscribers"),
         ("max_concurrent_calls", "Max calls"), ("billing_mode", "Billing"), ("balance", "Balance")],
        rows, link="name", buttons="_buttons", empty="No customer yet.", **pages),
        Form("/isp/customers", "Create customer", [
            Field("name", "Name", value=v("name"), required=True),
            *_terms_fields(ctx, plans, {}),
            Field("first_name", "Contact first name", value=v("first_name")),
            Field("last_name", "Contact last name", value=v("last_name")),
            Field("email", "Contact e-mail", "email", v("email")),
            Field("status", "Status", "select", v("status", "ACTIVE"),
                  [("ACTIVE", "Active"), ("WAIT", "Waiting for activation")])],
            title="New customer"))


@page("/isp/customers", roles=ISP)
async def customers_page(ctx: Ctx):
    return await customers_form(ctx)


@page("/isp/customers", roles=ISP, method="POST", form_of=customers_form)
async def customers_create(ctx: Ctx):
    values = {**_terms_values(ctx), "first_name": ctx.value("first_name"), "last_name": ctx.value("last_name"),
              "email": ctx.value("email"), "status": ctx.value("status")}
    row = await ctx.tx(lambda tx: customers.create_customer(tx, ctx.isp_id, name=ctx.value("name"), **values))
    return Redirect(f"/isp/customers/{row['id']}")


def customer_tabs(customer_id: int) -> Links:
    base = f"/isp/customers/{customer_id}"
    return Links([(base, "Customer"), (f"{base}/billing", "Billing")])


async def customer_form(ctx: Ctx):
    customer_id = ctx.params["customer_id"]

    async def load(tx):
        customer = await customers.get_customer(tx, ctx.isp_id, customer_id)
        return (customer, await customers.list_service_plans(tx, ctx.isp_id, limit=1000),
                await tenants.list_tenants(tx, ctx.isp_id, customer_id, limit=1000),
                await webusers.list_customer_admins(tx, ctx.isp_id, customer_id))
    customer, plans, tenant_rows, admins = await ctx.tx(load)
    plan = next((p["name"] for p in plans if p["id"] == customer["service_plan_id"]), "")
    customer["_buttons"] = _status_buttons(customer) + [
        Button("Log in as this customer", f"/isp/customers/{customer_id}/login-as")]
    return ctx.render(customer["name"], customer_tabs(customer_id), Facts([
        ("Status", customer["status"]), ("Service plan", plan), ("Max subscribers", customer["max_subscribers"]),
        ("Max concurrent calls", customer["max_concurrent_calls"]), ("Billing", customer["billing_mode"]),
        ("Balance management", customer["balance_management"]),
        ("Credit limit", customer["credit_limit"]), ("Balance", customer["balance"]),
        ("Contact", f"{customer['first_name']} {customer['last_name']} {customer['email']}".strip())]),
        Table([("status", "Status")], [customer], buttons="_buttons", title="Actions"),
        Form(f"/isp/customers/{customer_id}", "Save", _terms_fields(ctx, plans, customer), title="Plan and limits"),
        Table([("name", "Tenant"), ("created_at", "Created")], tenant_rows, title="Tenants",
              empty="No tenant yet: log in as this customer to create one, or give them a login below."),
        Table([("email", "E-mail"), ("full_name", "Name")], admins, title="Tenant console logins",
              empty="Nobody can log into this customer's tenant console yet."),
        Form(f"/isp/customers/{customer_id}/admins", "Add login", [
            Field("email", "E-mail", "email", ctx.value("email"), required=True),
            Field("full_name", "Name", value=ctx.value("full_name")),
            Field("password", "Password", "password", required=True, autocomplete="new-password"),
            Field("password_again", "Password again", "password", required=True, autocomplete="new-password")],
            title="New tenant console login"))


@page("/isp/customers/<int:customer_id>", roles=ISP)
async def customer_page(ctx: Ctx):
    return await customer_form(ctx)


@page("/isp/customers/<int:customer_id>", roles=ISP, method="POST", form_of=customer_form)
async def customer_update(ctx: Ctx):
    customer_id = ctx.params["customer_id"]
    await ctx.tx(lambda tx: customers.update_customer(tx, ctx.isp_id, customer_id, **_terms_values(ctx)))
    return Redirect(f"/isp/customers/{customer_id}")


@page("/isp/customers/<int:customer_id>/status", roles=ISP, method="POST", form_of=customer_form)
async def customer_status(ctx: Ctx):
    customer_id = ctx.params["customer_id"]
    status = ctx.value("status")

    async def change(tx):
        await customers.set_customer_status(tx, ctx.isp_id, customer_id, status)
        await audit.record(tx, ctx.isp_id, actor=await _actor(tx, ctx), action=f"customer.{status.lower()}",
                           target=f"customer {customer_id}", source=ctx.source())
    await ctx.tx(change)
    return Redirect(f"/isp/customers/{customer_id}")


@page("/isp/customers/<int:customer_id>/admins", roles=ISP, method="POST", form_of=customer_form)
async def customer_admin_create(ctx: Ctx):
    customer_id = ctx.params["customer_id"]
    password_hash = await hash_password(ctx.console.reactor, check_new_password(ctx))
    await ctx.tx(lambda tx: webusers.create_customer_admin(tx, ctx.isp_id, customer_id, email=ctx.value("email"),
                                                           full_name=ctx.value("full_name"),
                                                           password_hash=password_hash))
    return Redirect(f"/isp/customers/{customer_id}")


async def _actor(tx: Tx, ctx: Ctx) -> str:
    admin = await get_isp_admin(tx, ctx.isp_id, ctx.session["isp_admin_id"])
    return f"{admin['full_name']} <{admin['email']}>"


@page("/isp/customers/<int:customer_id>/login-as", roles=ISP, method="POST")
async def customer_login_as(ctx: Ctx):
    """The ISP admin's session becomes the customer's, marked with who is behind it."""
    customer_id = ctx.params["customer_id"]
    admin_id = ctx.session["isp_admin_id"]

    async def record(tx):
        customer = await customers.get_customer(tx, ctx.isp_id, customer_id)
        await audit.record(tx, ctx.isp_id, actor=await _actor(tx, ctx), action="customer.login_as",
                           target=f"customer {customer_id} ({customer['name']})", source=ctx.source())
    await ctx.tx(record)
    await ctx.console.sessions.begin(ctx, "customer", isp_id=ctx.isp_id, customer_id=customer_id,
                                     impersonator_id=admin_id)
    return Redirect("/tenants")


@page("/isp/audit", roles=ISP)
async def audit_page(ctx: Ctx):
    rows = await ctx.tx(audit.list_audit, ctx.isp_id, limit=500)
    return ctx.render("Audit trail", Table([("at", "When"), ("actor", "Who"), ("action", "What"),
                                            ("target", "On"), ("source", "From")], rows,
                                           empty="Nothing recorded yet."))
