"""
The ISP console's billing pages: a customer's account (balance, payments and charges, the
ledger, the fraud guard's lock) and the rate decks (cards, CSV drafts, publishing, and the
"simulate a call" box).

Each form calls the same store or billing function as its API twin, so a payment made here
writes its ledger row in the balance's transaction and a simulated call is priced by the
code that settles real calls.
"""

from __future__ import annotations

import datetime

from wevoip.billing.calls import CallRefused, simulate_call
from wevoip.billing.decks import DeckIndexes, RateCsvError, upload_draft
from wevoip.store import calls, carriers, customers, ledger, ratedecks
from wevoip.web.console.context import Ctx, FormError, Redirect
from wevoip.web.console.isp_pages import ISP, customer_tabs
from wevoip.web.console.routes import page
from wevoip.web.console.widgets import Button, Facts, Field, Form, Table, Text

MAX_SIMULATED_SECONDS = 86_400


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


# --- a customer's account ----------------------------------------------------------------------

def _money_form(ctx: Ctx, action: str, submit: str, title: str, kind: str) -> Form:
    """The payment and the charge forms; a refused one keeps what was typed, the other stays empty."""
    mine = ctx.value("kind") == kind
    return Form(action, submit, [
        Field("kind", "", "hidden", kind),
        Field("amount", "Amount", value=ctx.value("amount") if mine else "", required=True,
              help=f"In {ctx.brand['currency']}, such as 20.00."),
        Field("description", "Description", value=ctx.value("description") if mine else "", required=True,
              help="Shown on the customer's ledger.")], title=title, ids=f"{kind}-")


async def account_form(ctx: Ctx):
    customer_id = ctx.params["customer_id"]
    limit, offset = ctx.page_window()

    async def load(tx):
        return (await customers.get_customer(tx, ctx.isp_id, customer_id),
                await ledger.list_ledger(tx, ctx.isp_id, customer_id, limit=limit, offset=offset))
    customer, entries = await ctx.tx(load)
    pages = ctx.pager(entries)
    currency = ctx.brand["currency"]
    sections = [customer_tabs(customer_id), Facts([
        ("Balance", f"{customer['balance']:.2f} {currency}"),
        ("Available to spend", f"{ledger.available(customer):.2f} {currency}"),
        ("Billing", customer["billing_mode"]),
        ("Balance management", "HARD: calls stop when the money is used up" if customer["balance_management"] == "HARD"
         else "SOFT: the balance may go negative"),
        ("Credit limit", f"{customer['credit_limit']:.2f} {currency}"),
        ("Low-balance threshold", customer["low_balance_threshold"]),
        ("Status", customer["status"] + (" (no money left)" if customer["balance_suspended"] else ""))],
        title="Account")]
    if customer["calls_locked_at"] is not None:
        sections.append(Table([("calls_locked_at", "Locked at"), ("calls_lock_reason", "Why")], [
            {**customer, "_buttons": [Button("Unlock calls", f"/isp/customers/{customer_id}/unlock")]}],
            buttons="_buttons", title="Calls locked by the fraud guard"))
    sections += [
        _money_form(ctx, f"/isp/customers/{customer_id}/payments", "Add payment", "Add a payment", "payment"),
        _money_form(ctx, f"/isp/customers/{customer_id}/charges", "Add charge", "Add a charge", "charge"),
        Table([("created_at", "When"), ("kind", "Kind"), ("category", "Category"), ("amount", "Amount"),
               ("balance_after", "Balance after"), ("description", "Description")], entries, title="Ledger",
              empty="No payment or charge yet.", **pages)]
    return ctx.render(f"{customer['name']}: billing", *sections)


@page("/isp/customers/<int:customer_id>/billing", roles=ISP)
async def account_page(ctx: Ctx):
    return await account_form(ctx)


async def _move_money(ctx: Ctx, post):
    """addPayment or addCharge: the API's store call, the ledger row with the balance."""
    customer_id = ctx.params["customer_id"]
    await ctx.tx(lambda tx: post(tx, ctx.isp_id, customer_id, amount=ctx.value("amount"),
                                 description=ctx.value("description")))
    return Redirect(f"/isp/customers/{customer_id}/billing")


@page("/isp/customers/<int:customer_id>/payments", roles=ISP, method="POST", form_of=account_form)
async def add_payment(ctx: Ctx):
    return await _move_money(ctx, ledger.add_payment)


@page("/isp/customers/<int:customer_id>/charges", roles=ISP, method="POST", form_of=account_form)
async def add_charge(ctx: Ctx):
    return await _move_money(ctx, ledger.add_charge)


@page("/isp/customers/<int:customer_id>/unlock", roles=ISP, method="POST")
async def unlock(ctx: Ctx):
    customer_id = ctx.params["customer_id"]
    await ctx.tx(calls.unlock_calls, ctx.isp_id, "customer", customer_id)
    return Redirect(f"/isp/customers/{customer_id}/billing")


