"""
A node that lives: an ISP provisioned over the API, then 40 days of the node's own time
(a task.Clock driving the real billing timer, calls rated and settled at the clock's
time, phones registering and their bindings expiring by the location sweep's clock), and
after every simulated day every GET route of the API (taken from the route table, so a
new route is read the day it is added) for every role: the platform, the ISP's token and
a customer's token. Every answer is checked against /api/openapi.json (`conforms`, in
Api.call) and must be the status the role is owed. At the end schemathesis walks the
lived-in node with each role's token, stateful with links inferred from the document.

The simulation starts at the real time and runs forward, so rows stamped by PostgreSQL's
now() (ledger entries, token use) and by the clock agree on what is past.
"""

import datetime
import os
import re
import secrets
import sys
from decimal import Decimal

import pytest_twisted
from psycopg2 import sql
from twisted.internet import defer, reactor, task
from twisted.internet.utils import getProcessOutputAndValue

from tests.web.conftest import PLATFORM_TOKEN
from tests.web.flows import onboard
from wevoip.billing.calls import CallEnd, CallRefused, authorise_call, settle_call
from wevoip.billing.decks import DeckIndexes
from wevoip.billing.recurring import BillingTimer
from wevoip.store import registrations, signups
from wevoip.store.registrations import BindingRecord
from wevoip.web.api.routes import ROUTES

DAY = 86400
DAYS = 40
CARD = "prefix,description,cost,connection_fee,increment\n1,North America,0.0100,0,60/60\n"


