"""
Which ISP a console hostname belongs to: white-label consoles answer on the ISP's own name.

A Host header maps to an ISP by the ISP's `hostname`, by its namespace (or a name under
it), or by one of its verified domains; a domain still waiting for its DNS TXT record maps
to nobody, so no one can claim another's name by typing it.
"""

from __future__ import annotations

from wevoip.store import fields
from wevoip.store.database import Row, Tx
from wevoip.store.errors import Invalid, NotFound
from wevoip.store.rows import update_row


async def set_isp_hostname(tx: Tx, isp_id: int, hostname: str | None) -> Row:
    def check(field, value):
        return None if value in (None, "") else fields.dns_name(field, value)
    return await update_row(tx, "isps", {"id": isp_id}, "isp", {"hostname": hostname}, {"hostname": check})


# An ISP as a page needs it: everything but the logo's bytes, which only /brand/logo sends.
_BRAND = "i.id, i.name, i.namespace, i.currency, i.brand_title, i.brand_primary, i.brand_accent, i.hostname," \
         " i.smtp_sender, i.brand_logo is not null as has_logo"


async def isp_brand(tx: Tx, isp_id: int) -> Row:
    row = await tx.fetch_one(f"select {_BRAND} from isps i where i.id = %s", (isp_id,))
    if row is None:
        raise NotFound("isp")
    return row


async def isp_logo(tx: Tx, isp_id: int) -> Row | None:
    """The logo's bytes and type, or None when the ISP has none."""
    return await tx.fetch_one("select brand_logo, brand_logo_type from isps where id = %s and brand_logo is not null",
                              (isp_id,))


async def isp_for_host(tx: Tx, host: str) -> Row | None:
    try:
        name = fields.dns_name("host", host.split(":")[0]) if not host.startswith("[") else None
    except Invalid:
        return None
    if name is None:
        return None
    return await tx.fetch_one(
        f"select {_BRAND} from isps i where i.hostname = %(n)s or i.namespace = %(n)s"
        " or %(n)s like '%%.' || i.namespace"
        " or exists (select 1 from domains d where d.isp_id = i.id and d.kind = 'verified'"
        "            and d.verified_at is not null and (d.name = %(n)s or %(n)s like '%%.' || d.name))"
        " order by (i.hostname = %(n)s) desc nulls last limit 1", {"n": name})
