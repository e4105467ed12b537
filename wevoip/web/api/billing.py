"""Rating and billing over the API: decks, plan pricing, payments and charges, call
simulation, CDRs and reports (JSON, or CSV with ?format=csv)."""

from __future__ import annotations

import datetime

from wevoip.billing.calls import CallRefused, simulate_call
from wevoip.billing.decks import DeckIndexes, RateCsvError, build_customer_card, upload_draft, upload_more
from wevoip.store import calls, ledger, pricing, ratedecks, reports
from wevoip.web.api.errors import ApiError
from wevoip.web.csvrows import rows_csv
from wevoip.web.api.jsonio import Download
from wevoip.web.api.routes import (AMOUNT, BOOLEAN, ID, INTEGER, NULLABLE_ID, ROW, STAMP, Call, api_route, items_of,
                                   nullable, obj, record, text)

NULLABLE_AMOUNT = {"anyOf": [AMOUNT, {"type": "null"}]}
CLASSES = {"type": "array", "items": {"enum": list(ratedecks.CLASSES)}, "maxItems": 4}
DECK_CREATE = obj({"name": text(100), "kind": {"enum": ["carrier", "customer"]}, "carrier_id": NULLABLE_ID},
                  ("name", "kind"))
DRAFT = obj({"csv": text(1024 * 1024), "note": text(200)}, ("csv",))
DRAFT_PART = obj({"csv": text(1024 * 1024)}, ("csv",))
PUBLISH = obj({"effective_at": text(40, format="date-time")}, ("effective_at",))
PROFIT = obj({"rules": {"type": "array", "maxItems": 10000, "items": obj({
    "prefix": text(15), "kind": {"enum": ["absolute", "percent"]}, "amount": AMOUNT, "rounding": AMOUNT},
    ("prefix", "kind", "amount"))}, "sources": {"type": "array", "items": INTEGER, "maxItems": 100}},
    ("rules", "sources"))
PLAN_PRICING = obj({**{name: AMOUNT for name in pricing.FEES}, "rate_deck_id": NULLABLE_ID,
                    "service_deck": BOOLEAN, "pulse": {"type": ["integer", "null"], "minimum": 1, "maximum": 3600},
                    "free_minutes": INTEGER, "allowed_classes": CLASSES})
AREA_RATES = obj({"rates": {"type": "array", "maxItems": 10000, "items": obj(
    {"prefix": text(15), "per_minute": AMOUNT}, ("prefix", "per_minute"))}}, ("rates",))
FREE_ZONES = obj({"zones": {"type": "array", "maxItems": 10000, "items": obj(
    {"prefix": text(15), "max_cost": NULLABLE_AMOUNT}, ("prefix",))}}, ("zones",))
DID_BILLING = obj({"setup_fee": NULLABLE_AMOUNT, "monthly_fee": NULLABLE_AMOUNT, "per_minute": NULLABLE_AMOUNT,
                   "e911": BOOLEAN, "fax": BOOLEAN})
MONEY = obj({"amount": AMOUNT, "description": text(200)}, ("amount", "description"))
CUSTOMER_BILLING = obj({"low_balance_threshold": NULLABLE_AMOUNT, "low_balance_email": text(254),
                        "daily_spend_cap": NULLABLE_AMOUNT, "hourly_spend_cap": NULLABLE_AMOUNT,
                        "billing_day": {"type": "integer", "minimum": 1, "maximum": 28}})
ISP_BILLING = obj({"allow_loss": BOOLEAN, "lcr_mode": {"enum": ["cheapest", "priority"]}, "home_prefix": text(3),
                   "low_balance_subject": text(200), "low_balance_body": text(5000),
                   "daily_spend_cap": NULLABLE_AMOUNT, "hourly_spend_cap": NULLABLE_AMOUNT})
SIMULATE = obj({"customer_id": INTEGER, "destination": text(16), "duration_ms": {"type": "integer", "minimum": 0,
                "maximum": 86_400_000}, "direction": {"enum": ["outbound", "inbound", "forwarded"]},
                "did_id": NULLABLE_ID, "forward_to": text(16)}, ("customer_id", "destination", "duration_ms"))