class Node:
    """The ISP's world and the clock it lives by."""

    def __init__(self, api, database):
        self.api = api
        self.database = database
        self.clock = task.Clock()
        self.clock.advance(datetime.datetime.now(datetime.timezone.utc).timestamp())
        self.start = self.now
        self.indexes = DeckIndexes()

    @property
    def now(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self.clock.seconds(), datetime.timezone.utc)

    async def call(self, method, path, token, json=None, expect=200):
        code, body, _ = await self.api.call(method, path, token, json=json)
        assert code == expect, (method, path, code, body)
        return body

    async def provision(self):
        made = await onboard(self.api, "lives.example.net")
        self.made, base, token = made, made["base"], made["token"]
        self.base, self.token, self.isp_id = base, token, made["isp"]["id"]
        deck = await self.call("POST", f"{base}/rate-decks", token, {"name": "Carrier One card", "kind": "carrier",
                                                                     "carrier_id": made["carrier"]["id"]}, 201)
        draft = await self.call("POST", f"{base}/rate-decks/{deck['id']}/drafts", token, {"csv": CARD}, 201)
        await self.call("POST", f"{base}/rate-deck-versions/{draft['id']}/publish", token,
                        {"effective_at": "2020-01-01T00:00:00Z"})
        await self.call("PUT", f"{base}/billing", token, {"home_prefix": "1"})
        await self.call("PUT", f"{base}/service-plans/{made['plan']['id']}/pricing", token, {
            "service_deck": True, "monthly_fee": "20.00", "setup_fee": "5.00", "did_monthly_fee": "1.00"})
        # Acme: HARD prepaid with enough for its first month only; suspended by the second.
        self.acme = made["customer"]["id"]
        await self.call("PATCH", f"{base}/customers/{self.acme}", token,
                        {"balance_management": "HARD", "billing_mode": "prepaid", "email": "pay@acme.example"})
        await self.call("PUT", f"{base}/customers/{self.acme}/billing", token,
                        {"low_balance_threshold": "10", "low_balance_email": "pay@acme.example"})
        await self.call("POST", f"{base}/customers/{self.acme}/payments", token,
                        {"amount": "30", "description": "opening"}, 201)
        # Beta: SOFT postpaid, billed on the 3rd, suspended by hand for a while.
        beta = await self.call("POST", f"{base}/customers", token, {
            "name": "Beta", "service_plan_id": made["plan"]["id"], "billing_mode": "postpaid",
            "balance_management": "SOFT", "credit_limit": "100", "status": "ACTIVE"}, 201)
        self.beta = beta["id"]
        await self.call("PUT", f"{base}/customers/{self.beta}/billing", token, {"billing_day": 3})
        # Gamma: a signup still waiting, activated on day 10.
        self.gamma = (await self.call("POST", f"{base}/customers", token, {"name": "Gamma"}, 201))["id"]
        self.customer_token = (await self.call("POST", f"{base}/tokens", token, {
            "name": "acme's billing", "scopes": ["read", "write"], "customer_id": self.acme}, 201))["token"]
        await self.call("PUT", f"{base}/webhook", token, {"url": "https://crm.example.net/hooks"})
        self.timer = BillingTimer(self.clock, lambda: defer.succeed(self.database), "node-lives",
                                  interval_seconds=DAY)
        self.timer.startService()
        await self.timer.tick()

    async def ids(self) -> dict[str, int]:
        """An id of the living ISP's for every path parameter of the route table."""
        ids = {"isp_id": self.isp_id, "customer_id": self.acme}
        # A signup in progress belongs to no ISP yet: one of the platform's.
        ids["signup_id"] = (await self.database.transact(
            signups.start_signup, "someone@living.example", secrets.token_urlsafe(32), datetime.timedelta(days=90)))["id"]
        for name in {param for route in ROUTES for param in route.path_params} - set(ids):
            table = {"plan_id": "service_plans", "deck_id": "rate_decks", "version_id": "rate_deck_versions",
                     "rule_id": "dialplan_rules", "token_id": "api_tokens"}.get(name, name.removesuffix("_id") + "s")
            owned = " and customer_id = %s" if table in ("tenants", "subscribers", "dids") else ""
            row = await self.database.fetch(sql.SQL("select id from {} where isp_id = %s" + owned
                                                    + " order by id limit 1").format(sql.Identifier(table)),
                                            (self.isp_id, self.acme) if owned else (self.isp_id,))
            assert row, f"the living ISP has nothing for {name}: give it one in provision()"
            ids[name] = row[0]["id"]
        return ids

    async def live_a_day(self, day: int):
        """What happens to the ISP on one day, then the clock moves a day and billing runs."""
        pilot = self.made["subscriber"]
        await self.database.transact(registrations.save_binding, self.isp_id, self.made["tenant"]["id"], pilot["id"],
                                     _binding(f"sip:alice@192.0.2.{day + 1}:5060", self.now, 36 * 3600), "node-lives")
        if day == 0:
            await self.database.transact(registrations.save_binding, self.isp_id, self.made["tenant"]["id"],
                                         pilot["id"], _binding("sip:alice@desk.example:5060", self.now, 20 * DAY),
                                         "node-lives")
        for number in range(2):
            await self._a_call(day, number)
        if day == 10:
            await self.call("PATCH", f"{self.base}/customers/{self.gamma}", self.token, {"status": "ACTIVE"})
        if day == 15:
            await self.call("PATCH", f"{self.base}/customers/{self.beta}", self.token, {"status": "SUSPENDED"})
        if day == 22:
            await self.call("PATCH", f"{self.base}/customers/{self.beta}", self.token, {"status": "ACTIVE"})
        if day == 35:
            await self.call("POST", f"{self.base}/customers/{self.acme}/payments", self.token,
                            {"amount": "50", "description": "top-up"}, 201)
        self.clock.advance(DAY)
        await self.timer.tick()
        await self.database.transact(registrations.delete_expired, self.now)

    async def _a_call(self, day: int, number: int):
        """A 90 s call to North America, rated and settled as the B2BUA would, at the clock's time."""
        at = self.now + datetime.timedelta(hours=9, minutes=number)

        async def authorise(tx):
            return await authorise_call(tx, self.isp_id, customer_id=self.acme, destination="+12125550100",
                                        call_id=f"day{day}-{number}@lives", node="node-lives",
                                        indexes=self.indexes, at=at, subscriber_id=self.made["subscriber"]["id"])
        try:
            held = await self.database.transact(authorise)
        except CallRefused:
            return
        end = CallEnd(ended_at=at + datetime.timedelta(seconds=90), disposition="answered", answered_at=at,
                      sip_code=200, hangup_by="caller", carrier_id=self.made["carrier"]["id"],
                      tenant_id=self.made["tenant"]["id"], callee_dialled="+12125550100")
        await self.database.transact(lambda tx: settle_call(tx, self.isp_id, held.reservation_id, end,
                                                            indexes=self.indexes))


