"""
The ISP console's reports: calls with cost, price and profit (in total, per customer, per
subscriber), money month by month, and the chart of daily minutes and revenue, over a
period of whole UTC days, each table downloadable as the same CSV the API gives.
"""

from __future__ import annotations

import datetime
from decimal import Decimal

from wevoip.store import reports
from wevoip.web.console.chart import daily_chart
from wevoip.web.console.context import Ctx, Download, Message
from wevoip.web.console.isp_pages import ISP
from wevoip.web.console.routes import page
from wevoip.web.console.widgets import Facts, Field, Figure, Form, Table
from wevoip.web.csvrows import rows_csv

DEFAULT_DAYS = 30
MAX_DAYS = 366
REPORTS = {
    "calls": lambda tx, isp_id, **period: reports.calls_report(tx, isp_id, **period),
    "calls_by_customer": lambda tx, isp_id, **period: reports.calls_report(tx, isp_id, group="customer", **period),
    "calls_by_subscriber": lambda tx, isp_id, **period: reports.calls_report(tx, isp_id, group="subscriber",
                                                                             **period),
    "financial": reports.financial_report,
    "daily": reports.daily_report,
}


class PeriodError(Exception):
    def __init__(self, field: str, problem: str):
        super().__init__(f"{field.capitalize()} {problem}.")
        self.field = field


def _day(name: str, text: str, default: datetime.date) -> datetime.date:
    if not text:
        return default
    try:
        day = datetime.date.fromisoformat(text)
    except ValueError:
        raise PeriodError(name, "must be a date such as 2026-11-01") from None
    if not 1970 <= day.year <= 9000:
        raise PeriodError(name, "must be a date from 1970 to 9000")
    return day


def period_default() -> tuple[datetime.date, datetime.date]:
    today = datetime.datetime.now(datetime.timezone.utc).date()
    return today - datetime.timedelta(days=DEFAULT_DAYS - 1), today


def period(ctx: Ctx) -> tuple[datetime.date, datetime.date]:
    """The first and the last day asked for with ?since= and ?until= (default the last 30 days)."""
    default_first, today = period_default()
    last = _day("until", ctx.query("until"), today)
    first = _day("since", ctx.query("since"), last - (today - default_first))
    if last < first:
        raise PeriodError("until", "must not be before since")
    if (last - first).days >= MAX_DAYS:
        raise PeriodError("since", f"must be at most {MAX_DAYS} days before until")
    return first, last


def _bounds(first: datetime.date, last: datetime.date) -> dict[str, datetime.datetime]:
    utc = datetime.timezone.utc
    return {"since": datetime.datetime.combine(first, datetime.time(), utc),
            "until": datetime.datetime.combine(last + datetime.timedelta(days=1), datetime.time(), utc)}


def _minutes(rows: list[dict]) -> list[dict]:
    """Rows with their talk time in minutes, for reading (the CSV keeps milliseconds)."""
    return [{**row, "minutes": (Decimal(row["talk_ms"]) / 60000).quantize(Decimal("0.01"))} for row in rows]


@page("/isp/reports", roles=ISP)
async def reports_page(ctx: Ctx):
    try:
        first, last = period(ctx)
    except PeriodError as error:
        ctx.error, ctx.error_field, ctx.status = str(error), error.field, 422
        first, last = period_default()
    bounds = _bounds(first, last)

    async def load(tx):
        return {name: await report(tx, ctx.isp_id, **bounds) for name, report in REPORTS.items()}
    found = await ctx.tx(load)
    query = f"?since={first.isoformat()}&until={last.isoformat()}"
    currency = ctx.brand["currency"]
    total = _minutes(found["calls"])[0]
    totals = ("cost", "Cost"), ("price", "Price"), ("profit", "Profit")
    return ctx.render(
        "Reports",
        Form("/isp/reports", "Show", [
            Field("since", "From", "date", first.isoformat()),
            Field("until", "To (inclusive)", "date", last.isoformat())],
            method="get"),
        Figure(daily_chart(found["daily"], currency), title="Minutes and revenue per day"),
        Facts([("Calls", f"{total['calls']} ({total['answered']} answered)"
                 + (f"; {total['refused']} more refused before admission" if total["refused"] else "")),
                ("Minutes", total["minutes"]),
               *((label, f"{total[key]:.2f} {currency}") for key, label in totals)],
              title=f"Calls from {first.isoformat()} to {last.isoformat()}"),
        Table([("customer_name", "Customer"), ("calls", "Calls"), ("minutes", "Minutes"), *totals],
              _minutes(found["calls_by_customer"]), title="Calls per customer", empty="No calls in this period.",
              csv=f"/isp/reports/calls_by_customer.csv{query}"),
        Table([("username", "Subscriber"), ("customer_id", "Customer"), ("calls", "Calls"), ("minutes", "Minutes"),
               *totals], _minutes(found["calls_by_subscriber"]), title="Calls per subscriber",
              empty="No calls in this period.", csv=f"/isp/reports/calls_by_subscriber.csv{query}"),
        Table([("month", "Month"), ("revenue", "Revenue"), ("deposits", "Deposits"), ("costs", "Costs"),
               ("margin", "Margin")], found["financial"], title="Money month by month",
              empty="No money moved in this period.", csv=f"/isp/reports/financial.csv{query}"),
        Table([("day", "Day"), ("minutes", "Minutes"), ("revenue", "Revenue"), ("cost", "Cost")],
              [row for row in found["daily"] if row["minutes"] or row["revenue"]], title="Days with calls",
              empty="No calls in this period.", csv=f"/isp/reports/daily.csv{query}"))


def _csv_page(name: str):
    report = REPORTS[name]

    async def download(ctx: Ctx):
        try:
            bounds = _bounds(*period(ctx))
        except PeriodError as error:
            return Message(422, "Bad period", str(error))
        rows = await ctx.tx(lambda tx: report(tx, ctx.isp_id, **bounds))
        return Download("text/csv; charset=utf-8", f"{name}.csv", rows_csv(rows))
    download.__name__ = f"{name}_csv"
    page(f"/isp/reports/{name}.csv", roles=ISP)(download)


for _name in REPORTS:
    _csv_page(_name)
