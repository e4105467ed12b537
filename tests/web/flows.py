"""The WeHostVoIP getting-started flow through the API, as a provisioning script does it."""


async def onboard(api, namespace: str, *, platform_token: str | None = None) -> dict:
    platform = {"token": platform_token} if platform_token else {}
    code, isp, _ = await api.call("POST", "/api/v1/isps", **platform, json={
        "name": f"ISP {namespace}", "namespace": namespace, "currency": "USD", "country": "US"})
    assert code == 201, isp
    base = f"/api/v1/isps/{isp['id']}"
    code, token, _ = await api.call("POST", f"{base}/tokens", **platform, json={"name": "provisioning",
                                                                   "scopes": ["read", "write", "admin"]})
    assert code == 201, token
    t = token["token"]
    code, plan, _ = await api.call("POST", f"{base}/service-plans", t, json={"name": "Basic"})
    assert code == 201, plan
    code, customer, _ = await api.call("POST", f"{base}/customers", t, json={
        "name": "Acme", "service_plan_id": plan["id"], "max_subscribers": 5, "max_concurrent_calls": 2,
        "credit_limit": "10.50"})
    assert code == 201 and customer["status"] == "WAIT", customer
    code, customer, _ = await api.call("PATCH", f"{base}/customers/{customer['id']}", t, json={"status": "ACTIVE"})
    assert code == 200 and customer["status"] == "ACTIVE", customer
    code, carrier, _ = await api.call("POST", f"{base}/carriers", t, json={"name": "Carrier One"})
    assert code == 201, carrier
    code, gateway, _ = await api.call("POST", f"{base}/carriers/{carrier['id']}/gateways", t, json={
        "host": "192.0.2.10", "port": 5060, "transport": "udp", "strip_digits": 1, "prefix": "00",
        "priority": 5})
    assert code == 201, gateway
    code, rules, _ = await api.call("POST", f"{base}/dialplan-rules/preset", t, json={"preset": "us"})
    assert code == 200, rules
    code, numbers, _ = await api.call("POST", f"{base}/dids", t, json={"first": "+15550199000",
                                                                      "last": "+15550199009"})
    assert code == 201, numbers
    code, tenant, _ = await api.call("POST", f"{base}/tenants", t, json={
        "customer_id": customer["id"], "name": "Acme HQ", "label": "acme"})
    assert code == 201, tenant
    did = numbers["items"][0]
    code, did, _ = await api.call("POST", f"{base}/dids/{did['id']}/allocate", t, json={"tenant_id": tenant["id"]})
    assert code == 200, did
    code, pilot, _ = await api.call("POST", f"{base}/tenants/{tenant['id']}/subscribers", t, json={
        "username": "alice", "password": "correct-horse-9", "extension": "100", "e164": "+15550199000",
        "is_pilot": True, "web_username": "alice@acme.example", "web_password": "web-secret-123"})
    assert code == 201, pilot
    code, did, _ = await api.call("POST", f"{base}/dids/{did['id']}/route", t, json={"subscriber_id": pilot["id"]})
    assert code == 200, did
    code, domain, _ = await api.call("GET", f"{base}/domains/{tenant['domain_id']}", t)
    assert code == 200, domain
    return {"isp": isp, "token": t, "plan": plan, "customer": customer, "carrier": carrier,
            "gateway": gateway, "tenant": tenant, "subscriber": pilot, "did": did, "domain": domain,
            "rule": rules["items"][0],
            "base": base}
