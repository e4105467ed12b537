import pytest
import pytest_twisted

from tests.web.flows import onboard
from wevoip.web.api.routes import ROUTES


@pytest_twisted.ensureDeferred
async def test_the_getting_started_flow_through_the_api(api):
    made = await onboard(api, "kages.example.net")
    assert made["tenant"]["sip_domain"] == "acme.kages.example.net"
    assert made["customer"]["credit_limit"] == "10.500000"
    assert made["gateway"]["source_ips"] == ["192.0.2.10/32"]
    assert made["did"]["subscriber_id"] == made["subscriber"]["id"]
    assert "ha1_md5" not in made["subscriber"] and "web_password_hash" not in made["subscriber"]
    code, listed, _ = await api.call("GET", f"{made['base']}/tenants/{made['tenant']['id']}/subscribers",
                                     made["token"])
    assert code == 200 and [s["username"] for s in listed["items"]] == ["alice"]


@pytest_twisted.ensureDeferred
async def test_no_token_or_a_wrong_one_is_401(api):
    code, body, response = await api.call("GET", "/api/v1/isps", token=None)
    assert code == 401 and body["error"] == "unauthorized"
    assert response.headers.getRawHeaders("www-authenticate") == ['Bearer realm="wevoip"']
    code, body, _ = await api.call("GET", "/api/v1/isps", token="nope")
    assert code == 401


@pytest.mark.parametrize("body, field", [
    ({"name": "x", "namespace": "a.example.net", "currency": "USD", "colour": "red"}, "colour"),
    ({"name": "x", "currency": "USD"}, "namespace"),
    ({"name": 5, "namespace": "a.example.net", "currency": "USD"}, "name"),
    ({"name": "x", "namespace": "a.example.net", "currency": "ZZZ"}, "currency"),
    ({"name": "x", "namespace": "not a domain", "currency": "USD"}, "namespace"),
])
@pytest_twisted.ensureDeferred
async def test_bad_input_is_422_naming_the_field_and_writes_nothing(api, body, field):
    code, error, _ = await api.call("POST", "/api/v1/isps", json=body)
    assert code == 422 and error["error"] == "invalid" and error["field"] == field, error
    code, listed, _ = await api.call("GET", "/api/v1/isps")
    assert listed["items"] == []


