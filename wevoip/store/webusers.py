"""
The people who log into the consoles with an e-mail and a password: ISP admins and
customer admins. (Platform admins are in `admins`; subscribers log in with their web
credentials, kept on the subscriber.) Password hashes come from `credentials.hash_password`,
computed off the reactor by the caller.
"""

from __future__ import annotations

from wevoip.store import fields
from wevoip.store.customers import get_customer
from wevoip.store.database import Row, Tx
from wevoip.store.rows import fetch_page, fetch_row, insert_row

SECRET_COLUMNS = ("password_hash",)


def public(row: Row) -> Row:
    return {key: value for key, value in row.items() if key not in SECRET_COLUMNS}


def login_email(field: str, value: object) -> str:
    """E-mail addresses log in case-insensitively, so they are kept in lower case."""
    return fields.email(field, value, required=True).lower()


async def create_isp_admin(tx: Tx, isp_id: int, *, email: str, full_name: str, password_hash: str) -> Row:
    return public(await insert_row(tx, "isp_admins", {
        "isp_id": isp_id, "email": login_email("email", email),
        "full_name": fields.text("full_name", full_name), "password_hash": password_hash}))


async def list_isp_admins(tx: Tx, isp_id: int, *, limit: int = 100, offset: int = 0) -> list[Row]:
    rows = await fetch_page(tx, "isp_admins", {"isp_id": isp_id}, limit, offset)
    return [public(row) for row in rows]


async def count_isp_admins(tx: Tx) -> dict[int, int]:
    """The platform's view: how many administrators each ISP has (an ISP made over the API has none)."""
    rows = await tx.fetch("select isp_id, count(*) as admins from isp_admins group by isp_id")
    return {row["isp_id"]: row["admins"] for row in rows}


async def get_isp_admin(tx: Tx, isp_id: int, admin_id: int) -> Row:
    return public(await fetch_row(tx, "isp_admins", {"isp_id": isp_id, "id": admin_id}, "ISP admin"))


async def isp_admin_for_login(tx: Tx, isp_id: int, email: str) -> Row | None:
    """With the hash, for checking a password; None when there is no such admin."""
    return await tx.fetch_one("select * from isp_admins where isp_id = %s and email = %s",
                              (isp_id, email.strip().lower()))


async def create_customer_admin(tx: Tx, isp_id: int, customer_id: int, *, email: str,
                                password_hash: str, full_name: str = "") -> Row:
    await get_customer(tx, isp_id, customer_id)
    return public(await insert_row(tx, "customer_admins", {
        "isp_id": isp_id, "customer_id": customer_id, "email": login_email("email", email),
        "full_name": fields.text("full_name", full_name, required=False),
        "password_hash": password_hash}))


async def list_customer_admins(tx: Tx, isp_id: int, customer_id: int, *, limit: int = 100,
                               offset: int = 0) -> list[Row]:
    rows = await fetch_page(tx, "customer_admins", {"isp_id": isp_id, "customer_id": customer_id},
                            limit, offset)
    return [public(row) for row in rows]


async def customer_admin_for_login(tx: Tx, isp_id: int, email: str) -> Row | None:
    return await tx.fetch_one("select * from customer_admins where isp_id = %s and email = %s",
                              (isp_id, email.strip().lower()))