_TEXT = {"type": "string"}
DECK = record({"id": ID, "isp_id": ID, "name": _TEXT, "kind": {"enum": ["carrier", "customer"]},
               "carrier_id": nullable(ID), "created_at": STAMP})
VERSION = record({"id": ID, "isp_id": ID, "deck_id": ID, "status": _TEXT, "effective_at": nullable(STAMP),
                  "published_at": nullable(STAMP), "row_count": ID, "note": _TEXT, "created_at": STAMP})
RATE = record({"prefix": _TEXT, "description": _TEXT, "per_minute": AMOUNT, "connection_fee": AMOUNT,
               "increment_first": ID, "increment_step": ID, "dest_class": _TEXT})
PLAN_PRICED = record({"id": ID, "isp_id": ID, "name": _TEXT, **{fee: AMOUNT for fee in pricing.FEES},
                      "rate_deck_id": nullable(ID), "service_deck": BOOLEAN, "pulse": nullable(ID),
                      "free_minutes": ID, "allowed_classes": {"type": "array", "items": _TEXT}})
LEDGER_ENTRY = record({"id": ID, "isp_id": ID, "customer_id": ID, "kind": _TEXT, "amount": AMOUNT,
                       "balance_after": AMOUNT, "description": _TEXT, "category": _TEXT, "cdr_id": nullable(ID),
                       "created_at": STAMP})
SIMULATION = record({"destination": _TEXT, "direction": _TEXT, "prefix": _TEXT, "description": _TEXT,
                     "dest_class": _TEXT, "per_minute": AMOUNT, "connection_fee": AMOUNT, "increment": _TEXT,
                     "carrier_id": nullable(ID), "carriers": {"type": "array", "items": ID}, "billable_seconds": ID,
                     "free_minutes": ID, "price": AMOUNT, "cost": AMOUNT, "profit": AMOUNT})
CDR = record({"id": ID, "isp_id": ID, **{name: nullable(ID) for name in (
                  "customer_id", "tenant_id", "subscriber_id", "carrier_id", "gateway_id", "did_id")},
               "node": _TEXT, "direction": {"enum": ["outbound", "inbound", "forwarded", "internal"]},
               "caller_dialled": _TEXT, "caller_e164": nullable(_TEXT), "callee_dialled": _TEXT,
               "callee_e164": nullable(_TEXT), "forwarded_e164": nullable(_TEXT), "started_at": STAMP,
               "answered_at": nullable(STAMP), "ended_at": STAMP, "duration_ms": ID, "talk_ms": ID,
               "billable_seconds": ID, "free_minutes": ID,
               # refused: refused before it was admitted, with the SIP code and the reason it was given
               "disposition": {"enum": ["answered", "busy", "no_answer", "failed", "cancelled", "refused"]},
               "sip_code": nullable(ID), "reason": _TEXT, "hangup_by": {"enum": ["", "caller", "callee", "system"]},
               "a_call_id": _TEXT, "b_call_id": nullable(_TEXT), "prefix": _TEXT, "dest_class": _TEXT,
               "price_version_id": nullable(ID), "cost_version_id": nullable(ID), "cost": AMOUNT, "price": AMOUNT,
               "profit": AMOUNT, "ledger_id": nullable(ID), "created_at": STAMP,
               # Which ways the media went (the relay's count when the call ended); null when unmeasured.
               "media_flow": {"enum": ["both", "caller_only", "callee_only", "none", None]},
               "one_way_media": nullable(BOOLEAN)})

_REPORT_SPAN = datetime.timedelta(days=3661)
_EARLIEST = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc) + _REPORT_SPAN
_LATEST = datetime.datetime.max.replace(tzinfo=datetime.timezone.utc) - _REPORT_SPAN


def _moment(field: str, value: str) -> datetime.datetime:
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(422, "invalid", f"{field}: must be an ISO 8601 date and time", field=field) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    # In UTC (PostgreSQL refuses offsets beyond 15:59), and far enough from the years 1 and
    # 9999 that a report's period around it cannot overflow.
    try:
        moment = moment.astimezone(datetime.timezone.utc)
        in_range = _EARLIEST <= moment <= _LATEST
    except OverflowError:
        in_range = False
    if not in_range:
        raise ApiError(422, "invalid", f"{field}: is too far in the past or future", field=field)
    return moment


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


