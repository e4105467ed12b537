"""
Reports over call records and the ledger: calls with cost, price and profit (for the ISP,
per customer, per subscriber), money month by month, DIDs, subscribers, and the daily
minutes and revenue the ISP console draws. Periods are [since, until) in UTC.
"""

from __future__ import annotations

import datetime

from wevoip.store.database import Row, Tx
from wevoip.store.errors import Invalid

# A call refused before admission has a record (for ASR) but no time and no money: it is
# counted apart, never as a call.
_CALL_TOTALS = ("count(*) filter (where c.disposition <> 'refused') as calls,"
                " count(*) filter (where c.disposition = 'answered') as answered,"
                " coalesce(sum(c.talk_ms), 0) as talk_ms, coalesce(sum(c.cost), 0) as cost,"
                " coalesce(sum(c.price), 0) as price, coalesce(sum(c.profit), 0) as profit,"
                " count(*) filter (where c.disposition = 'refused') as refused")
_GROUPS = {
    "total": ("", "", ""),
    "customer": ("c.customer_id, cu.name as customer_name,",
                 " left join customers cu on cu.id = c.customer_id and cu.isp_id = c.isp_id",
                 " group by c.customer_id, cu.name order by c.customer_id"),
    "subscriber": ("c.subscriber_id, s.username, s.customer_id,",
                   " left join subscribers s on s.id = c.subscriber_id and s.isp_id = c.isp_id",
                   " group by c.subscriber_id, s.username, s.customer_id order by c.subscriber_id"),
}


def _period(since: datetime.datetime, until: datetime.datetime) -> None:
    if until <= since:
        raise Invalid("until", "must be after since")


async def calls_report(tx: Tx, isp_id: int, *, since: datetime.datetime, until: datetime.datetime,
                       group: str = "total", customer_id: int | None = None) -> list[Row]:
    if group not in _GROUPS:
        raise Invalid("group", f"must be one of {', '.join(_GROUPS)}")
    _period(since, until)
    columns, join, grouping = _GROUPS[group]
    return await tx.fetch(
        f"select {columns} {_CALL_TOTALS} from cdrs c{join} where c.isp_id = %s and c.started_at >= %s"
        f" and c.started_at < %s and (%s::bigint is null or c.customer_id = %s){grouping}",
        (isp_id, since, until, customer_id, customer_id))


async def financial_report(tx: Tx, isp_id: int, *, since: datetime.datetime, until: datetime.datetime) -> list[Row]:
    """Month by month: revenue (charges), deposits (payments), costs (carrier cost of calls)."""
    _period(since, until)
    return await tx.fetch(
        "with money as ("
        "  select date_trunc('month', created_at) as month, sum(-amount) filter (where kind = 'charge') as revenue,"
        "         sum(amount) filter (where kind = 'payment') as deposits, 0::numeric as costs"
        "  from ledger where isp_id = %s and created_at >= %s and created_at < %s group by 1"
        "  union all"
        "  select date_trunc('month', started_at), 0, 0, sum(cost) from cdrs"
        "  where isp_id = %s and started_at >= %s and started_at < %s and disposition <> 'refused' group by 1)"
        " select to_char(month, 'YYYY-MM') as month, coalesce(sum(revenue), 0) as revenue,"
        " coalesce(sum(deposits), 0) as deposits, coalesce(sum(costs), 0) as costs,"
        " coalesce(sum(revenue), 0) - coalesce(sum(costs), 0) as margin"
        " from money group by month order by month",
        (isp_id, since, until, isp_id, since, until))


async def dids_report(tx: Tx, isp_id: int, *, since: datetime.datetime, until: datetime.datetime) -> list[Row]:
    _period(since, until)
    return await tx.fetch(
        "select d.id as did_id, d.e164, d.customer_id, d.tenant_id, d.subscriber_id,"
        " count(c.id) as calls, coalesce(sum(c.talk_ms), 0) as talk_ms, coalesce(sum(c.price), 0) as price"
        " from dids d left join cdrs c on c.did_id = d.id and c.isp_id = d.isp_id"
        " and c.started_at >= %s and c.started_at < %s and c.disposition <> 'refused'"
        " where d.isp_id = %s group by d.id order by d.e164", (since, until, isp_id))


async def subscribers_report(tx: Tx, isp_id: int, *, since: datetime.datetime,
                             until: datetime.datetime) -> list[Row]:
    _period(since, until)
    return await tx.fetch(
        "select s.id as subscriber_id, s.username, s.extension, s.e164, s.customer_id, s.tenant_id,"
        " count(c.id) as calls, coalesce(sum(c.talk_ms), 0) as talk_ms, coalesce(sum(c.cost), 0) as cost,"
        " coalesce(sum(c.price), 0) as price"
        " from subscribers s left join cdrs c on c.subscriber_id = s.id and c.isp_id = s.isp_id"
        " and c.started_at >= %s and c.started_at < %s and c.disposition <> 'refused'"
        " where s.isp_id = %s group by s.id order by s.id", (since, until, isp_id))


async def daily_report(tx: Tx, isp_id: int, *, since: datetime.datetime, until: datetime.datetime) -> list[Row]:
    """Minutes talked and revenue per UTC day, every day of the period (zero when idle)."""
    _period(since, until)
    return await tx.fetch(
        "select to_char(day, 'YYYY-MM-DD') as day,"
        " round(coalesce(sum(c.talk_ms), 0) / 60000.0, 2) as minutes, coalesce(sum(c.price), 0) as revenue,"
        " coalesce(sum(c.cost), 0) as cost"
        " from generate_series(date_trunc('day', %s::timestamptz), %s::timestamptz - interval '1 microsecond',"
        " interval '1 day') as day"
        " left join cdrs c on c.isp_id = %s and c.started_at >= day and c.started_at < day + interval '1 day'"
        " and c.started_at >= %s and c.started_at < %s and c.disposition <> 'refused'"
        " group by day order by day", (since, until, isp_id, since, until))
