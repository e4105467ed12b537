"""Billing through the API, as an ISP's provisioning script and billing system use it."""

import csv
import datetime
import io

import pytest_twisted
import treq

from tests.web.flows import onboard
from wevoip.store import calls

CARD = "prefix,description,cost,increment\n44,UK,0.0200,1/1\n1,North America,0.0090,6/6\n"


async def priced(api):
    made = await onboard(api, "kages.example.net")
    base, t = made["base"], made["token"]
    code, deck, _ = await api.call("POST", f"{base}/rate-decks", t, json={
        "name": "Carrier One card", "kind": "carrier", "carrier_id": made["carrier"]["id"]})
    assert code == 201, deck
    code, draft, _ = await api.call("POST", f"{base}/rate-decks/{deck['id']}/drafts", t, json={"csv": CARD})
    assert code == 201 and draft["row_count"] == 2, draft
    code, version, _ = await api.call("POST", f"{base}/rate-deck-versions/{draft['id']}/publish", t,
                                      json={"effective_at": "2020-01-01T00:00:00Z"})
    assert code == 200 and version["status"] == "published", version
    code, plan, _ = await api.call("PUT", f"{base}/service-plans/{made['plan']['id']}/pricing", t, json={
        "service_deck": True, "markup_fixed": "0.0025", "markup_percent": "20", "monthly_fee": "15.00"})
    assert code == 200 and plan["markup_percent"] == "20.000000", plan
    return made, deck


@pytest_twisted.ensureDeferred
async def test_a_bad_upload_is_422_with_every_bad_line_and_writes_nothing(api):
    made, deck = await priced(api)
    code, error, _ = await api.call("POST", f"{made['base']}/rate-decks/{deck['id']}/drafts", made["token"],
                                    json={"csv": "prefix,cost\n44,0.1\n4a,0.2\n33,x\n"})
    assert code == 422 and error["field"] == "csv"
    assert [(line["line"], line["field"]) for line in error["lines"]] == [(3, "prefix"), (4, "per_minute")]
    code, versions, _ = await api.call("GET", f"{made['base']}/rate-decks/{deck['id']}/versions", made["token"])
    assert len(versions["items"]) == 1


@pytest_twisted.ensureDeferred
async def test_payments_charges_and_a_simulated_call(api):
    made, _ = await priced(api)
    base, t, customer = made["base"], made["token"], made["customer"]
    code, entry, _ = await api.call("POST", f"{base}/customers/{customer['id']}/payments", t,
                                    json={"amount": "20.00", "description": "PayPal"})
    assert code == 201 and entry["balance_after"] == "20.000000", entry
    code, entry, _ = await api.call("POST", f"{base}/customers/{customer['id']}/charges", t,
                                    json={"amount": "1.50", "description": "Porting"})
    assert code == 201 and entry["amount"] == "-1.500000" and entry["balance_after"] == "18.500000"
    code, error, _ = await api.call("POST", f"{base}/customers/{customer['id']}/charges", t,
                                    json={"amount": 1.5, "description": "float"})
    assert code == 422 and error["field"] == "amount"
    code, listed, _ = await api.call("GET", f"{base}/customers/{customer['id']}/ledger", t)
    assert [row["kind"] for row in listed["items"]] == ["payment", "charge"]
    code, result, _ = await api.call("POST", f"{base}/simulate", t, json={
        "customer_id": customer["id"], "destination": "+12125550100", "duration_ms": 60_000})
    assert code == 200, result
    assert result["per_minute"] == "0.013800" and result["price"] == "0.013800" and result["cost"] == "0.009000"
    code, error, _ = await api.call("POST", f"{base}/simulate", t, json={
        "customer_id": customer["id"], "destination": "+33142685300", "duration_ms": 60_000})
    assert code == 422 and error["error"] == "no_rate" and error["field"] == "destination"


