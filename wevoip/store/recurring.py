"""
Recurring and one-time fees: the plan's monthly and setup fees, each DID's monthly and
setup fees, e911 and fax, charged on the account's billing date.

Every fee is first claimed as a row keyed by account, kind, item and period ('YYYY-MM' or
'once'); only the transaction whose insert creates the row charges the ledger. A second
node, or the same node after a restart, finds the row and charges nothing, so a fee is
charged exactly once per period.
"""

from __future__ import annotations

import datetime
from decimal import Decimal

from wevoip.store.customers import get_customer
from wevoip.store.database import Row, Tx
from wevoip.store.ledger import add_charge

CATEGORY = {"monthly": "monthly", "setup": "setup", "did": "did", "did_setup": "did", "e911": "e911",
            "e911_setup": "e911", "fax": "fax", "fax_setup": "fax"}


def next_billing_date(after: datetime.date, billing_day: int) -> datetime.date:
    """The billing day in the month after `after`'s."""
    year, month = (after.year + 1, 1) if after.month == 12 else (after.year, after.month + 1)
    return datetime.date(year, month, billing_day)


def first_billing_date(today: datetime.date, billing_day: int) -> datetime.date:
    """The billing day of this month if it has come, else of the month before: the period
    an account that starts today is in."""
    if today.day >= billing_day:
        return today.replace(day=billing_day)
    previous = today.replace(day=1) - datetime.timedelta(days=1)
    return previous.replace(day=billing_day)


async def charge_once(tx: Tx, isp_id: int, customer_id: int, *, kind: str, item_id: int, period: str,
                      amount: Decimal, description: str) -> Row | None:
    """The fee's row, or None if this fee was already claimed for this period."""
    claimed = await tx.fetch_one(
        "insert into recurring_charges (isp_id, customer_id, kind, item_id, period, amount)"
        " values (%s, %s, %s, %s, %s, %s) on conflict do nothing returning *",
        (isp_id, customer_id, kind, item_id, period, amount))
    if claimed is None or amount <= 0:
        return claimed
    entry = await add_charge(tx, isp_id, customer_id, amount=amount, description=description[:200],
                             category=CATEGORY[kind])
    return await tx.fetch_one("update recurring_charges set ledger_id = %s where customer_id = %s and kind = %s"
                              " and item_id = %s and period = %s returning *",
                              (entry["id"], customer_id, kind, item_id, period))


async def due_customers(tx: Tx, today: datetime.date, limit: int = 100) -> list[Row]:
    """Accounts whose billing date has come (or that were never billed), of every ISP."""
    return await tx.fetch(
        "select isp_id, id from customers where status <> 'WAIT'"
        " and (next_billing_date is null or next_billing_date <= %s) order by id limit %s", (today, limit))


async def _fees(tx: Tx, isp_id: int, customer: Row) -> tuple[Row | None, list[Row]]:
    plan = None
    if customer["service_plan_id"] is not None:
        plan = await tx.fetch_one("select * from service_plans where isp_id = %s and id = %s",
                                  (isp_id, customer["service_plan_id"]))
    numbers = await tx.fetch(
        "select d.id, d.e164, coalesce(b.setup_fee, p.did_setup_fee, 0) as setup_fee,"
        " coalesce(b.monthly_fee, p.did_monthly_fee, 0) as monthly_fee, coalesce(b.e911, false) as e911,"
        " coalesce(b.fax, false) as fax, coalesce(p.e911_setup_fee, 0) as e911_setup_fee,"
        " coalesce(p.e911_monthly_fee, 0) as e911_monthly_fee, coalesce(p.fax_setup_fee, 0) as fax_setup_fee,"
        " coalesce(p.fax_monthly_fee, 0) as fax_monthly_fee"
        " from dids d left join did_billing b on b.did_id = d.id"
        " left join service_plans p on p.isp_id = d.isp_id and p.id = %s"
        " where d.isp_id = %s and d.customer_id = %s order by d.id",
        (customer["service_plan_id"], isp_id, customer["id"]))
    return plan, numbers


async def bill_customer(tx: Tx, isp_id: int, customer_id: int, today: datetime.date) -> list[Row]:
    """Charge every fee due up to `today` and move the account's billing date on; the new
    period also restarts the free minutes."""
    customer = await get_customer(tx, isp_id, customer_id, lock=True)
    billing_date = customer["next_billing_date"] or first_billing_date(today, customer["billing_day"])
    plan, numbers = await _fees(tx, isp_id, customer)
    charged = []

    async def fee(kind: str, item_id: int, period: str, amount: Decimal, description: str) -> None:
        row = await charge_once(tx, isp_id, customer_id, kind=kind, item_id=item_id, period=period,
                                amount=amount, description=description)
        if row is not None:
            charged.append(row)
    if plan is not None:
        await fee("setup", plan["id"], "once", plan["setup_fee"], f"{plan['name']}: setup fee")
    for number in numbers:
        await fee("did_setup", number["id"], "once", number["setup_fee"], f"{number['e164']}: setup fee")
        if number["e911"]:
            await fee("e911_setup", number["id"], "once", number["e911_setup_fee"], f"{number['e164']}: e911 setup")
        if number["fax"]:
            await fee("fax_setup", number["id"], "once", number["fax_setup_fee"], f"{number['e164']}: fax setup")
    period_start = customer["period_start"]
    while billing_date <= today:
        period = billing_date.strftime("%Y-%m")
        if plan is not None:
            await fee("monthly", plan["id"], period, plan["monthly_fee"], f"{plan['name']}: monthly fee {period}")
        for number in numbers:
            await fee("did", number["id"], period, number["monthly_fee"], f"{number['e164']}: monthly {period}")
            if number["e911"]:
                await fee("e911", number["id"], period, number["e911_monthly_fee"], f"{number['e164']}: e911 {period}")
            if number["fax"]:
                await fee("fax", number["id"], period, number["fax_monthly_fee"], f"{number['e164']}: fax {period}")
        period_start, billing_date = billing_date, next_billing_date(billing_date, customer["billing_day"])
    await tx.execute("update customers set period_start = %s, next_billing_date = %s where isp_id = %s and id = %s",
                     (period_start, billing_date, isp_id, customer_id))
    return charged


async def list_charges(tx: Tx, isp_id: int, customer_id: int) -> list[Row]:
    return await tx.fetch("select * from recurring_charges where isp_id = %s and customer_id = %s"
                          " order by period, kind, item_id", (isp_id, customer_id))