# --- rate decks --------------------------------------------------------------------------------

async def decks_form(ctx: Ctx, simulation: dict | None = None):
    async def load(tx):
        return (await ratedecks.list_decks(tx, ctx.isp_id, limit=1000),
                await carriers.list_carriers(tx, ctx.isp_id, limit=1000),
                await customers.list_customers(tx, ctx.isp_id, limit=1000))
    decks, carrier_rows, customer_rows = await ctx.tx(load)
    carrier_names = {row["id"]: row["name"] for row in carrier_rows}
    for deck in decks:
        deck["_href"] = f"/isp/rate-decks/{deck['id']}"
        deck["carrier"] = carrier_names.get(deck["carrier_id"], "")
    v = ctx.value
    sections = [
        Table([("name", "Name"), ("kind", "Card"), ("carrier", "Carrier"), ("created_at", "Created")], decks,
              link="name", title="Rate decks",
              empty="No rate deck yet: a carrier card says what calls cost, a customer card what they sell for."),
        Form("/isp/rate-decks", "Create rate deck", [
            Field("name", "Name", value=v("name"), required=True),
            Field("kind", "Card", "select", v("kind", "carrier"),
                  [("carrier", "Carrier card (what calls cost)"), ("customer", "Customer card (what they sell for)")]),
            Field("carrier_id", "Carrier", "select", v("carrier_id"),
                  [("", "(none: a customer card)")] + [(str(c["id"]), c["name"]) for c in carrier_rows],
                  help="A carrier card belongs to its carrier.")], title="New rate deck"),
        Form("/isp/rate-decks/simulate", "Simulate", [
            Field("customer_id", "Customer", "select", v("customer_id"),
                  [(str(c["id"]), c["name"]) for c in customer_rows], required=True),
            Field("destination", "Destination", value=v("destination"), required=True,
                  help="An E.164 number, such as +12125550100."),
            Field("duration", "Duration (seconds)", "number", v("duration", "60"), required=True)],
            title="Simulate a call")]
    if simulation is not None:
        currency = ctx.brand["currency"]
        sections.append(Facts([
            ("Destination", simulation["destination"]),
            ("Rate", f"{simulation['prefix']} {simulation['description']}".strip()),
            ("Class", simulation["dest_class"]), ("Per minute", f"{simulation['per_minute']} {currency}"),
            ("Connection fee", f"{simulation['connection_fee']} {currency}"), ("Increment", simulation["increment"]),
            ("Billed seconds", simulation["billable_seconds"]), ("Free minutes used", simulation["free_minutes"]),
            ("Price", f"{simulation['price']} {currency}"), ("Cost", f"{simulation['cost']} {currency}"),
            ("Profit", f"{simulation['profit']} {currency}"),
            ("Carrier", carrier_names.get(simulation["carrier_id"], "—"))], title="Simulated call"))
    return ctx.render("Rate decks", *sections)


@page("/isp/rate-decks", roles=ISP)
async def decks_page(ctx: Ctx):
    return await decks_form(ctx)


@page("/isp/rate-decks", roles=ISP, method="POST", form_of=decks_form)
async def deck_create(ctx: Ctx):
    row = await ctx.tx(lambda tx: ratedecks.create_deck(tx, ctx.isp_id, name=ctx.value("name"),
                                                        kind=ctx.value("kind"),
                                                        carrier_id=ctx.number("carrier_id", required=False)))
    return Redirect(f"/isp/rate-decks/{row['id']}")


@page("/isp/rate-decks/simulate", roles=ISP, method="POST", form_of=decks_form)
async def simulate(ctx: Ctx):
    customer_id = ctx.number("customer_id")
    seconds = ctx.number("duration")
    if seconds > MAX_SIMULATED_SECONDS:
        raise FormError("duration", f"must be at most {MAX_SIMULATED_SECONDS} seconds (a day)")
    try:
        result = await ctx.tx(lambda tx: simulate_call(tx, ctx.isp_id, customer_id, ctx.value("destination"),
                                                       seconds * 1000, at=_now(), indexes=DeckIndexes()))
    except CallRefused as refused:
        ctx.error, ctx.error_field, ctx.status = f"The call would be refused: {refused.message}.", "destination", 422
        return await decks_form(ctx)
    return await decks_form(ctx, result)


