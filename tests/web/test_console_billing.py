"""Billing in the ISP console: a customer's account and ledger, rate decks and the
"simulate a call" box, and the reports page with its CSV and its chart."""

import datetime
import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest_twisted

from tests.web.consolepeople import people_of
from wevoip.store import calls, pricing, reports
from wevoip.web.csvrows import rows_csv

CARD = "prefix,description,cost,increment\n44,UK,0.0200,1/1\n1,North America,0.0090,6/6\n"


@pytest_twisted.ensureDeferred
async def test_payments_and_charges_write_the_ledger_and_a_locked_account_is_unlocked(console):
    people = await people_of(console, "ledger.example.net")
    isp, tree = people.isp_admin, people.tree
    customer_id = tree.customer["id"]
    account = f"/isp/customers/{customer_id}/billing"
    page = await isp.get(f"/isp/customers/{customer_id}")
    assert f'href="{account}"' in page.text
    page = await isp.get(account)
    assert page.code == 200 and "0.00 USD" in page and "HARD: calls stop" in page
    page = await isp.post(f"/isp/customers/{customer_id}/payments",
                          {"kind": "payment", "amount": "20.00", "description": "PayPal"})
    assert page.url.endswith(account) and "20.00 USD" in page and "PayPal" in page
    page = await isp.post(f"/isp/customers/{customer_id}/charges",
                          {"kind": "charge", "amount": "1.5", "description": "Porting"})
    assert "18.50 USD" in page and "-1.500000" in page and "Porting" in page
    page = await isp.post(f"/isp/customers/{customer_id}/charges",
                          {"kind": "charge", "amount": "1,5", "description": "Typo"})
    assert page.code == 422 and "Amount must be a decimal amount" in page.error
    assert 'name="amount" id="f-charge-amount" value="1,5"' in page.text
    assert 'name="amount" id="f-payment-amount" value=""' in page.text
    page = await isp.post(f"/isp/customers/{customer_id}/payments",
                          {"kind": "payment", "amount": "0", "description": "Nothing"})
    assert page.code == 422 and "Amount must be more than 0" in page.error
    rows = await console.database.fetch("select amount, balance_after from ledger where customer_id = %s order by id",
                                        (customer_id,))
    balance = await console.database.fetch("select balance from customers where id = %s", (customer_id,))
    assert [row["amount"] for row in rows] == [Decimal(20), Decimal("-1.5")]
    assert sum(row["amount"] for row in rows) == balance[0]["balance"] == rows[-1]["balance_after"]

    await console.database.transact(calls.lock_calls, tree.isp["id"], "customer", customer_id,
                                    "the daily spend cap is reached")
    page = await isp.get(account)
    assert "Calls locked by the fraud guard" in page and "the daily spend cap is reached" in page
    page = await isp.post(f"/isp/customers/{customer_id}/unlock", {})
    assert page.url.endswith(account) and "Calls locked" not in page
    locked = await console.database.fetch("select calls_locked_at from customers where id = %s", (customer_id,))
    assert locked[0]["calls_locked_at"] is None


@pytest_twisted.ensureDeferred
async def test_rate_decks_are_uploaded_published_and_priced_by_the_simulator(console):
    people = await people_of(console, "decks.example.net")
    isp, tree = people.isp_admin, people.tree
    page = await isp.submit("/isp/rate-decks", "/isp/rate-decks", {"name": "Nobody's", "kind": "carrier",
                                                                   "carrier_id": ""})
    assert page.code == 422 and "Carrier id a carrier card belongs to a carrier" in page.error
    page = await isp.post("/isp/rate-decks", {"name": "Carrier One card", "kind": "carrier",
                                              "carrier_id": str(tree.carrier["id"])})
    assert page.code == 200 and "Rate deck Carrier One card" in page and "No version yet" in page
    deck = f"/isp/rate-decks/{page.url.rsplit('/', 1)[1]}"

    page = await isp.post(f"{deck}/drafts", {"csv": "prefix,cost\n44,0.1\n4a,0.2\n33,x\n", "note": ""})
    assert page.code == 422 and "The upload has 2 bad lines" in page.error and "nothing was stored" in page.error
    table = page.text.split("Lines refused", 1)[1]
    assert "<td>3</td>" in table and "<td>4</td>" in table and "'4a' is not 1 to 15 digits" in page
    assert "4a,0.2" in page  # the text is kept to be corrected
    assert not await console.database.fetch("select id from rate_deck_versions where isp_id = %s",
                                            (tree.isp["id"],))

    page = await isp.post(f"{deck}/drafts", {"csv": CARD, "note": "November"})
    assert page.code == 200 and "November" in page and "draft" in page
    page = await isp.post(f"{deck}/drafts", {"csv": "", "note": "from a file"},
                          files={"file": ("card.csv", "text/csv", b"prefix,cost\n1,0.0100\n")})
    versions = await console.database.fetch("select id, row_count, note from rate_deck_versions where isp_id = %s"
                                            " order by id", (tree.isp["id"],))
    assert [(v["row_count"], v["note"]) for v in versions] == [(2, "November"), (1, "from a file")]
    page = await isp.post(f"{deck}/publish", {"version_id": str(versions[0]["id"]), "effective_at": "yesterday"})
    assert page.code == 422 and "Effective at must be a date and time" in page.error
    page = await isp.post(f"{deck}/publish", {"version_id": str(versions[0]["id"]),
                                              "effective_at": "2020-01-01T00:00"})
    assert page.code == 200 and "2020-01-01 00:00:00+00:00" in page and "published" in page
    page = await isp.post(f"{deck}/publish", {"version_id": str(versions[0]["id"]), "effective_at": ""})
    assert page.code == 422 and "already published" in page.error
    page = await isp.get(f"/isp/rate-deck-versions/{versions[0]['id']}")
    assert "North America" in page and "6/6" in page and "0.009000" in page

    await console.database.transact(lambda tx: pricing.set_plan_pricing(
        tx, tree.isp["id"], tree.plan["id"], service_deck=True, markup_fixed="0.0025", markup_percent="20"))
    fields = {"customer_id": str(tree.customer["id"]), "destination": "+12125550100", "duration": "60"}
    page = await isp.submit("/isp/rate-decks", "/isp/rate-decks/simulate", fields)
    result = page.text.split("Simulated call", 1)[1]
    assert page.code == 200 and "0.013800 USD" in result and "0.009000 USD" in result and "0.004800 USD" in result
    page = await isp.post("/isp/rate-decks/simulate", {**fields, "destination": "+33142685300"})
    assert page.code == 422 and "The call would be refused: there is no rate for +33142685300" in page.error
    page = await isp.post("/isp/rate-decks/simulate", {**fields, "duration": "90000"})
    assert page.code == 422 and "Duration must be at most 86400 seconds" in page.error


