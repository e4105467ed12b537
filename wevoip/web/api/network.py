"""Domains, carriers and gateways, and the number inventory."""

from __future__ import annotations

from wevoip.resolver import LookupFailed, txt_values
from wevoip.store import carriers, dids, domains
from wevoip.web.api.errors import ApiError
from wevoip.web.api.routes import (BOOLEAN, DNS_LABEL, DNS_NAME, E164, ID, ID_IN, NULLABLE_ID, STAMP, Call,
                                   api_route, items_of, nullable, obj, record, shaped, text)

DOMAIN_CREATE = obj({"label": DNS_LABEL, "name": DNS_NAME})
DOMAIN = record({"id": ID, "isp_id": ID, "name": {"type": "string"}, "kind": {"enum": ["namespace", "verified"]},
                 "verified_at": nullable(STAMP), "created_at": STAMP, "usable": BOOLEAN,
                 "txt_record": {"type": ["object", "null"], "properties": {
                     "name": {"type": "string"}, "type": {"const": "TXT"}, "value": {"type": "string"}}}})
CARRIER_FIELDS = {"name": text(100), "enabled": BOOLEAN, "max_concurrent_calls": {"type": ["integer", "null"],
                                                                                  "minimum": 0}}
CARRIER_CREATE = obj(CARRIER_FIELDS, ("name",))
CARRIER_UPDATE = obj(CARRIER_FIELDS)
GATEWAY_FIELDS = {"host": shaped(r"^\S+$", 253, "a host name or IP address"),
                  "port": {"type": ["integer", "null"], "minimum": 1, "maximum": 65535,
                           "description": "null or left out: found by DNS SRV for a host name (RFC 3263); "
                                          "5060 (5061 for TLS) for an IP address"},
                  "transport": {"enum": ["udp", "tcp", "tls"]}, "strip_digits": {"type": "integer", "minimum": 0,
                                                                                 "maximum": 15},
                  "prefix": shaped(r"^\+?[0-9]{0,15}$", 16, "digits, optionally after '+'"),
                  "ip_auth": BOOLEAN, "source_ips": {"type": "array", "items": text(49), "maxItems": 64},
                  "priority": {"type": "integer", "minimum": 0, "maximum": 1000}, "enabled": BOOLEAN}
GATEWAY_CREATE = obj(GATEWAY_FIELDS, ("host",))
GATEWAY_UPDATE = obj(GATEWAY_FIELDS)
CARRIER = record({"id": ID, "isp_id": ID, "name": {"type": "string"}, "enabled": BOOLEAN,
                  "max_concurrent_calls": nullable(ID), "created_at": STAMP})
GATEWAY = record({"id": ID, "isp_id": ID, "carrier_id": ID, "host": {"type": "string"}, "port": nullable(ID),
                  "transport": {"enum": ["udp", "tcp", "tls"]}, "strip_digits": ID, "prefix": {"type": "string"},
                  "ip_auth": BOOLEAN, "source_ips": {"type": "array", "items": {"type": "string"}}, "priority": ID,
                  "enabled": BOOLEAN, "created_at": STAMP,
                  # what IP authentication trusts now: source_ips, or what the host name resolved to
                  "trusted_sources": {"type": "array", "items": {"type": "string"}},
                  "resolved_at": nullable(STAMP), "next_resolve_at": nullable(STAMP),
                  "resolve_error": nullable({"type": "string"})})
DIDS_CREATE = obj({"first": E164, "last": E164}, ("first",))
DID = record({"id": ID, "isp_id": ID, "e164": {"type": "string"}, "customer_id": nullable(ID),
              "tenant_id": nullable(ID), "subscriber_id": nullable(ID), "feature": nullable({"type": "string"}),
              "allocated_at": nullable(STAMP), "created_at": STAMP, "customer_name": nullable({"type": "string"}),
              "tenant_name": nullable({"type": "string"}), "subscriber_username": nullable({"type": "string"})})
ALLOCATE = obj({"tenant_id": ID_IN}, ("tenant_id",))
ROUTE = obj({"subscriber_id": NULLABLE_ID, "feature": {
    "type": ["string", "null"], "maxLength": 97, "pattern": r"^[a-z][a-z0-9_-]{0,31}(:[A-Za-z0-9._@+-]{1,64})?$",
    "description": "must be a feature name, optionally with ':' and its target, as 'echo'"}})


