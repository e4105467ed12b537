"""
Every API route, taken from the route table (so a new route is covered the day it is
added), tried against one ISP's objects with another ISP's token and with the token of
another customer of the same ISP: 403 or 404 every time, and nothing changes. (A customer's
lists under its ISP's path answer with its own rows only, so for those the check is that
none of the victim's rows is among them.)
"""

import datetime
import re

import pytest
import pytest_twisted
from psycopg2 import sql

from tests.web.conftest import PLATFORM_TOKEN
from tests.web.flows import onboard
from wevoip.store.admins import SCOPES
from wevoip.store import ratedecks, signups
from wevoip.web.api.routes import ROUTES


async def _victim_ids(api, database, victim) -> dict[str, int]:
    """An id of the victim's for every path parameter; a new kind is found by its table's name."""
    ids = {"isp_id": victim["isp"]["id"], "customer_id": victim["customer"]["id"],
           "tenant_id": victim["tenant"]["id"], "subscriber_id": victim["subscriber"]["id"],
           "plan_id": victim["plan"]["id"], "domain_id": victim["domain"]["id"],
           "carrier_id": victim["carrier"]["id"], "gateway_id": victim["gateway"]["id"],
           "did_id": victim["did"]["id"], "rule_id": victim["rule"]["id"], "token_id": victim["token_id"],
           "deck_id": victim["deck_id"], "version_id": victim["version_id"], "signup_id": victim["signup_id"]}
    for name in {param for route in ROUTES for param in route.path_params} - set(ids):
        table = name.removesuffix("_id") + "s"
        rows = await database.fetch(sql.SQL("select id from {} where isp_id = %s order by id limit 1").format(
            sql.Identifier(table)), (victim["isp"]["id"],)) if await _exists(database, table) else []
        if not rows:
            pytest.fail(f"no object of the victim's for path parameter {name!r}: make one in this test")
        ids[name] = rows[0]["id"]
    return ids


async def _exists(database, table: str) -> bool:
    return bool(await database.fetch("select 1 from information_schema.tables where table_name = %s", (table,)))


def _concrete(path: str, ids: dict) -> str:
    return "/api/v1" + re.sub(r"\{(\w+)\}", lambda m: str(ids[m.group(1)]), path)


async def _token(api, base, **body):
    code, made, _ = await api.call("POST", f"{base}/tokens", PLATFORM_TOKEN, json={"scopes": list(SCOPES), **body})
    assert code == 201, made
    return made


async def _state(database, isp_id):
    tables = ["customers", "tenants", "subscribers", "domains", "carriers", "gateways", "dids",
              "dialplan_rules", "api_tokens", "service_plans", "rate_decks", "rate_deck_versions", "ledger",
              "isp_admins"]
    return {table: await database.fetch(sql.SQL("select * from {} where isp_id = %s order by id").format(
        sql.Identifier(table)), (isp_id,)) for table in tables}