# Rate decks

@api_route("GET", "/isps/{isp_id}/rate-decks", scope="read", summary="List rate decks (carrier and customer cards)",
           tag="billing", returns=DECK, listing=True)
async def list_decks(call: Call):
    limit, offset = call.page()
    return await call.tx(ratedecks.list_decks, call.params["isp_id"], limit=limit, offset=offset)


@api_route("POST", "/isps/{isp_id}/rate-decks", scope="write", summary="Create a carrier or customer card",
           tag="billing", body=DECK_CREATE, returns=DECK, status=201)
async def create_deck(call: Call):
    return await call.tx(lambda tx: ratedecks.create_deck(tx, call.params["isp_id"], **call.body))


@api_route("GET", "/isps/{isp_id}/rate-decks/{deck_id}/versions", scope="read",
           summary="A deck's versions, drafts and published", tag="billing", returns=VERSION, listing=True)
async def list_versions(call: Call):
    limit, offset = call.page()

    async def work(tx):
        await ratedecks.get_deck(tx, call.params["isp_id"], call.params["deck_id"])
        return await ratedecks.list_versions(tx, call.params["isp_id"], call.params["deck_id"], limit=limit,
                                             offset=offset)
    return await call.tx(work)


@api_route("POST", "/isps/{isp_id}/rate-decks/{deck_id}/drafts", scope="write",
           summary="Upload a CSV as a new draft (prefix, description, cost or per_minute, connection_fee, "
                   "increment, class); any bad line refuses it whole, each named by number",
           tag="billing", body=DRAFT, returns=VERSION, status=201)
async def upload(call: Call):
    try:
        return await call.tx(upload_draft, call.params["isp_id"], call.params["deck_id"], call.body["csv"],
                             note=call.body.get("note", ""))
    except RateCsvError as error:
        raise ApiError(422, "invalid", str(error), field="csv", lines=error.problems) from None


@api_route("POST", "/isps/{isp_id}/rate-deck-versions/{version_id}/rows", scope="write",
           summary="Add the next part of a big CSV upload to a draft (bodies are at most 1 MB)", tag="billing",
           body=DRAFT_PART, returns=VERSION)
async def upload_part(call: Call):
    try:
        return await call.tx(upload_more, call.params["isp_id"], call.params["version_id"], call.body["csv"])
    except RateCsvError as error:
        raise ApiError(422, "invalid", str(error), field="csv", lines=error.problems) from None


@api_route("POST", "/isps/{isp_id}/rate-decks/{deck_id}/build", scope="write",
           summary="Build a draft of a customer card from its carrier cards and profit rules", tag="billing",
           returns=ROW, status=201)
async def build(call: Call):
    return await call.tx(lambda tx: build_customer_card(tx, call.params["isp_id"], call.params["deck_id"],
                                                        at=_now(), indexes=DeckIndexes()))


@api_route("PUT", "/isps/{isp_id}/rate-decks/{deck_id}/profit-rules", scope="write",
           summary="Set a customer card's profit rules and the carrier cards it is built from", tag="billing",
           body=PROFIT, returns=ROW)
async def set_profit_rules(call: Call):
    return await call.tx(lambda tx: ratedecks.set_profit_rules(tx, call.params["isp_id"], call.params["deck_id"],
                                                               **call.body))


@api_route("POST", "/isps/{isp_id}/rate-deck-versions/{version_id}/publish", scope="write",
           summary="Publish a draft, in force from effective_at", tag="billing", body=PUBLISH, returns=VERSION)
async def publish(call: Call):
    moment = _moment("effective_at", call.body["effective_at"])
    return await call.tx(ratedecks.publish_version, call.params["isp_id"], call.params["version_id"], moment)


@api_route("GET", "/isps/{isp_id}/rate-deck-versions/{version_id}/rates", scope="read",
           summary="The rows of a deck version", tag="billing", returns=RATE, listing=True)
async def version_rates(call: Call):
    limit, offset = call.page()

    async def work(tx):
        await ratedecks.get_version(tx, call.params["isp_id"], call.params["version_id"])
        return await ratedecks.version_rates(tx, call.params["isp_id"], call.params["version_id"],
                                             limit=limit, offset=offset)
    return await call.tx(work)


