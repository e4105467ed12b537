"""Customers, their tenants (PBXs) and the tenants' subscribers."""

from __future__ import annotations

from wevoip.credentials import hash_password
from wevoip.store import customers, registrations, subscribers, tenants
from wevoip.web.api.errors import ApiError
from wevoip.web.api.routes import (AMOUNT, BOOLEAN, DATE, DNS_LABEL, ID, ID_IN, INTEGER, NULLABLE_ID, OPTIONAL_E164, STAMP,
                                   Call, api_route, nullable, obj, record, shaped, text)

_CUSTOMER_FIELDS = {
    "name": text(200), "service_plan_id": NULLABLE_ID, "max_subscribers": INTEGER,
    "max_concurrent_calls": INTEGER, "billing_mode": {"enum": ["prepaid", "postpaid"]},
    "balance_management": {"enum": ["SOFT", "HARD"]}, "credit_limit": AMOUNT,
    "first_name": text(100), "last_name": text(100), "email": text(254),
    "status": {"enum": list(customers.STATUSES)},
}
CUSTOMER_CREATE = obj(_CUSTOMER_FIELDS, ("name",))
CUSTOMER_UPDATE = obj(_CUSTOMER_FIELDS)
TENANT_CREATE = obj({"customer_id": ID_IN, "name": text(200), "label": DNS_LABEL, "domain_id": ID_IN},
                    ("customer_id", "name"))
TENANT_UPDATE = obj({"name": text(200)}, ("name",))
_SUBSCRIBER_FIELDS = {"display_name": text(100), "extension": shaped("^([0-9]{2,8})?$", 8, "2 to 8 digits, or empty"),
                      "e164": OPTIONAL_E164, "is_pilot": BOOLEAN, "email": text(254)}
SUBSCRIBER_CREATE = obj({**_SUBSCRIBER_FIELDS, "username": text(64), "password": text(128),
                         "web_username": text(254), "web_password": text(128)}, ("username", "password"))
SUBSCRIBER_UPDATE = obj(_SUBSCRIBER_FIELDS)
PASSWORD = obj({"password": text(128)}, ("password",))
_TEXT = {"type": "string"}
CUSTOMER = record({"id": ID, "isp_id": ID, "name": _TEXT, "status": {"enum": list(customers.STATUSES)},
                   "service_plan_id": nullable(ID), "max_subscribers": ID, "max_concurrent_calls": ID,
                   "billing_mode": {"enum": ["prepaid", "postpaid"]}, "balance_management": {"enum": ["SOFT", "HARD"]},
                   "credit_limit": AMOUNT, "balance": AMOUNT, "first_name": _TEXT, "last_name": _TEXT,
                   "email": _TEXT, "created_at": STAMP,
                   # The billing period the account is in; null until its first billing run.
                   "period_start": nullable(DATE), "next_billing_date": nullable(DATE)})
TENANT = record({"id": ID, "isp_id": ID, "customer_id": ID, "name": _TEXT, "domain_id": ID, "sip_domain": _TEXT,
                 "created_at": STAMP})
SUBSCRIBER = record({"id": ID, "isp_id": ID, "customer_id": ID, "tenant_id": ID, "username": _TEXT,
                     "display_name": _TEXT, "extension": nullable(_TEXT), "e164": nullable(_TEXT),
                     "is_pilot": BOOLEAN, "web_username": nullable(_TEXT), "email": _TEXT,
                     "created_at": STAMP})
REGISTRATION = record({"id": ID, "subscriber_id": ID, "username": _TEXT, "contact": _TEXT, "q": _TEXT,
                       "expires_at": STAMP, "source": _TEXT, "transport": _TEXT, "user_agent": _TEXT,
                       "node": _TEXT, "updated_at": STAMP})


@api_route("GET", "/isps/{isp_id}/customers", scope="read", summary="List customers", tag="customers",
           returns=CUSTOMER, listing=True)
async def list_customers(call: Call):
    limit, offset = call.page()
    return await call.tx(customers.list_customers, call.params["isp_id"], limit=limit, offset=offset)


@api_route("POST", "/isps/{isp_id}/customers", scope="write", summary="Create a customer", tag="customers",
           body=CUSTOMER_CREATE, returns=CUSTOMER, status=201)
async def create_customer(call: Call):
    return await call.tx(lambda tx: customers.create_customer(tx, call.params["isp_id"], **call.body))


@api_route("GET", "/isps/{isp_id}/customers/{customer_id}", scope="read", summary="Show a customer",
           tag="customers", returns=CUSTOMER, customer_ok=True)
async def get_customer(call: Call):
    call.principal.check_customer(call.params["customer_id"])
    return await call.tx(customers.get_customer, call.params["isp_id"], call.params["customer_id"])


@api_route("PATCH", "/isps/{isp_id}/customers/{customer_id}", scope="write",
           summary="Change a customer (plan, limits, status: activate a WAIT signup, suspend)",
           tag="customers", body=CUSTOMER_UPDATE, returns=CUSTOMER)
async def update_customer(call: Call):
    return await call.tx(lambda tx: customers.update_customer(
        tx, call.params["isp_id"], call.params["customer_id"], **call.body))


async def _own_tenant(call: Call, tx, tenant_id: int):
    tenant = await tenants.get_tenant(tx, call.params["isp_id"], tenant_id)
    call.principal.check_customer(tenant["customer_id"])
    return tenant


@api_route("GET", "/isps/{isp_id}/tenants", scope="read", summary="List tenants (PBXs)", tag="tenants",
           returns=TENANT, listing=True, customer_ok=True, query=("customer_id",))