@pytest_twisted.ensureDeferred
async def test_malformed_bodies_get_clear_errors(api):
    code, error, _ = await api.call("POST", "/api/v1/isps", data=b"{not json",
                                    headers={"Content-Type": "application/json"})
    assert code == 400 and error["error"] == "bad_json"
    code, error, _ = await api.call("POST", "/api/v1/isps", data=b"name=x",
                                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert code == 415
    code, error, _ = await api.call("POST", "/api/v1/isps", data=b"[" + b"1," * 600000 + b"1]",
                                    headers={"Content-Type": "application/json"})
    assert code == 413
    code, error, _ = await api.call("POST", "/api/v1/isps", json=[1, 2])
    assert code == 422 and error["field"] == "body"
    code, error, _ = await api.call("GET", "/api/v1/isps/99999999999999999999999")
    assert code == 404 and error["error"] == "not_found"
    code, error, _ = await api.call("GET", "/api/v1/nothing-here")
    assert code == 404 and error["error"] == "not_found"
    code, error, _ = await api.call("DELETE", "/api/v1/isps")
    assert code == 405


@pytest_twisted.ensureDeferred
async def test_conflicts_and_limits_are_409(api):
    made = await onboard(api, "kages.example.net")
    code, error, _ = await api.call("POST", "/api/v1/isps", json={
        "name": "Copy", "namespace": "kages.example.net", "currency": "EUR"})
    assert code == 409 and error["field"] == "namespace"
    path = f"{made['base']}/tenants/{made['tenant']['id']}/subscribers"
    for n in range(4):
        code, _, _ = await api.call("POST", path, made["token"], json={"username": f"u{n}",
                                                                      "password": "Sup3r-secret-00"})
        assert code == 201
    code, error, _ = await api.call("POST", path, made["token"], json={"username": "u9",
                                                                      "password": "Sup3r-secret-00"})
    assert code == 409 and error["error"] == "limit_reached" and error["limit"] == "max_subscribers"


@pytest_twisted.ensureDeferred
async def test_an_idempotency_key_creates_once(api):
    body = {"name": "Once", "namespace": "once.example.net", "currency": "EUR"}
    headers = {"Idempotency-Key": "create-once-1"}
    first = await api.call("POST", "/api/v1/isps", json=body, headers=headers)
    second = await api.call("POST", "/api/v1/isps", json=body, headers=headers)
    assert first[0] == second[0] == 201 and first[1] == second[1]
    code, listed, _ = await api.call("GET", "/api/v1/isps")
    assert [isp["namespace"] for isp in listed["items"]] == ["once.example.net"]
    code, error, _ = await api.call("POST", "/api/v1/isps", json={**body, "name": "Other"}, headers=headers)
    assert code == 422 and error["error"] == "idempotency_key_reused"


@pytest_twisted.ensureDeferred
async def test_lists_are_paginated(api):
    made = await onboard(api, "kages.example.net")
    code, page, _ = await api.call("GET", f"{made['base']}/dids?limit=4&offset=0", made["token"])
    assert code == 200 and len(page["items"]) == 4 and page["next_offset"] == 4
    code, last, _ = await api.call("GET", f"{made['base']}/dids?limit=4&offset=8", made["token"])
    assert len(last["items"]) == 2 and last["next_offset"] is None
    code, error, _ = await api.call("GET", f"{made['base']}/dids?limit=0", made["token"])
    assert code == 422 and error["field"] == "limit"


@pytest_twisted.ensureDeferred
async def test_a_customer_token_sees_only_its_own_customer(api):
    made = await onboard(api, "kages.example.net")
    base, token = made["base"], made["token"]
    code, other, _ = await api.call("POST", f"{base}/customers", token, json={"name": "Other Co"})
    code, other_tenant, _ = await api.call("POST", f"{base}/tenants", token, json={
        "customer_id": other["id"], "name": "Other PBX", "label": "other"})
    code, own, _ = await api.call("POST", f"{base}/tokens", token, json={
        "customer_id": made["customer"]["id"], "scopes": ["read", "write"]})
    assert code == 201
    customer_token = own["token"]
    code, tenants, _ = await api.call("GET", f"{base}/tenants", customer_token)
    assert [t["id"] for t in tenants["items"]] == [made["tenant"]["id"]]
    code, _, _ = await api.call("GET", f"{base}/tenants/{other_tenant['id']}", customer_token)
    assert code == 404
    code, _, _ = await api.call("GET", f"{base}/customers", customer_token)
    assert code == 403
    code, _, _ = await api.call("POST", f"{base}/tenants", customer_token, json={
        "customer_id": other["id"], "name": "Sneaky", "label": "sneaky"})
    assert code == 404


@pytest_twisted.ensureDeferred
async def test_a_read_only_token_cannot_write(api):
    made = await onboard(api, "kages.example.net")
    code, reader, _ = await api.call("POST", f"{made['base']}/tokens", made["token"], json={"scopes": ["read"]})
    code, error, _ = await api.call("POST", f"{made['base']}/carriers", reader["token"], json={"name": "x"})
    assert code == 403 and "write" in error["message"]


@pytest_twisted.ensureDeferred
async def test_the_openapi_document_lists_every_route(api):
    code, document, _ = await api.call("GET", "/api/openapi.json", token=None)
    assert code == 200 and document["openapi"].startswith("3.")
    for route in ROUTES:
        operation = document["paths"]["/api/v1" + route.path][route.method.lower()]
        assert str(route.status) in operation["responses"]


@pytest_twisted.ensureDeferred
async def test_a_route_with_a_body_needs_one_and_an_idempotency_key_is_never_empty(api):
    code, error, _ = await api.call("POST", "/api/v1/isps")
    assert code == 422 and error["field"] == "body"
    code, error, _ = await api.call("POST", "/api/v1/isps", json={"name": "x", "namespace": "x.example.net",
                                                                  "currency": "USD"},
                                    headers={"Idempotency-Key": ""})
    assert code == 400 and error["error"] == "bad_idempotency_key"
    code, listed, _ = await api.call("GET", "/api/v1/isps")
    assert listed["items"] == []


@pytest_twisted.ensureDeferred
async def test_text_postgresql_cannot_store_is_refused_naming_the_field(api):
    for raw, field in [(b'{"name": "a\\u0000b", "namespace": "n.example.net", "currency": "USD"}', "name"),
                       (b'{"name": "x", "namespace": "n.example.net", "currency": "USD", '
                        b'"brand_title": "\\ud88a"}', "brand_title")]:
        code, error, _ = await api.call("POST", "/api/v1/isps", data=raw, headers={"Content-Type": "application/json"})
        assert code == 422 and error["field"] == field, error
