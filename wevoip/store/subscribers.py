"""
Subscribers: the SIP accounts of a tenant, its pilot number and extensions.

The SIP password is turned into the two digest HA1s at once and dropped; the realm is the
tenant's SIP domain, which is why a subscriber is always created through its tenant.
"""

from __future__ import annotations

import re
from typing import Any

from wevoip.credentials import sip_ha1s
from wevoip.store import fields, siplocks
from wevoip.store.database import Row, Tx
from wevoip.store.errors import Invalid
from wevoip.store.notify import publish
from wevoip.store.rows import checked, fetch_page, fetch_row, insert_row, update_row
from wevoip.store.tenants import get_tenant

_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
MIN_SIP_PASSWORD = 10

# Columns a caller never sees: enough to impersonate the phone or the person.
SECRET_COLUMNS = ("ha1_md5", "ha1_sha256", "web_password_hash")


def _username(field: str, value: Any) -> str:
    value = fields.text(field, value, max_length=64)
    if not _USERNAME.fullmatch(value):
        raise Invalid(field, "must be letters, digits and . _ + - (starting with a letter or digit)")
    return value


def _extension(field: str, value: Any) -> str | None:
    if value in (None, ""):
        return None
    value = fields.text(field, str(value), max_length=8)
    if not re.fullmatch(r"[0-9]{2,8}", value):
        raise Invalid(field, "must be 2 to 8 digits")
    return value


def checked_web_username(field: str, value: Any) -> str | None:
    if value in (None, ""):
        return None
    value = fields.text(field, value, max_length=254)
    if not (re.fullmatch(r"[^\s@]+@[^\s@]+", value) or re.fullmatch(r"[A-Za-z0-9._-]{1,64}", value)):
        raise Invalid(field, "must be an e-mail address or a simple login name")
    return value


def sip_password(field: str, value: Any, username: str) -> str:
    """Weak SIP passwords are how toll fraud starts, so a floor is enforced here."""
    value = fields.text(field, value, max_length=128)
    if len(value) < MIN_SIP_PASSWORD:
        raise Invalid(field, f"must be at least {MIN_SIP_PASSWORD} characters")
    if username.lower() in value.lower() or value.isdigit():
        raise Invalid(field, "must not contain the username or be only digits")
    return value


_CHECKS = {
    "display_name": lambda field, value: fields.text(field, value, max_length=100, required=False),
    "extension": _extension,
    "e164": lambda field, value: fields.e164(field, value, required=False),
    "is_pilot": fields.flag,
    "email": fields.email,
}


async def held_number(tx: Tx, isp_id: int, tenant_id: int, e164: str | None) -> None:
    """A subscriber's number is the caller ID carriers are shown, so it must be a DID of the
    ISP's inventory allocated to the subscriber's tenant (issue 12, point 7). The DID's row
    is locked (shared) until commit, so a release cannot slip in between."""
    if e164 is None:
        return
    held = await tx.fetch_value(
        "select tenant_id from dids where isp_id = %s and e164 = %s for share", (isp_id, e164))
    if held != tenant_id:
        raise Invalid("e164", "is not a number this tenant holds: allocate the DID to the tenant first")


def public(row: Row) -> Row:
    return {key: value for key, value in row.items() if key not in SECRET_COLUMNS}


async def create_subscriber(tx: Tx, isp_id: int, tenant_id: int, *, username: str, password: str,
                            web_username: str | None = None, web_password_hash: str | None = None,
                            **details: Any) -> Row:
    """`web_password_hash` comes from `credentials.hash_password`, done off the reactor."""
    tenant = await get_tenant(tx, isp_id, tenant_id)
    username = _username("username", username)
    values = checked(details, _CHECKS, "subscriber")
    if values.get("is_pilot") and not values.get("e164"):
        raise Invalid("e164", "the pilot subscriber needs the E.164 base number")
    web_username = checked_web_username("web_username", web_username)
    if (web_username is None) != (web_password_hash is None):
        raise Invalid("web_password", "a web login needs both a username and a password")
    await held_number(tx, isp_id, tenant_id, values.get("e164"))
    ha1s = sip_ha1s(username, tenant["sip_domain"], sip_password("password", password, username))
    row = await insert_row(tx, "subscribers", {
        "isp_id": isp_id, "customer_id": tenant["customer_id"], "tenant_id": tenant_id,
        "username": username, "web_username": web_username,
        "web_password_hash": web_password_hash, **values, **ha1s})
    await sip_credentials_changed(tx, username, tenant["sip_domain"])
    return public(row)


