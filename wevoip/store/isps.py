"""ISPs: the providers that rent the platform, each with its namespace and currency."""

from __future__ import annotations

from typing import Any

from wevoip.store import fields
from wevoip.store.database import Row, Tx
from wevoip.store.errors import Invalid
from wevoip.store.rows import checked, fetch_page, fetch_row, insert_row, update_row


def _optional(max_length: int = 200):
    return lambda field, value: fields.text(field, value, max_length=max_length, required=False)


# What an ISP may change about itself; the namespace is fixed once domains hang off it.
_CHECKS = {
    "name": fields.text,
    "currency": fields.currency,
    "address_line1": _optional(),
    "address_line2": _optional(),
    "city": _optional(),
    "region": _optional(),
    "postal_code": _optional(20),
    "country": fields.country,
    "contact_name": _optional(),
    "contact_email": fields.email,
    "contact_phone": lambda field, value: fields.e164(field, value, required=False),
    "brand_title": _optional(100),
    "brand_primary": fields.colour,
    "brand_accent": fields.colour,
    "smtp_sender": fields.email,
}
_LOGO_TYPES = ("image/png", "image/jpeg", "image/svg+xml")


async def create_isp(tx: Tx, *, name: str, namespace: str, currency: str, **details: Any) -> Row:
    values = checked({"name": name, "currency": currency, **details}, _CHECKS, "ISP")
    values["namespace"] = fields.dns_name("namespace", namespace)
    return await insert_row(tx, "isps", values)


async def get_isp(tx: Tx, isp_id: int) -> Row:
    return await fetch_row(tx, "isps", {"id": isp_id}, "isp")


async def update_isp(tx: Tx, isp_id: int, **changes: Any) -> Row:
    return await update_row(tx, "isps", {"id": isp_id}, "isp", changes, _CHECKS)


async def set_isp_logo(tx: Tx, isp_id: int, logo: bytes, content_type: str) -> Row:
    fields.one_of("brand_logo_type", content_type, _LOGO_TYPES)
    if len(logo) > 512 * 1024:
        raise Invalid("brand_logo", "must be at most 512 KiB")
    checks = {"brand_logo": lambda f, v: v, "brand_logo_type": lambda f, v: v}
    return await update_row(tx, "isps", {"id": isp_id}, "isp",
                            {"brand_logo": logo, "brand_logo_type": content_type}, checks)


async def list_isps(tx: Tx, *, limit: int = 100, offset: int = 0) -> list[Row]:
    """For platform admins only: the one listing that crosses ISPs."""
    return await fetch_page(tx, "isps", {}, limit, offset)


async def isp_by_namespace(tx: Tx, namespace: str) -> Row | None:
    return await tx.fetch_one("select * from isps where namespace = %s", (namespace.lower(),))
