"""
The ledger: every payment and charge of a customer, and the balance they move.

A balance changes only by a ledger row: the row's insert trigger adds its amount to the
balance in the same statement, and SQL refuses any other update of a balance. What follows
a balance change happens here, in the same transaction, under the customer's row lock:
HARD balance management suspends an account that has no money left (and lifts that
suspension when money comes back), and the low-balance mail is enqueued once per crossing
of the threshold, its outbox dedupe key numbered by crossing.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from wevoip.store import fields
from wevoip.store.customers import get_customer
from wevoip.store.database import Row, Tx
from wevoip.store.errors import Invalid
from wevoip.store.isps import get_isp
from wevoip.store import webhooks
from wevoip.store.outbox import enqueue_mail
from wevoip.store.rows import fetch_page, update_row

CATEGORIES = ("manual", "call", "monthly", "setup", "did", "e911", "fax")


def available(customer: Row) -> Decimal:
    """Money a customer may still spend: the balance, plus the credit limit if postpaid."""
    credit = customer["credit_limit"] if customer["billing_mode"] == "postpaid" else Decimal(0)
    return customer["balance"] + credit


def fill_placeholders(template: str, customer: Row, currency: str) -> str:
    threshold = customer["low_balance_threshold"]
    values = {"[firstname]": customer["first_name"], "[lastname]": customer["last_name"],
              "[balance]": f"{customer['balance']:.2f} {currency}",
              "[threshold]": f"{threshold:.2f} {currency}" if threshold is not None else ""}
    for placeholder, value in values.items():
        template = template.replace(placeholder, value)
    return template


async def _after_balance_change(tx: Tx, isp_id: int, customer: Row) -> Row:
    changes: dict[str, Any] = {}
    if customer["balance_management"] == "HARD":
        if available(customer) <= 0 and customer["status"] == "ACTIVE":
            changes.update(status="SUSPENDED", balance_suspended=True)
            await webhooks.account_locked(tx, isp_id, customer_id=customer["id"],
                                          reason="the balance is used up (HARD balance management)")
        elif available(customer) > 0 and customer["balance_suspended"]:
            changes.update(status="ACTIVE", balance_suspended=False)
    threshold = customer["low_balance_threshold"]
    if threshold is not None:
        below = customer["balance"] < threshold
        if below and not customer["low_balance_below"]:
            changes.update(low_balance_below=True, low_balance_crossings=customer["low_balance_crossings"] + 1)
            await _low_balance_mail(tx, isp_id, customer, changes["low_balance_crossings"])
            isp = await get_isp(tx, isp_id)
            await webhooks.balance_low(tx, isp_id, customer_id=customer["id"], balance=customer["balance"],
                                       threshold=threshold, currency=isp["currency"],
                                       dedupe_key=f"low-balance:{customer['id']}:{changes['low_balance_crossings']}")
        elif not below and customer["low_balance_below"]:
            changes.update(low_balance_below=False)
    if not changes:
        return customer
    return await update_row(tx, "customers", {"isp_id": isp_id, "id": customer["id"]}, "customer",
                            changes, {name: lambda field, value: value for name in changes})


async def _low_balance_mail(tx: Tx, isp_id: int, customer: Row, crossing: int) -> None:
    to = customer["low_balance_email"] or customer["email"]
    if not to:
        return
    isp = await get_isp(tx, isp_id)
    await enqueue_mail(tx, isp_id, to=to,
                       subject=fill_placeholders(isp["low_balance_subject"], customer, isp["currency"]),
                       body=fill_placeholders(isp["low_balance_body"], customer, isp["currency"]),
                       dedupe_key=f"low-balance:{customer['id']}:{crossing}")


async def post(tx: Tx, isp_id: int, customer_id: int, *, kind: str, amount: Any, description: str,
               category: str = "manual", cdr_id: int | None = None) -> Row:
    """One ledger row and its balance change; `amount` is positive for both kinds."""
    amount = fields.money("amount", amount)
    if amount <= 0:
        raise Invalid("amount", "must be more than 0")
    description = fields.text("description", description)
    category = fields.one_of("category", category, CATEGORIES)
    await get_customer(tx, isp_id, customer_id, lock=True)
    entry = await tx.fetch_one(
        "insert into ledger (isp_id, customer_id, kind, amount, balance_after, description, category, cdr_id)"
        " values (%s, %s, %s, %s, 0, %s, %s, %s) returning *",
        (isp_id, customer_id, kind, amount if kind == "payment" else -amount, description, category, cdr_id))
    await _after_balance_change(tx, isp_id, await get_customer(tx, isp_id, customer_id))
    return entry


async def add_payment(tx: Tx, isp_id: int, customer_id: int, *, amount: Any, description: str) -> Row:
    return await post(tx, isp_id, customer_id, kind="payment", amount=amount, description=description)


async def add_charge(tx: Tx, isp_id: int, customer_id: int, *, amount: Any, description: str,
                     category: str = "manual", cdr_id: int | None = None) -> Row:
    return await post(tx, isp_id, customer_id, kind="charge", amount=amount, description=description,
                      category=category, cdr_id=cdr_id)


async def list_ledger(tx: Tx, isp_id: int, customer_id: int, *, limit: int = 100, offset: int = 0) -> list[Row]:
    await get_customer(tx, isp_id, customer_id)
    return await fetch_page(tx, "ledger", {"isp_id": isp_id, "customer_id": customer_id}, limit, offset)


def _optional_amount(field: str, value: Any) -> Decimal | None:
    return None if value is None else fields.money(field, value, minimum=Decimal(0))


def _billing_day(field: str, value: Any) -> int:
    if not 1 <= fields.count(field, value, maximum=28):
        raise Invalid(field, "must be a day of the month from 1 to 28")
    return value


_CUSTOMER = {"low_balance_threshold": _optional_amount, "low_balance_email": fields.email,
             "daily_spend_cap": _optional_amount, "hourly_spend_cap": _optional_amount,
             "billing_day": _billing_day}


async def set_customer_billing(tx: Tx, isp_id: int, customer_id: int, **changes: Any) -> Row:
    """Threshold, mail and caps; a new threshold is judged against the balance at once."""
    await get_customer(tx, isp_id, customer_id, lock=True)
    customer = await update_row(tx, "customers", {"isp_id": isp_id, "id": customer_id}, "customer",
                                changes, _CUSTOMER)
    return await _after_balance_change(tx, isp_id, customer)


_ISP = {"allow_loss": fields.flag,
        "lcr_mode": lambda field, value: fields.one_of(field, value, ("cheapest", "priority")),
        "home_prefix": lambda field, value: _home_prefix(field, value),
        "low_balance_subject": lambda field, value: fields.text(field, value, max_length=200),
        "low_balance_body": lambda field, value: fields.text(field, value, max_length=5000),
        "daily_spend_cap": _optional_amount, "hourly_spend_cap": _optional_amount}


def _home_prefix(field: str, value: Any) -> str:
    if not isinstance(value, str) or len(value) > 3 or value and not value.isdigit():
        raise Invalid(field, "must be the home country calling code: 1 to 3 digits, or empty")
    return value


async def set_isp_billing(tx: Tx, isp_id: int, **changes: Any) -> Row:
    return await update_row(tx, "isps", {"id": isp_id}, "isp", changes, _ISP)
