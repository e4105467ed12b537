"""The number inventory through the API: ranges, who holds each number, routing, release."""

import pytest_twisted

from tests.web.flows import onboard


@pytest_twisted.ensureDeferred
async def test_the_inventory_shows_holders_and_filters_by_state(api):
    made = await onboard(api, "kages.example.net")
    base, token = made["base"], made["token"]
    code, page, _ = await api.call("GET", f"{base}/dids?state=routed", token)
    assert [(d["e164"], d["tenant_name"], d["customer_name"], d["subscriber_username"]) for d in page["items"]] \
        == [("+15550199000", "Acme HQ", "Acme", "alice")]
    code, page, _ = await api.call("GET", f"{base}/dids?state=free&limit=100", token)
    assert len(page["items"]) == 9 and all(d["tenant_id"] is None for d in page["items"])
    assert [d["e164"] for d in page["items"]] == sorted(d["e164"] for d in page["items"])
    code, error, _ = await api.call("GET", f"{base}/dids?state=lost", token)
    assert code == 422 and error["field"] == "state"
    code, error, _ = await api.call("GET", f"{base}/dids?tenant_id=x", token)
    assert code == 422 and error["field"] == "tenant_id"


@pytest_twisted.ensureDeferred
async def test_ranges_are_bounded_checked_and_never_half_added(api):
    made = await onboard(api, "kages.example.net")
    base, token = made["base"], made["token"]
    for body, field, status in [({"first": "+15550100000", "last": "+15550200000"}, "last", 422),
                                ({"first": "15550100000"}, "first", 422),
                                ({"first": "+15550100000", "last": "+1555010000"}, "last", 422),
                                ({"first": "+15550199005", "last": "+15550199015"}, "first", 409)]:
        code, error, _ = await api.call("POST", f"{base}/dids", token, json=body)
        assert (code, error["field"]) == (status, field), error
    code, page, _ = await api.call("GET", f"{base}/dids", token)
    assert len(page["items"]) == 10


@pytest_twisted.ensureDeferred
async def test_a_did_goes_to_a_feature_or_a_subscriber_and_comes_back_on_release(api):
    made = await onboard(api, "kages.example.net")
    base, token = made["base"], made["token"]
    code, error, _ = await api.call("POST", f"{base}/dids/{made['did']['id']}/release", token)
    assert (code, error["field"]) == (409, "did_id") and "own number of subscriber alice" in error["message"]
    did = (await api.call("GET", f"{base}/dids?state=free", token))[1]["items"][0]
    code, did, _ = await api.call("POST", f"{base}/dids/{did['id']}/allocate", token,
                                  json={"tenant_id": made["tenant"]["id"]})
    code, routed, _ = await api.call("POST", f"{base}/dids/{did['id']}/route", token,
                                     json={"feature": "announcement"})
    assert code == 200 and routed["feature"] == "announcement" and routed["subscriber_id"] is None
    code, error, _ = await api.call("POST", f"{base}/dids/{did['id']}/route", token,
                                    json={"feature": "echo", "subscriber_id": made["subscriber"]["id"]})
    assert code == 422 and error["field"] == "feature"
    code, error, _ = await api.call("POST", f"{base}/dids/{did['id']}/route", token, json={"feature": "Bad Name"})
    assert code == 422 and error["field"] == "feature"
    code, released, _ = await api.call("POST", f"{base}/dids/{did['id']}/release", token)
    assert code == 200 and (released["tenant_id"], released["feature"], released["tenant_name"]) == (None,) * 3
    code, error, _ = await api.call("POST", f"{base}/dids/{did['id']}/route", token, json={"feature": "echo"})
    assert code == 422 and error["field"] == "did_id"


@pytest_twisted.ensureDeferred
async def test_a_route_to_a_feature_no_installed_application_serves_is_refused_and_changes_nothing(api):
    """Issue 12, point 5: 'voicemail:100' and 'ivr:main' were accepted and every call to them
    got 480. Only the call applications the node serves (echo, announcement) are destinations."""
    made = await onboard(api, "kages.example.net")
    base, token, did = made["base"], made["token"], made["did"]
    before = (await api.call("GET", f"{base}/dids/{did['id']}", token))[1]
    for feature in ("voicemail:100", "ivr:main", "fax", "echoes"):
        code, error, _ = await api.call("POST", f"{base}/dids/{did['id']}/route", token, json={"feature": feature})
        assert code == 422 and error["field"] == "feature", (feature, error)
        assert f"no installed call application serves '{feature.partition(':')[0]}'" in error["message"]
        assert "echo" in error["message"] and "announcement" in error["message"]
    assert (await api.call("GET", f"{base}/dids/{did['id']}", token))[1] == before
    code, routed, _ = await api.call("POST", f"{base}/dids/{did['id']}/route", token, json={"feature": "echo:any"})
    assert code == 200 and routed["feature"] == "echo:any"


@pytest_twisted.ensureDeferred
async def test_the_api_has_no_field_for_forwarding_or_voicemail(api):
    """Nothing in the API writes a setting the call path does not read."""
    made = await onboard(api, "kages.example.net")
    base, token = made["base"], made["token"]
    for field, value in (("forward_always", "+15550100999"), ("forward_busy", "101"), ("voicemail_enabled", True),
                         ("voicemail_email", "a@b.example")):
        code, error, _ = await api.call("PATCH", f"{base}/subscribers/{made['subscriber']['id']}", token,
                                        json={field: value})
        assert (code, error["field"]) == (422, field)
    code, document, _ = await api.call("GET", "/api/openapi.json")
    text = str(document)
    assert "forward_always" not in text and "voicemail_" not in text and "voicemail:100" not in text


@pytest_twisted.ensureDeferred
async def test_a_customer_token_routes_its_own_numbers_only(api):
    made = await onboard(api, "kages.example.net")
    base, token = made["base"], made["token"]
    code, own, _ = await api.call("POST", f"{base}/tokens", token, json={
        "customer_id": made["customer"]["id"], "scopes": ["read", "write"]})
    code, page, _ = await api.call("GET", f"{base}/dids", own["token"])
    assert [d["id"] for d in page["items"]] == [made["did"]["id"]]
    code, routed, _ = await api.call("POST", f"{base}/dids/{made['did']['id']}/route", own["token"],
                                     json={"feature": "echo"})
    assert code == 200 and routed["feature"] == "echo"
    free = (await api.call("GET", f"{base}/dids?state=free", token))[1]["items"][0]
    code, _, _ = await api.call("GET", f"{base}/dids/{free['id']}", own["token"])
    assert code == 404
    code, _, _ = await api.call("POST", f"{base}/dids/{free['id']}/allocate", own["token"],
                                json={"tenant_id": made["tenant"]["id"]})
    assert code == 403
