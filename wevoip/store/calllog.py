"""
The call list as people search it in the consoles: one tenant's or one subscriber's calls,
narrowed by time, number, direction and outcome. (The CDRs themselves are written by the
billing layer, `wevoip/store/calls.py`.)
"""

from __future__ import annotations

import datetime

from wevoip.store import fields
from wevoip.store.database import Row, Tx
from wevoip.store.errors import Invalid

DIRECTIONS = ("outbound", "inbound", "forwarded", "internal")
DISPOSITIONS = ("answered", "busy", "no_answer", "failed", "cancelled", "refused")
MAX_ROWS = 10_000


async def search_calls(tx: Tx, isp_id: int, *, tenant_id: int | None = None, subscriber_id: int | None = None,
                       since: datetime.datetime | None = None, until: datetime.datetime | None = None,
                       number: str = "", direction: str = "", disposition: str = "",
                       limit: int = 500) -> list[Row]:
    """Newest first. `number` matches any part of either party's number, as typed or in E.164."""
    if tenant_id is None and subscriber_id is None:
        raise Invalid("tenant_id", "a call list is of a tenant or of a subscriber")
    if direction:
        fields.one_of("direction", direction, DIRECTIONS)
    if disposition:
        fields.one_of("disposition", disposition, DISPOSITIONS)
    number = fields.text("number", number, max_length=32, required=False)
    if number and not number.lstrip("+").isdigit():
        raise Invalid("number", "must be digits, optionally after '+'")
    if since and until and until < since:
        raise Invalid("until", "must not be before since")
    if not 1 <= limit <= MAX_ROWS:
        raise Invalid("limit", f"must be from 1 to {MAX_ROWS}")
    pattern = f"%{number}%" if number else None
    return await tx.fetch(
        "select c.*, s.username from cdrs c left join subscribers s on s.id = c.subscriber_id"
        " where c.isp_id = %(isp)s"
        " and (%(tenant)s::bigint is null or c.tenant_id = %(tenant)s)"
        " and (%(subscriber)s::bigint is null or c.subscriber_id = %(subscriber)s)"
        " and (%(since)s::timestamptz is null or c.started_at >= %(since)s)"
        " and (%(until)s::timestamptz is null or c.started_at < %(until)s)"
        " and (%(direction)s = '' or c.direction = %(direction)s)"
        " and (%(disposition)s = '' or c.disposition = %(disposition)s)"
        " and (%(pattern)s::text is null or c.caller_dialled like %(pattern)s or c.callee_dialled like %(pattern)s"
        "      or c.caller_e164 like %(pattern)s or c.callee_e164 like %(pattern)s)"
        " order by c.started_at desc, c.id desc limit %(limit)s",
        {"isp": isp_id, "tenant": tenant_id, "subscriber": subscriber_id, "since": since, "until": until,
         "direction": direction, "disposition": disposition, "pattern": pattern, "limit": limit})
