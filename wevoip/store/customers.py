"""Service plans and customers: what an ISP sells and to whom."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from wevoip.store import fields, webhooks
from wevoip.store.database import Row, Tx
from wevoip.store.rows import checked, fetch_page, fetch_row, insert_row, update_row

STATUSES = ("WAIT", "ACTIVE", "SUSPENDED")

_CHECKS = {
    "name": fields.text,
    "service_plan_id": lambda field, value: None if value is None else fields.count(field, value, maximum=2**62),
    "max_subscribers": fields.count,
    "max_concurrent_calls": fields.count,
    "billing_mode": lambda field, value: fields.one_of(field, value, ("prepaid", "postpaid")),
    "balance_management": lambda field, value: fields.one_of(field, value, ("SOFT", "HARD")),
    "credit_limit": lambda field, value: fields.money(field, value, minimum=Decimal(0)),
    "first_name": lambda field, value: fields.text(field, value, max_length=100, required=False),
    "last_name": lambda field, value: fields.text(field, value, max_length=100, required=False),
    "email": fields.email,
    "status": lambda field, value: fields.one_of(field, value, STATUSES),
}


async def create_service_plan(tx: Tx, isp_id: int, *, name: str) -> Row:
    return await insert_row(tx, "service_plans", {"isp_id": isp_id, "name": fields.text("name", name, max_length=100)})


async def get_service_plan(tx: Tx, isp_id: int, plan_id: int) -> Row:
    return await fetch_row(tx, "service_plans", {"isp_id": isp_id, "id": plan_id}, "service plan")


async def list_service_plans(tx: Tx, isp_id: int, *, limit: int = 100, offset: int = 0) -> list[Row]:
    return await fetch_page(tx, "service_plans", {"isp_id": isp_id}, limit, offset)


async def create_customer(tx: Tx, isp_id: int, *, name: str, **details: Any) -> Row:
    values = checked({"name": name, **details}, _CHECKS, "customer")
    if values.get("service_plan_id") is not None:
        await get_service_plan(tx, isp_id, values["service_plan_id"])
    customer = await insert_row(tx, "customers", {"isp_id": isp_id, **values})
    if customer["status"] == "WAIT":
        await webhooks.signup_waiting(tx, isp_id, customer_id=customer["id"], name=customer["name"],
                                      email=customer["email"])
    return customer


async def get_customer(tx: Tx, isp_id: int, customer_id: int, *, lock: bool = False) -> Row:
    return await fetch_row(tx, "customers", {"isp_id": isp_id, "id": customer_id}, "customer", lock=lock)


async def list_customers(tx: Tx, isp_id: int, *, limit: int = 100, offset: int = 0) -> list[Row]:
    return await fetch_page(tx, "customers", {"isp_id": isp_id}, limit, offset)


async def update_customer(tx: Tx, isp_id: int, customer_id: int, **changes: Any) -> Row:
    if changes.get("service_plan_id") is not None:
        await get_service_plan(tx, isp_id, changes["service_plan_id"])
    return await update_row(tx, "customers", {"isp_id": isp_id, "id": customer_id}, "customer",
                            changes, _CHECKS)


async def set_customer_status(tx: Tx, isp_id: int, customer_id: int, status: str) -> Row:
    return await update_customer(tx, isp_id, customer_id, status=status)
