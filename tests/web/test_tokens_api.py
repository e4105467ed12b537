"""API tokens: an ISP admin makes them for the ISP or a customer, lists and revokes them."""

import pytest_twisted

from tests.web.flows import onboard


@pytest_twisted.ensureDeferred
async def test_a_token_is_shown_once_listed_without_secret_and_revoked_at_once(api):
    made = await onboard(api, "kages.example.net")
    base, token = made["base"], made["token"]
    code, created, _ = await api.call("POST", f"{base}/tokens", token, json={
        "name": "crm", "customer_id": made["customer"]["id"], "scopes": ["read"]})
    assert code == 201 and created["token"].startswith("wv_") and created["scopes"] == ["read"]
    code, listed, _ = await api.call("GET", f"{base}/tokens", token)
    assert [t["name"] for t in listed["items"]] == ["provisioning", "crm"]
    assert all("token" not in t and "token_sha256" not in t for t in listed["items"])
    code, mine, _ = await api.call("GET", f"{base}/tokens?customer_id={made['customer']['id']}", token)
    assert [t["id"] for t in mine["items"]] == [created["id"]]
    code, _, _ = await api.call("GET", f"{base}/customers/{made['customer']['id']}", created["token"])
    assert code == 200
    code, shown, _ = await api.call("GET", f"{base}/tokens/{created['id']}", token)
    assert shown["last_used_at"] is not None and shown["customer_id"] == made["customer"]["id"]
    code, _, _ = await api.call("DELETE", f"{base}/tokens/{created['id']}", token)
    assert code == 204
    code, error, _ = await api.call("GET", f"{base}/customers/{made['customer']['id']}", created["token"])
    assert code == 401
    code, _, _ = await api.call("DELETE", f"{base}/tokens/{created['id']}", token)
    assert code == 404


@pytest_twisted.ensureDeferred
async def test_a_token_cannot_grant_more_than_it_holds_nor_can_a_customer_make_tokens(api):
    made = await onboard(api, "kages.example.net")
    base, token = made["base"], made["token"]
    code, error, _ = await api.call("POST", f"{base}/tokens", token, json={"scopes": ["billing"]})
    assert code == 403 and error["field"] == "scopes" and "billing" in error["message"]
    code, customer, _ = await api.call("POST", f"{base}/tokens", token, json={
        "customer_id": made["customer"]["id"], "scopes": ["read", "write", "admin"]})
    code, _, _ = await api.call("POST", f"{base}/tokens", customer["token"], json={"scopes": ["read"]})
    assert code == 403
    code, _, _ = await api.call("GET", f"{base}/tokens", customer["token"])
    assert code == 403
    code, error, _ = await api.call("POST", f"{base}/tokens", token, json={"scopes": ["root"]})
    assert code == 422 and error["field"].startswith("scopes")