async def list_tenants(call: Call):
    limit, offset = call.page()
    customer_id = call.principal.customer_id or call.query_int("customer_id")
    return await call.tx(tenants.list_tenants, call.params["isp_id"], customer_id, limit=limit, offset=offset)


@api_route("POST", "/isps/{isp_id}/tenants", scope="write", summary="Create a tenant with its SIP domain",
           tag="tenants", body=TENANT_CREATE, returns=TENANT, status=201, customer_ok=True)
async def create_tenant(call: Call):
    body = dict(call.body)
    call.principal.check_customer(body["customer_id"])
    customer_id = body.pop("customer_id")
    return await call.tx(lambda tx: tenants.create_tenant(tx, call.params["isp_id"], customer_id, **body))


@api_route("GET", "/isps/{isp_id}/tenants/{tenant_id}", scope="read", summary="Show a tenant",
           tag="tenants", returns=TENANT, customer_ok=True)
async def get_tenant(call: Call):
    return await call.tx(lambda tx: _own_tenant(call, tx, call.params["tenant_id"]))


@api_route("PATCH", "/isps/{isp_id}/tenants/{tenant_id}", scope="write", summary="Rename a tenant",
           tag="tenants", body=TENANT_UPDATE, returns=TENANT, customer_ok=True)
async def rename_tenant(call: Call):
    async def work(tx):
        await _own_tenant(call, tx, call.params["tenant_id"])
        return await tenants.rename_tenant(tx, call.params["isp_id"], call.params["tenant_id"], call.body["name"])
    return await call.tx(work)


@api_route("GET", "/isps/{isp_id}/tenants/{tenant_id}/registrations", scope="read",
           summary="Live registrations of a tenant's phones", tag="tenants", returns=REGISTRATION, customer_ok=True,
           listing=True)
async def list_registrations(call: Call):
    limit, offset = call.page()

    async def work(tx):
        await _own_tenant(call, tx, call.params["tenant_id"])
        return await registrations.tenant_registrations(tx, call.params["isp_id"], call.params["tenant_id"],
                                                        limit=limit, offset=offset)
    return await call.tx(work)


@api_route("GET", "/isps/{isp_id}/tenants/{tenant_id}/subscribers", scope="read", summary="List subscribers",
           tag="subscribers", returns=SUBSCRIBER, listing=True, customer_ok=True)
async def list_subscribers(call: Call):
    limit, offset = call.page()

    async def work(tx):
        await _own_tenant(call, tx, call.params["tenant_id"])
        return await subscribers.list_subscribers(tx, call.params["isp_id"], call.params["tenant_id"],
                                                  limit=limit, offset=offset)
    return await call.tx(work)


@api_route("POST", "/isps/{isp_id}/tenants/{tenant_id}/subscribers", scope="write",
           summary="Create a subscriber (the pilot with the E.164 base number, or an extension)",
           tag="subscribers", body=SUBSCRIBER_CREATE, returns=SUBSCRIBER, status=201, customer_ok=True)
async def create_subscriber(call: Call):
    body = dict(call.body)
    web_password = body.pop("web_password", None)
    if (web_password is None) != (body.get("web_username") is None):
        raise ApiError(422, "invalid", "web_password: a web login needs both web_username and web_password",
                       field="web_password")
    if web_password is not None:
        if len(web_password) < 10:
            raise ApiError(422, "invalid", "web_password: must be at least 10 characters", field="web_password")
        body["web_password_hash"] = await hash_password(call.database.reactor, web_password)

    async def work(tx):
        await _own_tenant(call, tx, call.params["tenant_id"])
        return await subscribers.create_subscriber(tx, call.params["isp_id"], call.params["tenant_id"], **body)
    return await call.tx(work)


async def _own_subscriber(call: Call, tx):
    subscriber = await subscribers.get_subscriber(tx, call.params["isp_id"], call.params["subscriber_id"])
    call.principal.check_customer(subscriber["customer_id"])
    return subscriber


@api_route("GET", "/isps/{isp_id}/subscribers/{subscriber_id}", scope="read", summary="Show a subscriber",
           tag="subscribers", returns=SUBSCRIBER, customer_ok=True)
async def get_subscriber(call: Call):
    return await call.tx(lambda tx: _own_subscriber(call, tx))


@api_route("PATCH", "/isps/{isp_id}/subscribers/{subscriber_id}", scope="write",
           summary="Change a subscriber", tag="subscribers", body=SUBSCRIBER_UPDATE, returns=SUBSCRIBER, customer_ok=True)
async def update_subscriber(call: Call):
    async def work(tx):
        await _own_subscriber(call, tx)
        return await subscribers.update_subscriber(tx, call.params["isp_id"], call.params["subscriber_id"],
                                                   **call.body)
    return await call.tx(work)


@api_route("PUT", "/isps/{isp_id}/subscribers/{subscriber_id}/sip-password", scope="write",
           summary="Set a subscriber's SIP password", tag="subscribers", body=PASSWORD, returns=SUBSCRIBER,
           customer_ok=True)
async def set_sip_password(call: Call):
    async def work(tx):
        await _own_subscriber(call, tx)
        return await subscribers.set_sip_password(tx, call.params["isp_id"], call.params["subscriber_id"],
                                                  call.body["password"])
    return await call.tx(work)


@api_route("DELETE", "/isps/{isp_id}/subscribers/{subscriber_id}", scope="write",
           summary="Delete a subscriber", tag="subscribers", status=204, customer_ok=True)
async def delete_subscriber(call: Call):
    async def work(tx):
        await _own_subscriber(call, tx)
        await subscribers.delete_subscriber(tx, call.params["isp_id"], call.params["subscriber_id"])
    return await call.tx(work)
