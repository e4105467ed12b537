"""
SIP domains: a label under the ISP's namespace, or a domain of the ISP's own.

A namespace domain is usable at once. A verified domain carries a random token that the
ISP publishes in a DNS TXT record; it is usable only after that record has been seen.
"""

from __future__ import annotations

from wevoip.credentials import new_secret
from wevoip.store import fields
from wevoip.store.database import Row, Tx
from wevoip.store.errors import Invalid
from wevoip.store.isps import get_isp
from wevoip.store.notify import publish

DOMAINS_CHANNEL = "sip_domains"  # a domain's name, published when it starts to be served
from wevoip.store.rows import fetch_page, fetch_row, insert_row, update_row


async def create_namespace_domain(tx: Tx, isp_id: int, label: str) -> Row:
    isp = await get_isp(tx, isp_id)
    name = f"{fields.dns_label('label', label)}.{isp['namespace']}"
    return await insert_row(tx, "domains", {"isp_id": isp_id, "name": name, "kind": "namespace"})


async def add_verified_domain(tx: Tx, isp_id: int, name: str) -> Row:
    """The domain is pending until `mark_domain_verified`; its token goes in the TXT record."""
    name = fields.dns_name("name", name)
    isp = await get_isp(tx, isp_id)
    if name == isp["namespace"] or name.endswith("." + isp["namespace"]):
        raise Invalid("name", "is under the ISP's namespace: add it as a namespace domain")
    return await insert_row(tx, "domains", {"isp_id": isp_id, "name": name, "kind": "verified",
                                            "verification_token": new_secret("wevoip-verify=", 18)})


async def mark_domain_verified(tx: Tx, isp_id: int, domain_id: int) -> Row:
    checks = {"verified_at": lambda field, value: value}
    row = await update_row(tx, "domains", {"isp_id": isp_id, "id": domain_id}, "domain",
                           {"verified_at": await tx.fetch_value("select now()")}, checks)
    await publish(tx, DOMAINS_CHANNEL, row["name"])
    return row


async def get_domain(tx: Tx, isp_id: int, domain_id: int, *, lock: bool = False) -> Row:
    return await fetch_row(tx, "domains", {"isp_id": isp_id, "id": domain_id}, "domain", lock=lock)


async def list_domains(tx: Tx, isp_id: int, *, limit: int = 100, offset: int = 0) -> list[Row]:
    return await fetch_page(tx, "domains", {"isp_id": isp_id}, limit, offset)


def domain_usable(domain: Row) -> bool:
    return domain["kind"] == "namespace" or domain["verified_at"] is not None
