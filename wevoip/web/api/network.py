"""Domains, carriers and gateways, and the number inventory."""

from __future__ import annotations

from wevoip.store import carriers, dids, domains
from wevoip.web.api.routes import BOOLEAN, INTEGER, NULLABLE_ID, ROW, Call, api_route, obj, text

DOMAIN_CREATE = obj({"label": text(63), "name": text(253)})
CARRIER_FIELDS = {"name": text(100), "enabled": BOOLEAN, "max_concurrent_calls": {"type": ["integer", "null"],
                                                                                  "minimum": 0}}
CARRIER_CREATE = obj(CARRIER_FIELDS, ("name",))
CARRIER_UPDATE = obj(CARRIER_FIELDS)
GATEWAY_FIELDS = {"host": text(253), "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                  "transport": {"enum": ["udp", "tcp", "tls"]}, "strip_digits": INTEGER, "prefix": text(16),
                  "ip_auth": BOOLEAN, "source_ips": {"type": "array", "items": text(49), "maxItems": 64},
                  "priority": INTEGER, "enabled": BOOLEAN}
GATEWAY_CREATE = obj(GATEWAY_FIELDS, ("host",))
GATEWAY_UPDATE = obj(GATEWAY_FIELDS)
DIDS_CREATE = obj({"first": text(16), "last": text(16)}, ("first",))
ALLOCATE = obj({"tenant_id": INTEGER}, ("tenant_id",))
ROUTE = obj({"subscriber_id": NULLABLE_ID}, ("subscriber_id",))


@api_route("GET", "/isps/{isp_id}/domains", scope="read", summary="List SIP domains", tag="domains",
           returns=ROW, listing=True)
async def list_domains(call: Call):
    limit, offset = call.page()
    return await call.tx(domains.list_domains, call.params["isp_id"], limit=limit, offset=offset)


@api_route("POST", "/isps/{isp_id}/domains", scope="write", tag="domains", body=DOMAIN_CREATE,
           returns=ROW, status=201,
           summary="Add a domain: 'label' under the namespace, or 'name' of your own (verified by DNS TXT)")
async def create_domain(call: Call):
    isp_id = call.params["isp_id"]
    if "label" in call.body:
        return await call.tx(domains.create_namespace_domain, isp_id, call.body["label"])
    return await call.tx(domains.add_verified_domain, isp_id, call.body.get("name", ""))


@api_route("GET", "/isps/{isp_id}/domains/{domain_id}", scope="read", summary="Show a domain",
           tag="domains", returns=ROW)
async def get_domain(call: Call):
    return await call.tx(domains.get_domain, call.params["isp_id"], call.params["domain_id"])


@api_route("GET", "/isps/{isp_id}/carriers", scope="read", summary="List carriers", tag="carriers",
           returns=ROW, listing=True)
async def list_carriers(call: Call):
    limit, offset = call.page()
    return await call.tx(carriers.list_carriers, call.params["isp_id"], limit=limit, offset=offset)


@api_route("POST", "/isps/{isp_id}/carriers", scope="write", summary="Create a carrier", tag="carriers",
           body=CARRIER_CREATE, returns=ROW, status=201)
async def create_carrier(call: Call):
    return await call.tx(lambda tx: carriers.create_carrier(tx, call.params["isp_id"], **call.body))


@api_route("GET", "/isps/{isp_id}/carriers/{carrier_id}", scope="read", summary="Show a carrier",
           tag="carriers", returns=ROW)
async def get_carrier(call: Call):
    return await call.tx(carriers.get_carrier, call.params["isp_id"], call.params["carrier_id"])


@api_route("PATCH", "/isps/{isp_id}/carriers/{carrier_id}", scope="write", summary="Change a carrier",
           tag="carriers", body=CARRIER_UPDATE, returns=ROW)
async def update_carrier(call: Call):
    return await call.tx(lambda tx: carriers.update_carrier(
        tx, call.params["isp_id"], call.params["carrier_id"], **call.body))


@api_route("GET", "/isps/{isp_id}/carriers/{carrier_id}/gateways", scope="read", summary="List gateways",
           tag="carriers", returns=ROW, listing=True)
async def list_gateways(call: Call):
    limit, offset = call.page()
    return await call.tx(carriers.list_gateways, call.params["isp_id"], call.params["carrier_id"],
                         limit=limit, offset=offset)


@api_route("POST", "/isps/{isp_id}/carriers/{carrier_id}/gateways", scope="write",
           summary="Add a gateway (host, port, transport, strip/prefix digits, IP auth, priority)",
           tag="carriers", body=GATEWAY_CREATE, returns=ROW, status=201)
async def create_gateway(call: Call):
    return await call.tx(lambda tx: carriers.create_gateway(
        tx, call.params["isp_id"], call.params["carrier_id"], **call.body))


@api_route("GET", "/isps/{isp_id}/gateways/{gateway_id}", scope="read", summary="Show a gateway",
           tag="carriers", returns=ROW)
async def get_gateway(call: Call):
    return await call.tx(carriers.get_gateway, call.params["isp_id"], call.params["gateway_id"])


@api_route("PATCH", "/isps/{isp_id}/gateways/{gateway_id}", scope="write", summary="Change a gateway",
           tag="carriers", body=GATEWAY_UPDATE, returns=ROW)
async def update_gateway(call: Call):
    return await call.tx(lambda tx: carriers.update_gateway(
        tx, call.params["isp_id"], call.params["gateway_id"], **call.body))


@api_route("GET", "/isps/{isp_id}/dids", scope="read", summary="List the number inventory", tag="numbers",
           returns=ROW, listing=True)
async def list_dids(call: Call):
    limit, offset = call.page()
    return await call.tx(dids.list_dids, call.params["isp_id"], limit=limit, offset=offset)


@api_route("POST", "/isps/{isp_id}/dids", scope="write", summary="Add a DID or a range first..last",
           tag="numbers", body=DIDS_CREATE, returns=ROW, status=201)
async def add_dids(call: Call):
    rows = await call.tx(dids.add_dids, call.params["isp_id"], call.body["first"], call.body.get("last"))
    return {"items": rows}


@api_route("GET", "/isps/{isp_id}/dids/{did_id}", scope="read", summary="Show a DID", tag="numbers",
           returns=ROW)
async def get_did(call: Call):
    return await call.tx(dids.get_did, call.params["isp_id"], call.params["did_id"])


@api_route("POST", "/isps/{isp_id}/dids/{did_id}/allocate", scope="write", summary="Allocate a DID to a tenant",
           tag="numbers", body=ALLOCATE, returns=ROW)
async def allocate_did(call: Call):
    return await call.tx(dids.allocate_did, call.params["isp_id"], call.params["did_id"], call.body["tenant_id"])


@api_route("POST", "/isps/{isp_id}/dids/{did_id}/route", scope="write",
           summary="Route an allocated DID to a subscriber of its tenant (null: unroute)", tag="numbers",
           body=ROUTE, returns=ROW)
async def route_did(call: Call):
    return await call.tx(dids.route_did, call.params["isp_id"], call.params["did_id"],
                         call.body["subscriber_id"])


@api_route("POST", "/isps/{isp_id}/dids/{did_id}/release", scope="write",
           summary="Return a DID to the inventory", tag="numbers", returns=ROW)
async def release_did(call: Call):
    return await call.tx(dids.release_did, call.params["isp_id"], call.params["did_id"])
