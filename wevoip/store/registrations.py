"""
Registrar bindings at rest: written on every REGISTER, read back when a node starts.

The registrar decides (RFC 3261 §10.3) and keeps its index in memory; these functions only
store what it decided, each in the caller's transaction.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal

from wevoip.store.database import Row, Tx


@dataclass(frozen=True)
class BindingRecord:
    contact: str
    q: Decimal
    call_id: str
    cseq: int
    expires_at: datetime.datetime
    source: str
    transport: str
    instance_id: str = ""
    user_agent: str = ""


async def save_binding(tx: Tx, isp_id: int, tenant_id: int, subscriber_id: int,
                       binding: BindingRecord, node: str) -> Row:
    return await tx.fetch_one(
        "insert into registrations (isp_id, tenant_id, subscriber_id, contact, q, call_id, cseq,"
        " expires_at, source, transport, instance_id, user_agent, node)"
        " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " on conflict (isp_id, subscriber_id, contact) do update set q = excluded.q,"
        " call_id = excluded.call_id, cseq = excluded.cseq, expires_at = excluded.expires_at,"
        " source = excluded.source, transport = excluded.transport,"
        " instance_id = excluded.instance_id, user_agent = excluded.user_agent,"
        " node = excluded.node, updated_at = now() returning *",
        (isp_id, tenant_id, subscriber_id, binding.contact, binding.q, binding.call_id, binding.cseq,
         binding.expires_at, binding.source, binding.transport, binding.instance_id,
         binding.user_agent[:256], node))


async def delete_binding(tx: Tx, isp_id: int, subscriber_id: int, contact: str) -> int:
    return await tx.execute(
        "delete from registrations where isp_id = %s and subscriber_id = %s and contact = %s",
        (isp_id, subscriber_id, contact))


async def delete_bindings(tx: Tx, isp_id: int, subscriber_id: int) -> int:
    return await tx.execute("delete from registrations where isp_id = %s and subscriber_id = %s",
                            (isp_id, subscriber_id))


async def bindings_of(tx: Tx, isp_id: int, subscriber_id: int) -> list[Row]:
    return await tx.fetch(
        "select * from registrations where isp_id = %s and subscriber_id = %s and expires_at > now()"
        " order by q desc, updated_at desc", (isp_id, subscriber_id))


async def tenant_registrations(tx: Tx, isp_id: int, tenant_id: int, *, limit: int = 100,
                               offset: int = 0) -> list[Row]:
    """The tenant console's live registrations, a page at a time."""
    return await tx.fetch(
        "select r.*, s.username from registrations r join subscribers s on s.id = r.subscriber_id"
        " where r.isp_id = %s and r.tenant_id = %s and r.expires_at > now()"
        " order by s.username, r.q desc, r.id limit %s offset %s", (isp_id, tenant_id, limit, offset))


async def live_bindings(tx: Tx) -> list[Row]:
    """Every unexpired binding on the platform, for a starting node's index."""
    return await tx.fetch(
        "select r.*, s.username, d.name as domain from registrations r"
        " join subscribers s on s.id = r.subscriber_id join tenants t on t.id = r.tenant_id"
        " join domains d on d.id = t.domain_id where r.expires_at > now()")


async def delete_expired(tx: Tx, now: datetime.datetime) -> list[Row]:
    return await tx.fetch(
        "delete from registrations where expires_at <= %s returning isp_id, subscriber_id, contact",
        (now,))