def _cdr(tree, call_id, day, talk_seconds, price, cost):
    started = datetime.datetime(2026, 3, day, 9, 0, tzinfo=datetime.timezone.utc)
    return {"direction": "outbound", "started_at": started, "ended_at": started + datetime.timedelta(seconds=95),
            "duration_ms": talk_seconds * 1000, "talk_ms": talk_seconds * 1000, "disposition": "answered",
            "a_call_id": call_id, "customer_id": tree.customer["id"], "tenant_id": tree.tenant["id"],
            "subscriber_id": tree.subscriber["id"], "price": price, "cost": cost,
            "caller_e164": "+15550100100", "callee_e164": "+442071234567"}


@pytest_twisted.ensureDeferred
async def test_reports_show_calls_and_money_with_csv_and_a_chart_of_the_days(console):
    people = await people_of(console, "reports.example.net")
    isp, tree = people.isp_admin, people.tree

    async def add(tx):
        await calls.insert_cdr(tx, tree.isp["id"], _cdr(tree, "a", 10, 600, "1.20", "0.90"))
        await calls.insert_cdr(tx, tree.isp["id"], _cdr(tree, "b", 12, 300, "0.30", "0.10"))
        await calls.insert_cdr(tx, tree.isp["id"], _cdr(tree, "c", 20, 60, "5.00", "1.00"))  # after the period
    await console.database.transact(add)
    query = "since=2026-03-09&until=2026-03-12"
    page = await isp.get(f"/isp/reports?{query}")
    assert page.code == 200 and "Calls from 2026-03-09 to 2026-03-12" in page
    assert "2 (2 answered)" in page and "1.50 USD" in page and "1.00 USD" in page and "0.50 USD" in page
    per_customer = page.text.split("Calls per customer", 1)[1].split("</table>", 1)[0]
    assert "Acme" in per_customer and "15.00" in per_customer
    assert "alice" in page.text.split("Calls per subscriber", 1)[1]
    svg = ET.fromstring(page.text.split("<figure>", 1)[1].split("</figure>", 1)[0])
    minutes = [rect for rect in svg.iter("{http://www.w3.org/2000/svg}rect") if "minutes" in rect.get("class")]
    assert [Decimal(rect.get("height")) for rect in minutes] == [0, 120, 0, 60]
    assert f'href="/isp/reports/calls_by_customer.csv?since=2026-03-09&amp;until=2026-03-12"' in page.text

    download = await isp.request("GET", f"/isp/reports/calls_by_customer.csv?{query}")
    assert download.code == 200 and download.headers.getRawHeaders("content-type") == ["text/csv; charset=utf-8"]
    utc = datetime.timezone.utc
    period = {"since": datetime.datetime(2026, 3, 9, tzinfo=utc), "until": datetime.datetime(2026, 3, 13, tzinfo=utc)}
    expected = await console.database.transact(lambda tx: reports.calls_report(tx, tree.isp["id"],
                                                                               group="customer", **period))
    assert download.body == rows_csv(expected)
    assert download.body.decode().splitlines()[1].startswith(f"{tree.customer['id']},Acme,2,2,900000,")
    download = await isp.request("GET", f"/isp/reports/daily.csv?{query}")
    assert len(download.body.decode().splitlines()) == 5

    page = await isp.get("/isp/reports?since=2026-03-12&until=2026-03-01")
    assert page.code == 422 and "Until must not be before since" in page.error
    page = await isp.get("/isp/reports?since=2020-01-01&until=2026-03-01")
    assert page.code == 422 and "Since must be at most 366 days" in page.error
    page = await isp.get("/isp/reports?until=9999-12-31")
    assert page.code == 422 and "Until must be a date from 1970 to 9000" in page.error
    download = await isp.request("GET", "/isp/reports/financial.csv?since=someday")
    assert download.code == 422