@pytest_twisted.ensureDeferred
async def test_reports_in_json_and_csv(api):
    made, _ = await priced(api)
    base, t = made["base"], made["token"]
    await api.call("POST", f"{base}/customers/{made['customer']['id']}/payments", t,
                   json={"amount": "20.00", "description": "PayPal"})
    code, report, _ = await api.call("GET", f"{base}/reports/financial", t)
    assert code == 200 and report["items"][0]["deposits"] == "20.000000", report
    code, daily, _ = await api.call("GET", f"{base}/reports/daily?since=2026-01-01T00:00:00Z"
                                           "&until=2026-01-04T00:00:00Z", t)
    assert [day["day"] for day in daily["items"]] == ["2026-01-01", "2026-01-02", "2026-01-03"]
    response = await treq.get(api.base + f"{base}/reports/subscribers?format=csv",
                              headers={"Authorization": f"Bearer {t}"})
    assert response.code == 200 and response.headers.getRawHeaders("content-type")[0].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert rows[0]["username"] == "alice" and rows[0]["calls"] == "0"
    code, error, _ = await api.call("GET", f"{base}/reports/calls?since=yesterday", t)
    assert code == 422 and error["field"] == "since"


@pytest_twisted.ensureDeferred
async def test_a_big_deck_arrives_in_parts_into_one_draft(api):
    made, deck = await priced(api)
    base, t = made["base"], made["token"]
    code, draft, _ = await api.call("POST", f"{base}/rate-decks/{deck['id']}/drafts", t,
                                    json={"csv": "prefix,cost\n33,0.01\n"})
    assert code == 201
    code, draft, _ = await api.call("POST", f"{base}/rate-deck-versions/{draft['id']}/rows", t,
                                    json={"csv": "prefix,cost\n34,0.01\n49,0.02\n"})
    assert code == 200 and draft["row_count"] == 3, draft
    code, error, _ = await api.call("POST", f"{base}/rate-deck-versions/{draft['id']}/rows", t,
                                    json={"csv": "prefix,cost\n49,0.03\n"})
    assert code == 422 and error["field"] == "prefix" and "49" in error["message"]
    code, rates, _ = await api.call("GET", f"{base}/rate-deck-versions/{draft['id']}/rates", t)
    assert [r["prefix"] for r in rates["items"]] == ["33", "34", "49"]
    await api.call("POST", f"{base}/rate-deck-versions/{draft['id']}/publish", t,
                   json={"effective_at": "2020-01-01T00:00:00Z"})
    code, error, _ = await api.call("POST", f"{base}/rate-deck-versions/{draft['id']}/rows", t,
                                    json={"csv": "prefix,cost\n50,0.03\n"})
    assert code == 422 and error["field"] == "version_id"


@pytest_twisted.ensureDeferred
async def test_report_periods_with_odd_offsets_or_edge_years_are_utc_or_refused(api):
    """Schemathesis found a 500: PostgreSQL refuses a +17:34 offset, and year 1 overflows."""
    made = await onboard(api, "kages.example.net")
    base = f"{made['base']}/reports/calls"
    code, report, _ = await api.call("GET", f"{base}?until=2116-12-10T00%3A21%3A42%2B17%3A34", made["token"])
    assert code == 200 and report["items"] is not None
    code, error, _ = await api.call("GET", f"{base}?until=0001-01-02T00%3A00%3A00Z", made["token"])
    assert code == 422 and error["field"] == "until"


@pytest_twisted.ensureDeferred
async def test_a_refused_call_is_listed_with_its_code_and_reason_and_reports_count_it_apart(api, database):
    made = await onboard(api, "refusals.example.net")
    base, t = made["base"], made["token"]
    isp_id, customer_id = made["isp"]["id"], made["customer"]["id"]
    await database.alone(calls.insert_refusal, isp_id, call_id="r1@phone", node="n", direction="outbound",
                         sip_code=404, reason="Not Found: no route to 0033142685300",
                         at=datetime.datetime.now(datetime.timezone.utc), customer_id=customer_id,
                         callee_dialled="0033142685300")
    code, listed, _ = await api.call("GET", f"{base}/cdrs", t)     # conforms to the OpenAPI document
    assert code == 200 and [(row["disposition"], row["sip_code"], row["reason"], row["price"])
                            for row in listed["items"]] == [("refused", 404, "Not Found: no route to 0033142685300",
                                                             "0.000000")]
    code, report, _ = await api.call("GET", f"{base}/reports/calls", t)
    assert code == 200 and [(row["calls"], row["refused"], row["price"]) for row in report["items"]] == [
        (0, 1, "0.000000")]