def _binding(contact: str, now: datetime.datetime, seconds: int) -> BindingRecord:
    return BindingRecord(contact=contact, q=Decimal("1.0"), call_id=f"{contact}-reg", cseq=1,
                         expires_at=now + datetime.timedelta(seconds=seconds), source="192.0.2.1:5060",
                         transport="udp", user_agent="living/1.0", local_address="127.0.0.1:5060")


def _path(route, ids, node: Node) -> str:
    path = "/api/v1" + re.sub(r"\{(\w+)\}", lambda m: str(ids[m.group(1)]), route.path)
    if "/reports/" in route.path:
        since = node.start.strftime("%Y-%m-%dT%H:%M:%SZ")
        until = (node.now + datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        path += f"?since={since}&until={until}"
    return path


def _owed(route, role: str) -> int:
    if role == "customer":
        return 200 if route.customer_ok else 403
    return 403 if route.platform_only and role == "isp" else 200


_GETS = [route for route in ROUTES if route.method == "GET"]
# A list's items and the detail route that shows one: .../customers -> .../customers/{customer_id},
# .../tenants/{tenant_id}/subscribers -> /isps/{isp_id}/subscribers/{subscriber_id}.
_DETAIL_OF = {lister.path: detail for lister in _GETS if lister.listing for detail in _GETS
              if not detail.listing and re.fullmatch(r"/isps/\{isp_id\}/" + re.escape(lister.path.split("/")[-1])
                                                     + r"/\{\w+\}", detail.path)}
_DETAIL_OF["/isps"] = next(route for route in _GETS if route.path == "/isps/{isp_id}")


async def read_everything(node: Node, day: int, every_item: bool) -> dict:
    """Every GET route for every role: what each is owed, and an answer the document allows;
    with `every_item`, also the detail route of every item of every list the role sees."""
    ids = await node.ids()
    seen = {}
    for route in _GETS:
        path = _path(route, ids, node)
        for role, token in (("platform", PLATFORM_TOKEN), ("isp", node.token), ("customer", node.customer_token)):
            code, body, _ = await node.api.call("GET", path, token)
            assert code == _owed(route, role), (day, role, path, code, body)
            seen[(role, route.path)] = body
            detail = _DETAIL_OF.get(route.path)
            if not every_item or detail is None or code != 200:
                continue
            for item in body["items"]:
                one = _path(detail, {**ids, detail.path_params[-1]: item["id"]}, node)
                code, shown, _ = await node.api.call("GET", one, token)
                assert code == _owed(detail, role) and (code != 200 or shown["id"] == item["id"]), (
                    day, role, one, code, shown)
    return seen


@pytest_twisted.ensureDeferred
async def test_a_node_lives_forty_days_and_every_answer_keeps_its_promise(api, database, tmp_path):
    node = Node(api, database)
    await node.provision()
    statuses, registered, balances = [], [], []
    for day in range(DAYS):
        await node.live_a_day(day)
        seen = await read_everything(node, day, every_item=day % 10 == 9)
        acme = seen[("customer", "/isps/{isp_id}/customers/{customer_id}")]
        listed = {c["id"]: c for c in seen[("isp", "/isps/{isp_id}/customers")]["items"]}
        statuses.append((listed[node.acme]["status"], listed[node.beta]["status"], listed[node.gamma]["status"]))
        balances.append(Decimal(acme["balance"]))
        registered.append(len(seen[("customer", "/isps/{isp_id}/tenants/{tenant_id}/registrations")]["items"]))
        assert acme["next_billing_date"] > node.now.date().isoformat() >= acme["period_start"], acme
        assert all(c["next_billing_date"] for c in listed.values() if c["status"] != "WAIT"), listed
    await node.timer.stopService()

    # The days did what such days do: a month's fees suspended Acme, its top-up brought it back,
    # Beta was suspended by hand and came back, Gamma's signup was activated and billed.
    assert ("SUSPENDED", "ACTIVE", "ACTIVE") in statuses and statuses[-1] == ("ACTIVE", "ACTIVE", "ACTIVE")
    assert statuses[16] == ("ACTIVE", "SUSPENDED", "ACTIVE")
    assert statuses[0][2] == "WAIT" and statuses[12][2] == "ACTIVE"
    assert min(balances) < 0 < balances[-1]
    # Each day's 36-hour binding outlived its day only; the 20-day one lived its 20 days.
    assert registered[0] == registered[18] == 2 and registered[19] == registered[-1] == 1, registered
    ledger = await node.call("GET", f"{node.base}/customers/{node.acme}/ledger?limit=1000", node.token)
    monthly = sorted(entry["description"] for entry in ledger["items"] if "monthly fee" in entry["description"])
    assert monthly == [f"Basic: monthly fee {period}" for period in _periods(node.start.date(), node.now.date())]
    cdrs = await node.call("GET", f"{node.base}/cdrs?limit=1000", node.customer_token)
    assert 0 < len(cdrs["items"]) < 2 * DAYS

    await _schemathesis(node, tmp_path)


def _periods(first: datetime.date, last: datetime.date) -> list[str]:
    """The months billed between two days for billing day 1 (the default): the first day's
    month, and each month whose 1st came after it."""
    periods = [first.strftime("%Y-%m")]
    day = first
    while day < last:
        day += datetime.timedelta(days=1)
        if day.day == 1:
            periods.append(day.strftime("%Y-%m"))
    return periods


CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance")


async def _schemathesis(node: Node, tmp_path):
    """Schemathesis over the lived-in node, once per role, least powerful first (a later
    role may delete what an earlier one reads). Path parameters are the node's own objects
    (the customer's for its token), so requests reach its lived-in rows instead of 404s;
    the stateful phase chains operations by links schemathesis infers from the document
    (an object's id from one answer fed to the operations that take it). The coverage
    phase (every edge case the document allows) takes minutes per role and is run on a
    fresh node by test_schemathesis.py; here fuzzing is bounded by --max-examples."""
    ids = await node.ids()
    customer_token_id = (await node.database.fetch(
        "select id from api_tokens where customer_id = %s", (node.acme,)))[0]["id"]
    for role, token, examples in (("customer", node.customer_token, 3), ("isp", node.token, 5),
                                  ("platform", PLATFORM_TOKEN, 3)):
        # Never the ISP's own token among those revoked: its run would end in 401s.
        fixed = {**ids, "token_id": customer_token_id}
        config = tmp_path / f"{role}.toml"
        config.write_text("[phases.stateful]\nmax-steps = 12\n\n[parameters]\n"
                          + "".join(f'"path.{name}" = {value}\n' for name, value in fixed.items()))
        argv = ["-m", "schemathesis.cli", "--config-file", str(config), "run", f"{node.api.base}/api/openapi.json",
                "--checks", ",".join(CHECKS), "--header", f"Authorization: Bearer {token}", "--max-examples", str(examples),
                "--seed", "12", "--phases", "fuzzing,stateful", "--workers", "1", "--generation-database", "none",
                "--request-timeout", "20", "--no-color", "--suppress-health-check", "all"]
        # What the role may not do is 403 for it, as read_everything showed every day.
        allowed = [route for route in ROUTES if route.customer_ok or role != "customer"
                   if not route.platform_only or role == "platform"]
        argv += [arg for route in allowed for arg in ("--include-operation-id", route.handler.__name__)]
        env = {**os.environ, "SCHEMATHESIS_HOOKS": "", "HOME": str(tmp_path)}
        out, err, code = await getProcessOutputAndValue(sys.executable, argv, env=env, path=str(tmp_path),
                                                        reactor=reactor)
        report = (out + err).decode("utf-8", "replace")
        assert code == 0, (role, report)
        assert re.search(r"Stateful \(in", report) and "Authentication failed" not in report, (role, report)