def _domain(row) -> dict:
    """A verified domain says which TXT record proves it, until it is proved."""
    record = {"name": row["name"], "type": "TXT", "value": row["verification_token"]}
    pending = row["kind"] == "verified" and row["verified_at"] is None
    return {key: value for key, value in row.items() if key != "verification_token"} | {
        "usable": domains.domain_usable(row), "txt_record": record if pending else None}


@api_route("GET", "/isps/{isp_id}/domains", scope="read", summary="List SIP domains", tag="domains",
           returns=DOMAIN, listing=True)
async def list_domains(call: Call):
    limit, offset = call.page()
    rows = await call.tx(domains.list_domains, call.params["isp_id"], limit=limit, offset=offset)
    return [_domain(row) for row in rows]


@api_route("POST", "/isps/{isp_id}/domains", scope="write", tag="domains", body=DOMAIN_CREATE,
           returns=DOMAIN, status=201,
           summary="Add a domain: 'label' under the namespace, or 'name' of your own (verified by DNS TXT)")
async def create_domain(call: Call):
    isp_id = call.params["isp_id"]
    if ("label" in call.body) == ("name" in call.body):
        raise ApiError(422, "invalid", "label: give a label under the namespace or the name of your own domain",
                       field="label")
    if "label" in call.body:
        return _domain(await call.tx(domains.create_namespace_domain, isp_id, call.body["label"]))
    return _domain(await call.tx(domains.add_verified_domain, isp_id, call.body["name"]))


@api_route("GET", "/isps/{isp_id}/domains/{domain_id}", scope="read", summary="Show a domain",
           tag="domains", returns=DOMAIN)
async def get_domain(call: Call):
    return _domain(await call.tx(domains.get_domain, call.params["isp_id"], call.params["domain_id"]))


@api_route("POST", "/isps/{isp_id}/domains/{domain_id}/verify", scope="write", tag="domains", returns=DOMAIN,
           summary="Look up the domain's DNS TXT record now and mark it verified when the token is there")
async def verify_domain(call: Call):
    isp_id, domain_id = call.params["isp_id"], call.params["domain_id"]
    domain = await call.tx(domains.get_domain, isp_id, domain_id)
    if domain["kind"] != "verified":
        raise ApiError(422, "invalid", "domain_id: a namespace domain needs no verification", field="domain_id")
    if domain["verified_at"] is not None:
        return _domain(domain)
    try:
        found = await txt_values(call.services.resolver, domain["name"])
    except LookupFailed as error:
        raise ApiError(503, "dns_unavailable", str(error)) from None
    if domain["verification_token"] not in found:
        raise ApiError(409, "not_verified",
                       f"no TXT record {domain['verification_token']!r} at {domain['name']} yet"
                       f" ({len(found)} other TXT record(s) there)", field="domain_id")
    return _domain(await call.tx(domains.mark_domain_verified, isp_id, domain_id))


@api_route("GET", "/isps/{isp_id}/carriers", scope="read", summary="List carriers", tag="carriers",
           returns=CARRIER, listing=True)
async def list_carriers(call: Call):
    limit, offset = call.page()
    return await call.tx(carriers.list_carriers, call.params["isp_id"], limit=limit, offset=offset)


@api_route("POST", "/isps/{isp_id}/carriers", scope="write", summary="Create a carrier", tag="carriers",
           body=CARRIER_CREATE, returns=CARRIER, status=201)
async def create_carrier(call: Call):
    return await call.tx(lambda tx: carriers.create_carrier(tx, call.params["isp_id"], **call.body))


@api_route("GET", "/isps/{isp_id}/carriers/{carrier_id}", scope="read", summary="Show a carrier",
           tag="carriers", returns=CARRIER)
async def get_carrier(call: Call):
    return await call.tx(carriers.get_carrier, call.params["isp_id"], call.params["carrier_id"])


@api_route("PATCH", "/isps/{isp_id}/carriers/{carrier_id}", scope="write", summary="Change a carrier",
           tag="carriers", body=CARRIER_UPDATE, returns=CARRIER)
async def update_carrier(call: Call):
    return await call.tx(lambda tx: carriers.update_carrier(
        tx, call.params["isp_id"], call.params["carrier_id"], **call.body))


