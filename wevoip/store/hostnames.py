"""
Which ISP a console hostname belongs to: white-label consoles answer on the ISP's own name.

A Host header maps to an ISP by the ISP's `hostname`, by its namespace (or a name under
it), or by one of its verified domains; a domain still waiting for its DNS TXT record maps
to nobody, so no one can claim another's name by typing it.
"""

from __future__ import annotations

from wevoip.store import fields
from wevoip.store.database import Row, Tx
from wevoip.store.errors import Invalid
from wevoip.store.rows import update_row


async def set_isp_hostname(tx: Tx, isp_id: int, hostname: str | None) -> Row:
    def check(field, value):
        return None if value in (None, "") else fields.dns_name(field, value)
    return await update_row(tx, "isps", {"id": isp_id}, "isp", {"hostname": hostname}, {"hostname": check})


async def isp_for_host(tx: Tx, host: str) -> Row | None:
    try:
        name = fields.dns_name("host", host.split(":")[0]) if not host.startswith("[") else None
    except Invalid:
        return None
    if name is None:
        return None
    return await tx.fetch_one(
        "select i.* from isps i where i.hostname = %(n)s or i.namespace = %(n)s"
        " or %(n)s like '%%.' || i.namespace"
        " or exists (select 1 from domains d where d.isp_id = i.id and d.kind = 'verified'"
        "            and d.verified_at is not null and (d.name = %(n)s or %(n)s like '%%.' || d.name))"
        " order by (i.hostname = %(n)s) desc nulls last limit 1", {"n": name})