async def deck_form(ctx: Ctx, problems: list[dict] | None = None):
    deck_id = ctx.params["deck_id"]

    async def load(tx):
        return (await ratedecks.get_deck(tx, ctx.isp_id, deck_id),
                await ratedecks.list_versions(tx, ctx.isp_id, deck_id, limit=1000))
    deck, versions = await ctx.tx(load)
    for version in versions:
        version["_href"] = f"/isp/rate-deck-versions/{version['id']}"
    drafts = [version for version in versions if version["status"] == "draft"]
    sections = [
        Text(f"A {deck['kind']} card. Upload a CSV as a draft, check it, then publish it with the moment it "
             f"takes effect; the version in force at a call's start prices it."),
        Table([("id", "Version"), ("status", "Status"), ("row_count", "Rates"), ("effective_at", "In force from"),
               ("note", "Note"), ("created_at", "Created")], versions, link="id", title="Versions",
              empty="No version yet: upload a CSV below.")]
    if problems:
        sections.append(Table([("line", "Line"), ("field", "Column"), ("problem", "Problem")], problems,
                              title="Lines refused"))
    sections.append(Form(f"/isp/rate-decks/{deck_id}/drafts", "Upload draft", [
        Field("csv", "CSV", "textarea", ctx.form.get("csv", ""),
              help="A header line naming the columns prefix, description, cost (or per_minute), "
                   "connection_fee, increment (1/1, 30/6, 60/60) and class, then one line per prefix."),
        Field("file", "Or a CSV file", "file"),
        Field("note", "Note", value=ctx.value("note"))], title="Upload a CSV draft", multipart=True))
    if drafts:
        sections.append(Form(f"/isp/rate-decks/{deck_id}/publish", "Publish", [
            Field("version_id", "Draft", "select", ctx.value("version_id"),
                  [(str(d["id"]), f"Version {d['id']} ({d['row_count']} rates)") for d in drafts]),
            Field("effective_at", "In force from (UTC)", "datetime-local", ctx.value("effective_at"),
                  help="Empty: at once.")], title="Publish a draft"))
    return ctx.render(f"Rate deck {deck['name']}", *sections)


@page("/isp/rate-decks/<int:deck_id>", roles=ISP)
async def deck_page(ctx: Ctx):
    return await deck_form(ctx)


@page("/isp/rate-decks/<int:deck_id>/drafts", roles=ISP, method="POST", form_of=deck_form)
async def deck_upload(ctx: Ctx):
    deck_id = ctx.params["deck_id"]
    upload = ctx.files.get("file", b"")
    try:
        text = upload.decode("utf-8-sig") if upload.strip() else ctx.form.get("csv", "")
    except UnicodeDecodeError:
        raise FormError("file", "must be a CSV file in UTF-8") from None
    try:
        await ctx.tx(upload_draft, ctx.isp_id, deck_id, text, note=ctx.value("note"))
    except RateCsvError as error:
        count = len(error.problems)
        ctx.error = (f"The upload has {count} bad line{'s' if count > 1 else ''}, listed below; "
                     f"nothing was stored.")
        ctx.error_field, ctx.status = "csv", 422
        return await deck_form(ctx, error.problems)
    return Redirect(f"/isp/rate-decks/{deck_id}")


@page("/isp/rate-decks/<int:deck_id>/publish", roles=ISP, method="POST", form_of=deck_form)
async def deck_publish(ctx: Ctx):
    deck_id = ctx.params["deck_id"]
    version_id = ctx.number("version_id")
    text = ctx.value("effective_at")
    moment = _moment(text) if text else _now()

    async def work(tx):
        version = await ratedecks.get_version(tx, ctx.isp_id, version_id)
        if version["deck_id"] != deck_id:
            raise FormError("version_id", "is not a version of this deck")
        await ratedecks.publish_version(tx, ctx.isp_id, version_id, moment)
    await ctx.tx(work)
    return Redirect(f"/isp/rate-decks/{deck_id}")


def _moment(text: str) -> datetime.datetime:
    try:
        moment = datetime.datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.timezone.utc)
        return moment.astimezone(datetime.timezone.utc)
    except (ValueError, OverflowError):
        raise FormError("effective_at", "must be a date and time such as 2026-12-01T00:00") from None


@page("/isp/rate-deck-versions/<int:version_id>", roles=ISP)
async def version_page(ctx: Ctx):
    version_id = ctx.params["version_id"]
    limit, offset = ctx.page_window()

    async def load(tx):
        version = await ratedecks.get_version(tx, ctx.isp_id, version_id)
        return (version, await ratedecks.get_deck(tx, ctx.isp_id, version["deck_id"]),
                await ratedecks.version_rates(tx, ctx.isp_id, version_id, limit=limit, offset=offset))
    version, deck, rates = await ctx.tx(load)
    pages = ctx.pager(rates)
    for rate in rates:
        rate["increment"] = f"{rate['increment_first']}/{rate['increment_step']}"
    return ctx.render(f"Rate deck {deck['name']}, version {version_id}", Facts([
        ("Deck", deck["name"]), ("Status", version["status"]), ("In force from", version["effective_at"]),
        ("Rates", version["row_count"]), ("Note", version["note"])]),
        Table([("prefix", "Prefix"), ("description", "Description"), ("per_minute", "Per minute"),
               ("connection_fee", "Connection fee"), ("increment", "Increment"), ("dest_class", "Class")], rates,
              title="Rates", **pages))
