"""ISPs, their API tokens and service plans."""

from __future__ import annotations

from wevoip.store import customers, isps
from wevoip.web.api.routes import (COLOUR, COUNTRY, CURRENCY, DNS_NAME, ID, OPTIONAL_E164, STAMP, Call, api_route,
                                   nullable, obj, record, text)

_ISP_FIELDS = {
    "name": text(200), "currency": CURRENCY, "address_line1": text(200), "address_line2": text(200),
    "city": text(200), "region": text(200), "postal_code": text(20), "country": COUNTRY,
    "contact_name": text(200), "contact_email": text(254), "contact_phone": OPTIONAL_E164,
    "brand_title": text(100), "brand_primary": COLOUR, "brand_accent": COLOUR, "smtp_sender": text(254),
}
ISP_CREATE = obj({**_ISP_FIELDS, "namespace": DNS_NAME}, ("name", "namespace", "currency"))
ISP_UPDATE = obj(_ISP_FIELDS)
PLAN_CREATE = obj({"name": text(100)}, ("name",))
_TEXT = {"type": "string"}
ISP = record({"id": ID, "name": _TEXT, "namespace": _TEXT, "currency": _TEXT, "address_line1": _TEXT,
              "address_line2": _TEXT, "city": _TEXT, "region": _TEXT, "postal_code": _TEXT,
              "country": nullable(_TEXT), "contact_name": _TEXT, "contact_email": _TEXT,
              "contact_phone": nullable(_TEXT), "brand_title": _TEXT, "brand_primary": _TEXT, "brand_accent": _TEXT,
              "brand_logo_type": nullable(_TEXT), "smtp_sender": _TEXT, "created_at": STAMP})
PLAN = record({"id": ID, "isp_id": ID, "name": _TEXT, "created_at": STAMP})


@api_route("GET", "/isps", scope="read", summary="List ISPs (platform)", tag="isps",
           returns=ISP, listing=True, platform_only=True)
async def list_isps(call: Call):
    limit, offset = call.page()
    return await call.tx(isps.list_isps, limit=limit, offset=offset)


@api_route("POST", "/isps", scope="write", summary="Create an ISP (platform)", tag="isps",
           body=ISP_CREATE, returns=ISP, status=201, platform_only=True)
async def create_isp(call: Call):
    return await call.tx(lambda tx: isps.create_isp(tx, **call.body))


@api_route("GET", "/isps/{isp_id}", scope="read", summary="Show an ISP", tag="isps", returns=ISP)
async def get_isp(call: Call):
    return await call.tx(isps.get_isp, call.params["isp_id"])


@api_route("PATCH", "/isps/{isp_id}", scope="write", summary="Change an ISP's details", tag="isps",
           body=ISP_UPDATE, returns=ISP)
async def update_isp(call: Call):
    return await call.tx(isps.update_isp, call.params["isp_id"], **call.body)


@api_route("GET", "/isps/{isp_id}/service-plans", scope="read", summary="List service plans",
           tag="plans", returns=PLAN, listing=True)
async def list_plans(call: Call):
    limit, offset = call.page()
    return await call.tx(customers.list_service_plans, call.params["isp_id"], limit=limit, offset=offset)


@api_route("POST", "/isps/{isp_id}/service-plans", scope="write", summary="Create a service plan",
           tag="plans", body=PLAN_CREATE, returns=PLAN, status=201)
async def create_plan(call: Call):
    return await call.tx(customers.create_service_plan, call.params["isp_id"], **call.body)


@api_route("GET", "/isps/{isp_id}/service-plans/{plan_id}", scope="read", summary="Show a service plan",
           tag="plans", returns=PLAN)
async def get_plan(call: Call):
    return await call.tx(customers.get_service_plan, call.params["isp_id"], call.params["plan_id"])