# Plans, numbers, accounts

@api_route("PUT", "/isps/{isp_id}/service-plans/{plan_id}/pricing", scope="write",
           summary="Set a plan's fees, customer card and service deck (markup, pulse, free minutes, classes)",
           tag="billing", body=PLAN_PRICING, returns=PLAN_PRICED)
async def set_plan_pricing(call: Call):
    return await call.tx(lambda tx: pricing.set_plan_pricing(tx, call.params["isp_id"], call.params["plan_id"],
                                                             **call.body))


@api_route("PUT", "/isps/{isp_id}/service-plans/{plan_id}/area-rates", scope="write",
           summary="Replace a plan's per-area rates", tag="billing", body=AREA_RATES, returns=items_of(ROW))
async def set_area_rates(call: Call):
    return {"items": await call.tx(pricing.set_area_rates, call.params["isp_id"], call.params["plan_id"],
                                   call.body["rates"])}


@api_route("PUT", "/isps/{isp_id}/service-plans/{plan_id}/free-zones", scope="write",
           summary="Replace a plan's free zones", tag="billing", body=FREE_ZONES, returns=items_of(ROW))
async def set_free_zones(call: Call):
    return {"items": await call.tx(pricing.set_free_zones, call.params["isp_id"], call.params["plan_id"],
                                   call.body["zones"])}


@api_route("PUT", "/isps/{isp_id}/dids/{did_id}/billing", scope="write",
           summary="A DID's own fees and its e911 and fax extras", tag="billing", body=DID_BILLING, returns=ROW)
async def set_did_billing(call: Call):
    return await call.tx(lambda tx: pricing.set_did_billing(tx, call.params["isp_id"], call.params["did_id"],
                                                            **call.body))


@api_route("PUT", "/isps/{isp_id}/billing", scope="admin",
           summary="The ISP's billing settings: loss, LCR mode, home prefix, low-balance mail, spend caps",
           tag="billing", body=ISP_BILLING, returns=ROW)
async def set_isp_billing(call: Call):
    return await call.tx(lambda tx: ledger.set_isp_billing(tx, call.params["isp_id"], **call.body))


@api_route("PUT", "/isps/{isp_id}/customers/{customer_id}/billing", scope="write",
           summary="A customer's low-balance threshold and mail, spend caps and billing day", tag="billing",
           body=CUSTOMER_BILLING, returns=ROW)
async def set_customer_billing(call: Call):
    return await call.tx(lambda tx: ledger.set_customer_billing(tx, call.params["isp_id"],
                                                                call.params["customer_id"], **call.body))


@api_route("POST", "/isps/{isp_id}/customers/{customer_id}/payments", scope="write",
           summary="addPayment: credit the account (a ledger row)", tag="billing", body=MONEY, returns=LEDGER_ENTRY, status=201)
async def add_payment(call: Call):
    return await call.tx(lambda tx: ledger.add_payment(tx, call.params["isp_id"], call.params["customer_id"],
                                                       **call.body))


@api_route("POST", "/isps/{isp_id}/customers/{customer_id}/charges", scope="write",
           summary="addCharge: debit the account (a ledger row)", tag="billing", body=MONEY, returns=LEDGER_ENTRY, status=201)
async def add_charge(call: Call):
    return await call.tx(lambda tx: ledger.add_charge(tx, call.params["isp_id"], call.params["customer_id"],
                                                      **call.body))


@api_route("GET", "/isps/{isp_id}/customers/{customer_id}/ledger", scope="read",
           summary="The account's payments and charges", tag="billing", returns=LEDGER_ENTRY, listing=True, customer_ok=True)
async def list_ledger(call: Call):
    call.principal.check_customer(call.params["customer_id"])
    limit, offset = call.page()
    return await call.tx(ledger.list_ledger, call.params["isp_id"], call.params["customer_id"],
                         limit=limit, offset=offset)


@api_route("POST", "/isps/{isp_id}/customers/{customer_id}/unlock", scope="write",
           summary="Let a customer locked by the fraud guard call again", tag="billing", returns=ROW)
async def unlock_customer(call: Call):
    return await call.tx(calls.unlock_calls, call.params["isp_id"], "customer", call.params["customer_id"])


