"""Domains: labels under the namespace at once, an ISP's own domain once DNS shows its TXT record."""

import pytest_twisted
from twisted.names import dns

from tests.web.flows import onboard


@pytest_twisted.ensureDeferred
async def test_a_verified_domain_is_usable_once_its_txt_record_is_published(api):
    made = await onboard(api, "kages.example.net")
    base, token = made["base"], made["token"]
    code, domain, _ = await api.call("POST", f"{base}/domains", token, json={"name": "pbx.example.org"})
    assert code == 201 and domain["usable"] is False
    record = domain["txt_record"]
    assert record["name"] == "pbx.example.org" and record["value"].startswith("wevoip-verify=")
    verify = f"{base}/domains/{domain['id']}/verify"
    code, error, _ = await api.call("POST", verify, token)
    assert code == 409 and error["error"] == "not_verified" and record["value"] in error["message"]
    code, error, _ = await api.call("POST", f"{base}/tenants", token, json={
        "customer_id": made["customer"]["id"], "name": "Own", "domain_id": domain["id"]})
    assert code == 422 and error["field"] == "domain_id"

    api.dns.add("pbx.example.org", dns.Record_TXT(b"v=spf1 -all", ttl=60))
    code, error, _ = await api.call("POST", verify, token)
    assert code == 409 and "1 other TXT record" in error["message"]
    api.dns.add("pbx.example.org", dns.Record_TXT(record["value"].encode(), ttl=60))
    code, verified, _ = await api.call("POST", verify, token)
    assert code == 200 and verified["usable"] is True and verified["verified_at"] and verified["txt_record"] is None
    code, tenant, _ = await api.call("POST", f"{base}/tenants", token, json={
        "customer_id": made["customer"]["id"], "name": "Own", "domain_id": domain["id"]})
    assert code == 201 and tenant["sip_domain"] == "pbx.example.org"


@pytest_twisted.ensureDeferred
async def test_namespace_domains_need_no_verification_and_bad_names_are_refused(api):
    made = await onboard(api, "kages.example.net")
    base, token = made["base"], made["token"]
    code, domain, _ = await api.call("POST", f"{base}/domains", token, json={"label": "sales"})
    assert code == 201 and domain["name"] == "sales.kages.example.net" and domain["usable"] is True
    code, error, _ = await api.call("POST", f"{base}/domains/{domain['id']}/verify", token)
    assert code == 422 and error["field"] == "domain_id"
    for body, field in [({"label": "no dots.here"}, "label"), ({"name": "x.kages.example.net"}, "name"),
                        ({}, "label"), ({"label": "a", "name": "b.example.org"}, "label")]:
        code, error, _ = await api.call("POST", f"{base}/domains", token, json=body)
        assert code == 422 and error["field"] == field, (body, error)
    code, elsewhere, _ = await api.call("POST", f"{base}/domains", token, json={"name": "nowhere.example.org"})
    code, error, _ = await api.call("POST", f"{base}/domains/{elsewhere['id']}/verify", token)
    assert code == 409 and "0 other" in error["message"]
