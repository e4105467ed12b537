"""Dialplan rules through the API: ordered, checked, loaded from a preset, tried on a number."""

import pytest_twisted

from tests.web.flows import onboard


async def _rules(api, made):
    code, page, _ = await api.call("GET", f"{made['base']}/dialplan-rules", made["token"])
    assert code == 200
    return page["items"]


@pytest_twisted.ensureDeferred
async def test_rules_are_kept_in_order_and_can_be_moved_and_deleted(api):
    made = await onboard(api, "kages.example.net")
    base, token = made["base"], made["token"]
    for rule in await _rules(api, made):
        code, _, _ = await api.call("DELETE", f"{base}/dialplan-rules/{rule['id']}", token)
        assert code == 204
    made_rules = []
    for digits in ("4", "5", "6"):
        code, rule, _ = await api.call("POST", f"{base}/dialplan-rules", token, json={
            "match": rf"{digits}\d{{3}}", "subs": r"^(\d+)$", "replacement": r"+1555\1", "description": digits})
        assert code == 201, rule
        made_rules.append(rule)
    code, first, _ = await api.call("POST", f"{base}/dialplan-rules", token, json={
        "match": r"9\d+", "subs": r"^9(\d+)$", "replacement": r"+\1", "position": 0})
    assert code == 201 and first["position"] == 0
    assert [r["description"] for r in await _rules(api, made)] == ["", "4", "5", "6"]
    new_order = [made_rules[2]["id"], first["id"], made_rules[0]["id"], made_rules[1]["id"]]
    code, ordered, _ = await api.call("PUT", f"{base}/dialplan-rules/order", token, json={"rule_ids": new_order})
    assert code == 200 and [r["id"] for r in ordered["items"]] == new_order
    code, error, _ = await api.call("PUT", f"{base}/dialplan-rules/order", token,
                                    json={"rule_ids": new_order[:3]})
    assert code == 422 and error["field"] == "rule_ids"
    code, _, _ = await api.call("DELETE", f"{base}/dialplan-rules/{first['id']}", token)
    assert code == 204
    rules = await _rules(api, made)
    assert [(r["position"], r["description"]) for r in rules] == [(0, "6"), (1, "4"), (2, "5")]
    code, changed, _ = await api.call("PATCH", f"{base}/dialplan-rules/{rules[0]['id']}", token,
                                      json={"description": "six"})
    assert code == 200 and changed["description"] == "six" and changed["position"] == 0


@pytest_twisted.ensureDeferred
async def test_a_dangerous_or_broken_rule_is_refused_naming_the_field(api):
    made = await onboard(api, "kages.example.net")
    path = f"{made['base']}/dialplan-rules"
    before = await _rules(api, made)
    for body, field in [({"match": "(a+)+", "subs": "x", "replacement": "y"}, "match"),
                        ({"match": r"\d+", "subs": "([", "replacement": "y"}, "subs"),
                        ({"match": r"\d+", "subs": r"(\d)", "replacement": r"+\2"}, "replacement"),
                        ({"match": r"\d+", "subs": r"(\d)"}, "replacement")]:
        code, error, _ = await api.call("POST", path, made["token"], json=body)
        assert code == 422 and error["field"] == field, error
    code, rule, _ = await api.call("POST", path, made["token"], json={
        "match": r"\d+", "subs": r"^(\d+)$", "replacement": r"+\1"})
    code, error, _ = await api.call("PATCH", f"{path}/{rule['id']}", made["token"], json={"subs": "(x+)*"})
    assert code == 422 and error["field"] == "subs"
    assert [r["subs"] for r in await _rules(api, made)] == [r["subs"] for r in before] + [r"^(\d+)$"]


@pytest_twisted.ensureDeferred
async def test_a_preset_loads_in_one_step_and_the_box_shows_what_a_number_becomes(api):
    made = await onboard(api, "kages.example.net")
    base, token = made["base"], made["token"]
    code, presets, _ = await api.call("GET", f"{base}/dialplan-presets", token)
    assert {"us", "br", "gb", "de"} <= {p["name"] for p in presets["items"]}
    code, loaded, _ = await api.call("POST", f"{base}/dialplan-rules/preset", token, json={"preset": "us"})
    assert code == 200 and loaded["items"][0]["description"] == "already E.164"
    us_count = len(loaded["items"])
    code, loaded, _ = await api.call("POST", f"{base}/dialplan-rules/preset", token,
                                     json={"preset": "gb", "append": True})
    assert len(loaded["items"]) > us_count
    code, loaded, _ = await api.call("POST", f"{base}/dialplan-rules/preset", token, json={"preset": "us"})
    assert len(loaded["items"]) == us_count
    code, error, _ = await api.call("POST", f"{base}/dialplan-rules/preset", token, json={"preset": "xx"})
    assert code == 422 and error["field"] == "preset" and "us" in error["message"]

    subscriber = made["subscriber"]
    code, added, _ = await api.call("POST", f"{base}/dids", token, json={"first": "+12125550100"})
    code, _, _ = await api.call("POST", f"{base}/dids/{added['items'][0]['id']}/allocate", token,
                                json={"tenant_id": made["tenant"]["id"]})
    assert code == 200
    code, _, _ = await api.call("PATCH", f"{base}/subscribers/{subscriber['id']}", token, json={"e164": "+12125550100"})
    assert code == 200
    translate = f"{base}/dialplan/translate"
    code, result, _ = await api.call("POST", translate, token, json={"dialled": "5551234",
                                                                     "subscriber_id": subscriber["id"]})
    assert code == 200 and result["e164"] == "+12125551234", result
    assert (result["country_code"], result["area_code"], result["caller_e164"]) == ("1", "212", "+12125550100")
    assert result["rule_id"] == loaded["items"][result["position"]]["id"]
    code, extension, _ = await api.call("POST", f"{base}/tenants/{made['tenant']['id']}/subscribers", token,
                                        json={"username": "bob", "password": "Sup3r-secret-00", "extension": "101"})
    code, result, _ = await api.call("POST", translate, token, json={"dialled": "5551234",
                                                                     "subscriber_id": extension["id"]})
    assert result["caller_e164"] == "+12125550100", "an extension without a number dials as its pilot"
    code, result, _ = await api.call("POST", translate, token, json={
        "dialled": "5551234", "subscriber_id": subscriber["id"], "area_code": "415"})
    assert result["e164"] == "+14155551234" and result["area_code"] == "415"
    code, result, _ = await api.call("POST", translate, token, json={"dialled": "01144201234567"})
    assert result["e164"] == "+44201234567" and result["caller_e164"] is None
    code, result, _ = await api.call("POST", translate, token, json={"dialled": "12"})
    assert code == 200 and result["e164"] is None and result["rule_id"] is None
    code, error, _ = await api.call("POST", translate, token, json={"dialled": "12", "country_code": "01"})
    assert code == 422 and error["field"] == "country_code"
    code, error, _ = await api.call("POST", translate, token, json={"dialled": "12", "subscriber_id": 99999})
    assert code == 404