@api_route("GET", "/isps/{isp_id}/carriers/{carrier_id}/gateways", scope="read", summary="List gateways",
           tag="carriers", returns=GATEWAY, listing=True)
async def list_gateways(call: Call):
    limit, offset = call.page()
    return await call.tx(carriers.list_gateways, call.params["isp_id"], call.params["carrier_id"],
                         limit=limit, offset=offset)


@api_route("POST", "/isps/{isp_id}/carriers/{carrier_id}/gateways", scope="write",
           summary="Add a gateway (host, port, transport, strip/prefix digits, IP auth, priority)",
           tag="carriers", body=GATEWAY_CREATE, returns=GATEWAY, status=201)
async def create_gateway(call: Call):
    return await call.tx(lambda tx: carriers.create_gateway(
        tx, call.params["isp_id"], call.params["carrier_id"], **call.body))


@api_route("GET", "/isps/{isp_id}/gateways/{gateway_id}", scope="read", summary="Show a gateway",
           tag="carriers", returns=GATEWAY)
async def get_gateway(call: Call):
    return await call.tx(carriers.get_gateway, call.params["isp_id"], call.params["gateway_id"])


@api_route("PATCH", "/isps/{isp_id}/gateways/{gateway_id}", scope="write", summary="Change a gateway",
           tag="carriers", body=GATEWAY_UPDATE, returns=GATEWAY)
async def update_gateway(call: Call):
    return await call.tx(lambda tx: carriers.update_gateway(
        tx, call.params["isp_id"], call.params["gateway_id"], **call.body))


@api_route("GET", "/isps/{isp_id}/dids", scope="read", tag="numbers", returns=DID, listing=True,
           customer_ok=True, query=("tenant_id", "customer_id", ("state", {"enum": list(dids.STATES)})),
           summary="List the number inventory with who holds each (a customer token sees its own)")
async def list_dids(call: Call):
    limit, offset = call.page()
    customer_id = call.principal.customer_id or call.query_int("customer_id")
    return await call.tx(lambda tx: dids.list_dids(
        tx, call.params["isp_id"], call.query_int("tenant_id"), customer_id=customer_id,
        state=call.query_choice("state", dids.STATES), limit=limit, offset=offset))


@api_route("POST", "/isps/{isp_id}/dids", scope="write", tag="numbers", body=DIDS_CREATE, returns=items_of(DID),
           status=201, summary=f"Add a DID, or a range first..last of at most {dids.MAX_RANGE} numbers")
async def add_dids(call: Call):
    rows = await call.tx(dids.add_dids, call.params["isp_id"], call.body["first"], call.body.get("last"))
    return {"items": rows}


@api_route("GET", "/isps/{isp_id}/dids/{did_id}", scope="read", summary="Show a DID and who holds it",
           tag="numbers", returns=DID, customer_ok=True)
async def get_did(call: Call):
    """A customer token reaches only its own DIDs: the gate checks `did_id` (store/ownership.py)."""
    return await call.tx(dids.get_did, call.params["isp_id"], call.params["did_id"])


@api_route("POST", "/isps/{isp_id}/dids/{did_id}/allocate", scope="write", summary="Allocate a DID to a tenant",
           tag="numbers", body=ALLOCATE, returns=DID)
async def allocate_did(call: Call):
    return await call.tx(dids.allocate_did, call.params["isp_id"], call.params["did_id"], call.body["tenant_id"])


@api_route("POST", "/isps/{isp_id}/dids/{did_id}/route", scope="write", tag="numbers", body=ROUTE, returns=DID,
           customer_ok=True,
           summary="Route an allocated DID to a subscriber of its tenant or to a feature a call application"
                   " of the node serves ('echo'; 422 for one nobody serves); neither unroutes it")
async def route_did(call: Call):
    return await call.tx(dids.route_did, call.params["isp_id"], call.params["did_id"],
                         call.body.get("subscriber_id"), call.body.get("feature"), call.services.applications)


@api_route("POST", "/isps/{isp_id}/dids/{did_id}/release", scope="write",
           summary="Return a DID to the free inventory (its route goes too)", tag="numbers", returns=DID)
async def release_did(call: Call):
    return await call.tx(dids.release_did, call.params["isp_id"], call.params["did_id"])