@api_route("POST", "/isps/{isp_id}/subscribers/{subscriber_id}/unlock", scope="write",
           summary="Let a subscriber locked by the fraud guard call again", tag="billing", returns=ROW)
async def unlock_subscriber(call: Call):
    return await call.tx(calls.unlock_calls, call.params["isp_id"], "subscriber", call.params["subscriber_id"])


@api_route("POST", "/isps/{isp_id}/simulate", scope="read",
           summary="Price a call to a destination for a duration exactly as the real call is charged",
           tag="billing", body=SIMULATE, returns=SIMULATION, customer_ok=True)
async def simulate(call: Call):
    body = dict(call.body)
    call.principal.check_customer(body["customer_id"])
    customer_id, destination, duration_ms = body.pop("customer_id"), body.pop("destination"), body.pop("duration_ms")
    try:
        return await call.tx(lambda tx: simulate_call(tx, call.params["isp_id"], customer_id, destination,
                                                      duration_ms, at=_now(), indexes=DeckIndexes(), **body))
    except CallRefused as refused:
        raise ApiError(422, refused.reason, refused.message, field="destination") from None


# Records and reports

@api_route("GET", "/isps/{isp_id}/cdrs", scope="read", summary="Call records, newest first", tag="reports",
           returns=CDR, listing=True, customer_ok=True, query=("customer_id", "subscriber_id"))
async def list_cdrs(call: Call):
    limit, offset = call.page()
    customer_id = call.principal.customer_id or call.query_int("customer_id")
    return await call.tx(calls.list_cdrs, call.params["isp_id"], customer_id=customer_id,
                         subscriber_id=call.query_int("subscriber_id"), limit=limit, offset=offset)


def _period(call: Call) -> dict[str, datetime.datetime]:
    until = _moment("until", call.query["until"]) if "until" in call.query else _now()
    since = _moment("since", call.query["since"]) if "since" in call.query else until - datetime.timedelta(days=30)
    if until <= since:
        raise ApiError(422, "invalid", "until: must be after since", field="until")
    if until - since > datetime.timedelta(days=3660):
        raise ApiError(422, "invalid", "since: a report covers at most ten years", field="since")
    return {"since": since, "until": until}


def _output(call: Call, name: str, rows: list[dict]):
    form = call.query.get("format", "json")
    if form == "json":
        return {"items": rows}
    if form != "csv":
        raise ApiError(422, "invalid", "format: must be json or csv", field="format")
    return Download("text/csv; charset=utf-8", f"{name}.csv", rows_csv(rows))


REPORT_QUERY = (("since", {"type": "string", "format": "date-time"}), ("until", {"type": "string", "format": "date-time"}),
                ("format", {"enum": ["json", "csv"]}))


def _report(path: str, summary: str, function, name: str, **fixed):
    async def handler(call: Call):
        period = _period(call)
        extra = {key: value(call) for key, value in fixed.items()}
        rows = await call.tx(lambda tx: function(tx, call.params["isp_id"], **period, **extra))
        return _output(call, name, rows)
    handler.__name__ = f"report_{name}"
    api_route("GET", f"/isps/{{isp_id}}/reports/{path}", scope="read",
              summary=f"{summary}; ?since= and ?until= (ISO 8601, default the last 30 days), ?format=csv",
              tag="reports", returns=items_of(ROW), query=REPORT_QUERY, downloads=("text/csv",))(handler)


_report("calls", "Calls with cost, price and profit: total for the ISP", reports.calls_report, "calls")
_report("calls/customers", "Calls with cost, price and profit per customer", reports.calls_report,
        "calls_by_customer", group=lambda call: "customer")
_report("calls/subscribers", "Calls with cost, price and profit per subscriber", reports.calls_report,
        "calls_by_subscriber", group=lambda call: "subscriber")
_report("financial", "Revenue, deposits and costs month by month", reports.financial_report, "financial")
_report("dids", "DIDs with their calls and incoming revenue", reports.dids_report, "dids")
_report("subscribers", "Subscribers with their calls, cost and price", reports.subscribers_report, "subscribers")
_report("daily", "Minutes and revenue per day (for the console chart)", reports.daily_report, "daily")
