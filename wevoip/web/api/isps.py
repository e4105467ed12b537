"""ISPs, their API tokens, service plans and console administrators, and ISP signups."""

from __future__ import annotations

import datetime
import secrets

from wevoip.credentials import hash_password
from wevoip.store import customers, isps, signups, webusers
from wevoip.web.api.errors import ApiError
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


ADMIN_CREATE = obj({"email": text(254), "full_name": text(200), "password": text(200)},
                   ("email", "full_name", "password"))
ADMIN = record({"id": ID, "isp_id": ID, "email": _TEXT, "full_name": _TEXT, "created_at": STAMP})
SIGNUP = record({"id": ID, "email": _TEXT, "created_at": STAMP, "expires_at": STAMP,
                 "confirmed_at": nullable(STAMP), "expired": {"type": "boolean"},
                 "mail_state": {"enum": ["none", "queued", "sent", "failed"]}, "mail_error": _TEXT,
                 "mail_sent_at": nullable(STAMP)})
SIGNUP_LINK = record({"id": ID, "email": _TEXT, "link": _TEXT, "expires_at": STAMP})
MIN_ADMIN_PASSWORD = 12
LINK_LIFETIME = datetime.timedelta(hours=24)    # as the signup page's own links


@api_route("GET", "/isps/{isp_id}/admins", scope="read", summary="List an ISP's console administrators",
           tag="isps", returns=ADMIN, listing=True)
async def list_admins(call: Call):
    limit, offset = call.page()
    return await call.tx(webusers.list_isp_admins, call.params["isp_id"], limit=limit, offset=offset)


@api_route("POST", "/isps/{isp_id}/admins", scope="write", tag="isps", body=ADMIN_CREATE, returns=ADMIN,
           status=201, platform_only=True,
           summary="Create an ISP's console administrator (platform): an ISP created here has none")
async def create_admin(call: Call):
    password = call.body["password"]
    if len(password) < MIN_ADMIN_PASSWORD:
        raise ApiError(422, "invalid", f"password: must be at least {MIN_ADMIN_PASSWORD} characters",
                       field="password")
    password_hash = await hash_password(call.database.reactor, password)

    async def create(tx):
        await isps.get_isp(tx, call.params["isp_id"])
        return await webusers.create_isp_admin(tx, call.params["isp_id"], email=call.body["email"],
                                               full_name=call.body["full_name"], password_hash=password_hash)
    return await call.tx(create)


@api_route("GET", "/signups", scope="read", tag="isps", returns=SIGNUP, listing=True, platform_only=True,
           summary="ISP signups not finished yet, with what became of their confirmation mail (platform)")
async def list_signups(call: Call):
    limit, offset = call.page()
    return await call.tx(signups.pending_signups, limit=limit, offset=offset)


def _base_url(call: Call) -> str:
    if call.services.public_url:
        return call.services.public_url
    try:
        return call.services.listeners.find("web", "http").url()
    except (AttributeError, KeyError):
        raise ApiError(409, "no_public_url", "web.public_url: set it, so a link says where the console is",
                       field="web.public_url") from None


@api_route("POST", "/signups/{signup_id}/link", scope="write", tag="isps", returns=SIGNUP_LINK, platform_only=True,
           summary="A new confirmation link for a signup (platform): the old one stops working, the new one is"
                   " mailed again and answered here, to hand over when mail is not configured")
async def renew_signup_link(call: Call):
    token = secrets.token_urlsafe(32)
    link = f"{_base_url(call)}/signup/confirm?token={token}"

    async def renew(tx):
        signup = await signups.renew_link(tx, call.params["signup_id"], token, LINK_LIFETIME)
        await signups.mail_link(tx, signup, token, link)
        return {"id": signup["id"], "email": signup["email"], "link": link, "expires_at": signup["expires_at"]}
    return await call.tx(renew)
