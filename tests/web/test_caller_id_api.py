"""Caller ID through the API (issue 12, point 7): a customer token can give its subscribers
only numbers their tenant holds; not numbers outside the inventory, nor another customer's."""

import pytest_twisted

from tests.web.flows import onboard


@pytest_twisted.ensureDeferred
async def test_a_customer_token_cannot_give_a_subscriber_a_number_its_tenant_does_not_hold(api):
    made = await onboard(api, "kages.example.net")
    base, token = made["base"], made["token"]
    code, own, _ = await api.call("POST", f"{base}/tokens", token, json={
        "customer_id": made["customer"]["id"], "scopes": ["read", "write"]})
    mine = own["token"]
    code, globex, _ = await api.call("POST", f"{base}/customers", token, json={"name": "Globex", "status": "ACTIVE"})
    code, their_tenant, _ = await api.call("POST", f"{base}/tenants", token, json={
        "customer_id": globex["id"], "name": "Globex", "label": "globex"})
    free = (await api.call("GET", f"{base}/dids?state=free", token))[1]["items"]
    theirs, spare = free[0], free[1]
    code, _, _ = await api.call("POST", f"{base}/dids/{theirs['id']}/allocate", token,
                                json={"tenant_id": their_tenant["id"]})
    assert code == 200
    alice = made["subscriber"]
    tenant_subscribers = f"{base}/tenants/{made['tenant']['id']}/subscribers"
    for number in ("+12025550123", theirs["e164"], spare["e164"]):
        code, error, _ = await api.call("PATCH", f"{base}/subscribers/{alice['id']}", mine, json={"e164": number})
        assert (code, error["field"]) == (422, "e164"), (number, error)
        assert "not a number this tenant holds" in error["message"]
        code, error, _ = await api.call("POST", tenant_subscribers, mine, json={
            "username": "bob", "password": "Sup3r-secret-00", "extension": "101", "e164": number})
        assert (code, error["field"]) == (422, "e164"), (number, error)
    code, shown, _ = await api.call("GET", f"{base}/subscribers/{alice['id']}", mine)
    assert shown["e164"] == "+15550199000"
    # The ISP allocates a number to the tenant: now it may be the subscriber's own.
    code, _, _ = await api.call("POST", f"{base}/dids/{spare['id']}/allocate", token,
                                json={"tenant_id": made["tenant"]["id"]})
    code, bob, _ = await api.call("POST", tenant_subscribers, mine, json={
        "username": "bob", "password": "Sup3r-secret-00", "extension": "101", "e164": spare["e164"]})
    assert code == 201 and bob["e164"] == spare["e164"]
    code, error, _ = await api.call("POST", f"{base}/dids/{spare['id']}/release", token)
    assert (code, error["field"]) == (409, "did_id") and "subscriber bob" in error["message"]
    code, changed, _ = await api.call("PATCH", f"{base}/subscribers/{bob['id']}", mine, json={"e164": ""})
    assert code == 200 and changed["e164"] is None
    code, released, _ = await api.call("POST", f"{base}/dids/{spare['id']}/release", token)
    assert code == 200 and released["tenant_id"] is None