async def sip_credentials_changed(tx: Tx, username: str, domain: str) -> None:
    """Tell every node's SIP stack to forget what it cached about this user, at commit."""
    await publish(tx, CREDENTIALS_CHANNEL, credentials_key(username, domain))
    await publish(tx, USERNAMES_CHANNEL, username)


CREDENTIALS_CHANNEL = "sip_credentials"
USERNAMES_CHANNEL = "sip_usernames"


def credentials_key(username: str, domain: str) -> str:
    return f"{username}@{domain.lower().rstrip('.')}"


async def get_subscriber(tx: Tx, isp_id: int, subscriber_id: int) -> Row:
    return public(await fetch_row(tx, "subscribers", {"isp_id": isp_id, "id": subscriber_id}, "subscriber"))


async def list_subscribers(tx: Tx, isp_id: int, tenant_id: int, *, limit: int = 100,
                           offset: int = 0) -> list[Row]:
    rows = await fetch_page(tx, "subscribers", {"isp_id": isp_id, "tenant_id": tenant_id}, limit, offset)
    return [public(row) for row in rows]


async def update_subscriber(tx: Tx, isp_id: int, subscriber_id: int, **changes: Any) -> Row:
    if changes.get("e164") not in (None, ""):
        current = await fetch_row(tx, "subscribers", {"isp_id": isp_id, "id": subscriber_id}, "subscriber")
        await held_number(tx, isp_id, current["tenant_id"], fields.e164("e164", changes["e164"], required=False))
    row = await update_row(tx, "subscribers", {"isp_id": isp_id, "id": subscriber_id},
                           "subscriber", changes, _CHECKS)
    return public(row)


async def set_sip_password(tx: Tx, isp_id: int, subscriber_id: int, password: str) -> Row:
    current = await fetch_row(tx, "subscribers", {"isp_id": isp_id, "id": subscriber_id}, "subscriber")
    tenant = await get_tenant(tx, isp_id, current["tenant_id"])
    ha1s = sip_ha1s(current["username"], tenant["sip_domain"],
                    sip_password("password", password, current["username"]))
    checks = {key: lambda field, value: value for key in ha1s}
    row = await update_row(tx, "subscribers", {"isp_id": isp_id, "id": subscriber_id},
                           "subscriber", ha1s, checks)
    await sip_credentials_changed(tx, current["username"], tenant["sip_domain"])
    # A new password is the remedy for a guessed one: it lifts a guessing lock (issue 12).
    await siplocks.unlock_user(tx, subscriber_id, isp_id)
    return public(row)


async def delete_subscriber(tx: Tx, isp_id: int, subscriber_id: int) -> None:
    row = await fetch_row(tx, "subscribers", {"isp_id": isp_id, "id": subscriber_id}, "subscriber", lock=True)
    tenant = await get_tenant(tx, isp_id, row["tenant_id"])
    await tx.execute("delete from subscribers where isp_id = %s and id = %s", (isp_id, subscriber_id))
    await sip_credentials_changed(tx, row["username"], tenant["sip_domain"])


async def count_subscribers(tx: Tx, isp_id: int, customer_id: int) -> int:
    return await tx.fetch_value(
        "select count(*) from subscribers where isp_id = %s and customer_id = %s", (isp_id, customer_id))


async def sip_credentials(tx: Tx, domain: str, username: str) -> Row | None:
    """The registrar's look-up by SIP domain; the row names its tenant and ISP."""
    return await tx.fetch_one(
        "select s.id, s.isp_id, s.customer_id, s.tenant_id, s.username, s.ha1_md5, s.ha1_sha256 "
        "from subscribers s join tenants t on t.id = s.tenant_id join domains d on d.id = t.domain_id "
        "where d.name = %s and s.username = %s", (domain.lower().rstrip("."), username))


async def realm_for_username(tx: Tx, username: str, pick: int) -> str | None:
    """
    For a phone that names no domain (a bare IP): the domain of the one tenant with this
    username. When there is no such user, or several, a decoy: the domain of the tenant
    `pick` (a keyed hash of the name) selects, so an unknown name gets a challenge shaped
    like a known one's, costing the same query either way.
    """
    return await tx.fetch_value(
        "with owners as (select d.name from subscribers s join tenants t on t.id = s.tenant_id"
        " join domains d on d.id = t.domain_id where s.username = %s limit 2),"
        " decoy as (select d.name from tenants t join domains d on d.id = t.domain_id"
        " order by t.id offset %s %% greatest((select count(*) from tenants), 1) limit 1)"
        " select case when (select count(*) from owners) = 1 then (select name from owners)"
        " else (select name from decoy) end", (username, pick))
