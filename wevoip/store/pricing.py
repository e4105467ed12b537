"""
What a service plan charges: fees, the customer card it sells from, and its service deck
(markup, pulse, free minutes, per-area rates, free zones); per-DID charges and extras.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from psycopg2 import sql

from wevoip.store import fields
from wevoip.store.customers import get_service_plan
from wevoip.store.database import Row, Tx
from wevoip.store.dids import get_did
from wevoip.store.errors import Invalid
from wevoip.store.ratedecks import CLASSES, get_deck
from wevoip.store.rows import update_row

# Migration 0075's trigger publishes `isp:<id>` and `plan:<id>` here on every change of an
# ISP, a service plan, its area rates or free zones, whoever writes them.
RULES_CHANNEL = "pricing_rules"

FEES = ("monthly_fee", "setup_fee", "markup_fixed", "markup_percent", "did_setup_fee", "did_monthly_fee",
         "did_per_minute", "e911_setup_fee", "e911_monthly_fee", "fax_setup_fee", "fax_monthly_fee",
         "fax_per_page")


def _amount(field: str, value: Any) -> Decimal:
    return fields.money(field, value, minimum=Decimal(0))


def _optional_amount(field: str, value: Any) -> Decimal | None:
    return None if value is None else _amount(field, value)


def _classes(field: str, value: Any) -> list[str]:
    if not isinstance(value, list) or any(item not in CLASSES for item in value):
        raise Invalid(field, f"must be a list of {', '.join(CLASSES)}")
    return sorted(set(value))


def _pulse(field: str, value: Any) -> int | None:
    if value is None:
        return None
    if fields.count(field, value, maximum=3600) < 1:
        raise Invalid(field, "must be from 1 to 3600 seconds (or null for the deck's increment)")
    return value


_PLAN = {**{name: _amount for name in FEES},
         "rate_deck_id": lambda field, value: None if value is None else fields.count(field, value, maximum=2**62),
         "service_deck": fields.flag,
         "pulse": _pulse,
         "free_minutes": lambda field, value: fields.count(field, value, maximum=10**6),
         "allowed_classes": _classes}


async def set_plan_pricing(tx: Tx, isp_id: int, plan_id: int, **changes: Any) -> Row:
    if changes.get("rate_deck_id") is not None:
        deck = await get_deck(tx, isp_id, changes["rate_deck_id"])
        if deck["kind"] != "customer":
            raise Invalid("rate_deck_id", "a plan sells from a customer card")
    return await update_row(tx, "service_plans", {"isp_id": isp_id, "id": plan_id}, "service plan",
                            changes, _PLAN)


def _prefix(field: str, value: Any, *, empty: bool = False) -> str:
    if not isinstance(value, str) or len(value) > 15 or not (value.isdigit() or empty and value == ""):
        raise Invalid(field, "must be up to 15 digits" + (" (empty for every number)" if empty else ""))
    return value


async def _replace_by_prefix(tx: Tx, isp_id: int, plan_id: int, table: str, items: list[dict], name: str,
                             column: str, check, *, empty_prefix: bool) -> list[Row]:
    """Replace a plan's rows keyed by prefix, each item checked and named by its index."""
    await get_service_plan(tx, isp_id, plan_id)
    checked = {}
    for index, item in enumerate(items):
        where = f"{name}[{index}]"
        if not isinstance(item, dict):
            raise Invalid(where, f"must be an object with prefix and {column}")
        prefix = _prefix(f"{where}.prefix", item.get("prefix", "" if empty_prefix else None), empty=empty_prefix)
        if prefix in checked:
            raise Invalid(f"{where}.prefix", "is listed twice")
        checked[prefix] = check(f"{where}.{column}", item.get(column))
    await tx.execute(sql.SQL("delete from {} where isp_id = %s and plan_id = %s").format(sql.Identifier(table)),
                     (isp_id, plan_id))
    for prefix, value in checked.items():
        await tx.execute(sql.SQL("insert into {} (isp_id, plan_id, prefix, {}) values (%s, %s, %s, %s)").format(
            sql.Identifier(table), sql.Identifier(column)), (isp_id, plan_id, prefix, value))
    return await tx.fetch(sql.SQL("select prefix, {} from {} where isp_id = %s and plan_id = %s order by prefix")
                          .format(sql.Identifier(column), sql.Identifier(table)), (isp_id, plan_id))


async def set_area_rates(tx: Tx, isp_id: int, plan_id: int, rates: list[dict]) -> list[Row]:
    """Replace the plan's per-area rates (prefix -> price a minute, overriding the markup)."""
    return await _replace_by_prefix(tx, isp_id, plan_id, "plan_area_rates", rates, "rates", "per_minute", _amount,
                                    empty_prefix=False)


async def area_rates(tx: Tx, isp_id: int, plan_id: int) -> list[Row]:
    return await tx.fetch("select prefix, per_minute from plan_area_rates where isp_id = %s and plan_id = %s"
                          " order by prefix", (isp_id, plan_id))


async def set_free_zones(tx: Tx, isp_id: int, plan_id: int, zones: list[dict]) -> list[Row]:
    """Replace the plan's free zones: a prefix, optionally only where the cost is at most max_cost."""
    return await _replace_by_prefix(tx, isp_id, plan_id, "plan_free_zones", zones, "zones", "max_cost",
                                    _optional_amount, empty_prefix=True)


async def free_zones(tx: Tx, isp_id: int, plan_id: int) -> list[Row]:
    return await tx.fetch("select prefix, max_cost from plan_free_zones where isp_id = %s and plan_id = %s"
                          " order by prefix", (isp_id, plan_id))


_DID = {"setup_fee": _optional_amount, "monthly_fee": _optional_amount, "per_minute": _optional_amount,
        "e911": fields.flag, "fax": fields.flag}


async def set_did_billing(tx: Tx, isp_id: int, did_id: int, **changes: Any) -> Row:
    """A DID's own fees (null: the plan's) and whether it carries e911 or fax."""
    await get_did(tx, isp_id, did_id)
    await tx.execute("insert into did_billing (isp_id, did_id) values (%s, %s) on conflict (did_id) do nothing",
                     (isp_id, did_id))
    return await update_row(tx, "did_billing", {"isp_id": isp_id, "did_id": did_id}, "DID", changes, _DID)


async def did_charges(tx: Tx, isp_id: int, did_id: int) -> Row:
    """What a DID costs its customer: its own fees where set, else its customer's plan's
    (the `did_charges` function, migration 0053)."""
    row = await tx.fetch_one("select * from did_charges(%s, %s)", (isp_id, did_id))
    if row is None:
        await get_did(tx, isp_id, did_id)
    return row