@pytest_twisted.ensureDeferred
async def test_every_route_refuses_another_isp_and_another_customer(api, database):
    victim = await onboard(api, "victim.example.net")
    victim["token_id"] = (await _token(api, victim["base"], name="victim's"))["id"]
    other_isp = await onboard(api, "other.example.net")
    other_isp_token = (await _token(api, other_isp["base"]))["token"]
    code, neighbour, _ = await api.call("POST", f"{victim['base']}/customers", PLATFORM_TOKEN,
                                        json={"name": "Neighbour", "status": "ACTIVE"})
    neighbour_token = (await _token(api, victim["base"], customer_id=neighbour["id"]))["token"]
    code, deck, _ = await api.call("POST", f"{victim['base']}/rate-decks", PLATFORM_TOKEN,
                                   json={"name": "Victim's card", "kind": "carrier",
                                         "carrier_id": victim["carrier"]["id"]})
    assert code == 201, deck
    code, draft, _ = await api.call("POST", f"{victim['base']}/rate-decks/{deck['id']}/drafts", PLATFORM_TOKEN,
                                    json={"csv": "prefix,description,cost,connection_fee,increment\n"
                                                 "1,USA,0.01,0,1/1\n"})
    assert code == 201, draft
    victim["deck_id"], victim["version_id"] = deck["id"], draft["id"]
    # A signup in progress belongs to no ISP yet: only the platform reaches it.
    victim["signup_id"] = (await database.transact(signups.start_signup, "new@victim.example", "t" * 43,
                                                   datetime.timedelta(hours=1)))["id"]
    ids = await _victim_ids(api, database, victim)
    before = await _state(database, victim["isp"]["id"])

    for who, token in (("another ISP", other_isp_token), ("another customer", neighbour_token)):
        for route in ROUTES:
            for body in ({}, None):
                code, answer, _ = await api.call(route.method, _concrete(route.path, ids), token, json=body)
                if who == "another customer" and route.customer_ok and route.path_params == ["isp_id"]:
                    # Lists and creations of its own: never a victim's row, never a crash.
                    assert code < 500, (who, route.method, route.path, code, answer)
                    rows = answer.get("items", []) if code == 200 else []
                    assert all(row["customer_id"] == neighbour["id"] for row in rows), (route.path, answer)
                    continue
                assert code in (403, 404), (who, route.method, route.path, code, answer)

    after = await _state(database, victim["isp"]["id"])
    after["api_tokens"] = [{**row, "last_used_at": None} for row in after["api_tokens"]]
    before["api_tokens"] = [{**row, "last_used_at": None} for row in before["api_tokens"]]
    assert after == before


@pytest_twisted.ensureDeferred
async def test_every_nested_route_under_ones_own_isp_finds_no_foreign_or_missing_parent(api, database):
    """An ISP's own path with another ISP's object (or a missing one) in it: a list of a
    foreign carrier's gateways, a foreign deck's versions, and every other route nested
    under an object is 404, never an empty 200; nothing of the victim's changes."""
    victim = await onboard(api, "victim.example.net")
    victim["token_id"] = (await _token(api, victim["base"], name="victim's"))["id"]
    code, deck, _ = await api.call("POST", f"{victim['base']}/rate-decks", PLATFORM_TOKEN,
                                   json={"name": "Victim's card", "kind": "carrier",
                                         "carrier_id": victim["carrier"]["id"]})
    code, draft, _ = await api.call("POST", f"{victim['base']}/rate-decks/{deck['id']}/drafts", PLATFORM_TOKEN,
                                    json={"csv": "prefix,description,cost,connection_fee,increment\n"
                                                 "1,USA,0.01,0,1/1\n"})
    victim["deck_id"], victim["version_id"] = deck["id"], draft["id"]
    victim["signup_id"] = (await database.transact(signups.start_signup, "new@victim.example", "t" * 43,
                                                   datetime.timedelta(hours=1)))["id"]
    foreign = await _victim_ids(api, database, victim)
    attacker = await onboard(api, "attacker.example.net")
    attacker_token = (await _token(api, attacker["base"]))["token"]
    missing = {name: 2**62 for name in foreign}
    before = await _state(database, victim["isp"]["id"])

    checked = 0
    for ids, token in (({**foreign, "isp_id": attacker["isp"]["id"]}, attacker_token),
                       ({**missing, "isp_id": attacker["isp"]["id"]}, attacker_token),
                       ({**missing, "isp_id": attacker["isp"]["id"]}, PLATFORM_TOKEN)):
        for route in ROUTES:
            if route.path_params == ["isp_id"] or "isp_id" not in route.path_params:
                continue        # nothing nested under an ISP's object (platform routes: the test above)
            checked += 1
            code, answer, _ = await api.call(route.method, _concrete(route.path, ids), token,
                                             json=None if route.body is None else {})
            if route.method == "GET":
                assert code == 404 and answer["error"] == "not_found", (route.path, ids["isp_id"], code, answer)
            else:
                # A write is refused for its body (422) or its missing object (404), never done.
                assert code in (404, 422), (route.method, route.path, code, answer)
    assert checked > 30
    after = await _state(database, victim["isp"]["id"])
    assert after == before
