"""
Answers that cannot fail after their write: every type the store returns has a JSON form,
a customer read after a real billing run answers 200 to every role, and a value without a
JSON form rolls its transaction back (a 500 with nothing written, so a retry is safe).
"""

import datetime
import inspect
import ipaddress
import json
import uuid
from decimal import Decimal

import pytest
import pytest_twisted
import treq
from twisted.internet import defer, task

from tests.web.conftest import PLATFORM_TOKEN
from tests.web.flows import onboard
from wevoip.billing.recurring import BillingTimer
from wevoip.store import customers, ledger
from wevoip.web.api.jsonio import dumps, read_json
from wevoip.web.api.routes import ROUTES


def test_every_type_the_store_returns_has_a_json_form():
    moment = datetime.datetime(2026, 12, 6, 4, 5, 6, 700000, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    row = {"date": datetime.date(2026, 12, 20), "stamp": moment, "naive": datetime.datetime(2026, 12, 6, 4, 5),
           "time": datetime.time(9, 30), "interval": datetime.timedelta(days=1, hours=2, seconds=3.5),
           "negative": datetime.timedelta(minutes=-90), "zero": datetime.timedelta(0),
           "money": Decimal("12.500000"), "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
           "inet": ipaddress.ip_address("192.0.2.1"), "cidr": ipaddress.ip_network("2001:db8::/32"),
           "interface": ipaddress.ip_interface("192.0.2.1/24"), "array": [1, "a", None], "json": {"a": [1]},
           "bytes": memoryview(b"secret")}
    assert json.loads(dumps(row)) == {
        "date": "2026-12-20", "stamp": "2026-12-06T02:05:06.700000Z", "naive": "2026-12-06T04:05:00Z",
        "time": "09:30:00", "interval": "P1DT2H3.5S", "negative": "-PT1H30M", "zero": "PT0S",
        "money": "12.500000", "uuid": "12345678-1234-5678-1234-567812345678", "inet": "192.0.2.1",
        "cidr": "2001:db8::/32", "interface": "192.0.2.1/24", "array": [1, "a", None], "json": {"a": [1]},
        "bytes": None}
    for unknown in (object(), float("nan"), float("inf")):
        with pytest.raises((TypeError, ValueError)):
            dumps({"value": unknown})


def test_every_handler_reaches_the_store_through_the_calls_transaction():
    """Call.tx encodes before the COMMIT; a handler that opened its own transaction would not."""
    for route in ROUTES:
        source = inspect.getsource(route.handler)
        assert ".transact(" not in source and ".fetch(" not in source and ".decide(" not in source, (
            route.method, route.path)


async def _billed(api, database):
    """An ISP with a priced plan, its customer billed by the real billing timer: the
    account's period_start and next_billing_date are SQL dates from then on."""
    made = await onboard(api, "billed.example.net")
    base, token = made["base"], made["token"]
    code, plan, _ = await api.call("PUT", f"{base}/service-plans/{made['plan']['id']}/pricing", token,
                                   json={"monthly_fee": "15.00", "setup_fee": "5.00"})
    assert code == 200, plan
    clock = task.Clock()
    clock.advance(datetime.datetime.now(datetime.timezone.utc).timestamp())
    timer = BillingTimer(clock, lambda: defer.succeed(database), "node-encoding", interval_seconds=86400)
    timer.startService()
    await timer.tick()
    await timer.stopService()
    row = await database.transact(customers.get_customer, made["isp"]["id"], made["customer"]["id"])
    assert isinstance(row["next_billing_date"], datetime.date) and row["balance"] == Decimal("-20")
    return made, row


@pytest_twisted.ensureDeferred
async def test_a_billed_customer_answers_every_role_and_route(api, database):
    made, row = await _billed(api, database)
    base, token, customer_id = made["base"], made["token"], made["customer"]["id"]
    path = f"{base}/customers/{customer_id}"
    code, customer_token, _ = await api.call("POST", f"{base}/tokens", token,
                                             json={"name": "acme", "scopes": ["read", "write"],
                                                   "customer_id": customer_id})
    assert code == 201, customer_token
    dates = {"period_start": row["period_start"].isoformat(), "next_billing_date": row["next_billing_date"].isoformat()}

    for who in (PLATFORM_TOKEN, token, customer_token["token"]):
        code, shown, _ = await api.call("GET", path, who)
        assert code == 200 and {key: shown[key] for key in dates} == dates, shown
        code, entries, _ = await api.call("GET", f"{path}/ledger", who)
        assert code == 200 and sorted(entry["amount"] for entry in entries["items"])[0].startswith("-15"), entries
    for who in (PLATFORM_TOKEN, token):
        code, listed, _ = await api.call("GET", f"{base}/customers", who)
        assert code == 200 and [c["next_billing_date"] for c in listed["items"]] == [dates["next_billing_date"]]
    code, changed, _ = await api.call("PATCH", path, token, json={"name": "Acme Ltd"})
    assert code == 200 and changed["name"] == "Acme Ltd" and changed["period_start"] == dates["period_start"]
    code, billing, _ = await api.call("PUT", f"{path}/billing", token, json={"billing_day": 3})
    assert code == 200 and billing["billing_day"] == 3 and billing["next_billing_date"] == dates["next_billing_date"]
    code, refused, _ = await api.call("PATCH", path, customer_token["token"], json={"name": "Mine now"})
    assert code == 403, refused


@pytest_twisted.ensureDeferred
async def test_an_answer_without_a_json_form_rolls_its_write_back(api, database, monkeypatch):
    """A store value the encoder does not know (a type added tomorrow) is a 500 with nothing
    written, for a plain PATCH and for a POST under an Idempotency-Key, so a retry is safe."""
    made, _ = await _billed(api, database)
    base, token, customer_id = made["base"], made["token"], made["customer"]["id"]
    update_customer, add_payment = customers.update_customer, ledger.add_payment

    async def update_with_unknown(tx, *args, **kwargs):
        return {**await update_customer(tx, *args, **kwargs), "surprise": object()}
    monkeypatch.setattr(customers, "update_customer", update_with_unknown)

    async def pay_with_unknown(tx, *args, **kwargs):
        return {**await add_payment(tx, *args, **kwargs), "surprise": object()}
    monkeypatch.setattr(ledger, "add_payment", pay_with_unknown)

    before = await database.fetch("select * from customers where id = %s", (customer_id,))
    ledger_before = await database.fetch("select * from ledger where customer_id = %s order by id", (customer_id,))
    for method, path, body, headers in (
            ("PATCH", f"{base}/customers/{customer_id}", {"name": "Renamed", "credit_limit": "99"}, {}),
            ("POST", f"{base}/customers/{customer_id}/payments", {"amount": "30", "description": "wire"},
             {"Idempotency-Key": "pay-1"}),
            ("POST", f"{base}/customers/{customer_id}/payments", {"amount": "30", "description": "wire"}, {})):
        response = await treq.request(method, api.base + path, json=body,
                                      headers={"Authorization": f"Bearer {token}", **headers})
        answer = json.loads(await response.text())
        assert response.code == 500 and answer["error"] == "internal", (method, path, answer)
    assert await database.fetch("select * from customers where id = %s", (customer_id,)) == before
    assert await database.fetch("select * from ledger where customer_id = %s order by id",
                                (customer_id,)) == ledger_before
    assert await database.fetch("select * from idempotency_keys") == []

    monkeypatch.undo()
    code, paid, _ = await api.call("POST", f"{base}/customers/{customer_id}/payments", token,
                                   json={"amount": "30", "description": "wire"}, headers={"Idempotency-Key": "pay-1"})
    assert code == 201, paid
    code, shown, _ = await api.call("GET", f"{base}/customers/{customer_id}", token)
    assert shown["balance"] == "10.000000" and shown["name"] == "Acme", shown


class _Body:
    def __init__(self, raw: bytes):
        self.raw = raw
        self.content = self

    def read(self, size: int) -> bytes:
        return self.raw[:size]

    def getHeader(self, name: bytes) -> bytes:  # noqa: N802 (Twisted's name)
        return b"application/json"


@pytest.mark.parametrize("raw", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 40 + b"1" + b"}" * 40,
                                 b"[" * 33 + b"]" * 33])
def test_a_deeply_nested_body_is_400(raw):
    from wevoip.web.api.errors import ApiError
    with pytest.raises(ApiError) as raised:
        read_json(_Body(raw))
    assert raised.value.status == 400 and raised.value.body["error"] == "too_deep"
    assert read_json(_Body(b"[" * 32 + b"]" * 32))[1] is not None


@pytest_twisted.ensureDeferred
async def test_a_deeply_nested_body_over_http_is_400_with_json(api):
    for raw in (b"[" * 200_000 + b"]" * 200_000, b'{"name":' + b"[" * 50 + b"]" * 50 + b"}"):
        response = await treq.request("POST", api.base + "/api/v1/isps", data=raw,
                                      headers={"Authorization": f"Bearer {PLATFORM_TOKEN}",
                                               "Content-Type": "application/json"})
        answer = json.loads(await response.text())
        assert response.code == 400 and answer["error"] == "too_deep", answer
    code, isps, _ = await api.call("GET", "/api/v1/isps")
    assert code == 200 and isps["items"] == []
