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
    reg_id: int = 0
    local_address: str = ""


@dataclass(frozen=True)
class BindingWrite:
    """One binding to upsert in a batch; it carries its own ISP, checked by the foreign keys."""

    isp_id: int
    tenant_id: int
    subscriber_id: int
    record: BindingRecord
    node: str


async def save_binding(tx: Tx, isp_id: int, tenant_id: int, subscriber_id: int,
                       binding: BindingRecord, node: str) -> Row:
    return await tx.fetch_one(
        "insert into registrations (" + _COLUMNS + ")"
        " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)" + _ON_CONFLICT
        + " returning *", _values(BindingWrite(isp_id, tenant_id, subscriber_id, binding, node)))


_COLUMNS = ("isp_id, tenant_id, subscriber_id, contact, q, call_id, cseq, expires_at, source,"
            " transport, instance_id, user_agent, node, reg_id, local_address")
_ON_CONFLICT = (
    " on conflict (isp_id, subscriber_id, contact) do update set q = excluded.q,"
    " call_id = excluded.call_id, cseq = excluded.cseq, expires_at = excluded.expires_at,"
    " source = excluded.source, transport = excluded.transport,"
    " instance_id = excluded.instance_id, user_agent = excluded.user_agent,"
    " node = excluded.node, reg_id = excluded.reg_id, local_address = excluded.local_address,"
    " updated_at = now()")


def _values(write: BindingWrite) -> tuple:
    record = write.record
    return (write.isp_id, write.tenant_id, write.subscriber_id, record.contact, record.q,
            record.call_id, record.cseq, record.expires_at, record.source, record.transport,
            record.instance_id, record.user_agent[:256], write.node, record.reg_id,
            record.local_address)


CHANNEL = "registrations"
_NOTIFY_LIMIT = 7000


async def write_bindings(tx: Tx, saves: list[BindingWrite], deletes: list[tuple[int, int, str]],
                         node: str) -> None:
    """
    A registrar's batch in one statement: `deletes` are (isp_id, subscriber_id, contact).
    A key appears at most once in the whole batch (the caller keeps the last change); each
    write carries its own ISP, and the composite foreign keys refuse a mismatched one. The
    changed AORs are published on `registrations` as `node|isp:subscriber,...` (split to
    stay under PostgreSQL's 8000-byte payload), for the other nodes to re-read.

    The commit does not wait for the disk (synchronous_commit off for this transaction
    only): bindings are soft state that phones repeat every few minutes, so a database
    crash may lose the last fraction of a second of them, and in exchange a REGISTER's
    200 is not held up by an fsync.
    """
    aors = sorted({f"{w.isp_id}:{w.subscriber_id}" for w in saves} | {f"{d[0]}:{d[1]}" for d in deletes})
    deleted = [list(column) for column in zip(*deletes)] or [[], [], []]
    saved = [list(column) for column in zip(*map(_values, saves))] or [[]] * 15
    await tx.execute(
        "with gone as (delete from registrations r"
        " using unnest(%s::bigint[], %s::bigint[], %s::text[]) as d(isp_id, subscriber_id, contact)"
        " where r.isp_id = d.isp_id and r.subscriber_id = d.subscriber_id and r.contact = d.contact),"
        " saved as (insert into registrations (" + _COLUMNS + ")"
        " select * from unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::text[],"
        " %s::numeric[], %s::text[], %s::bigint[], %s::timestamptz[], %s::text[], %s::text[],"
        " %s::text[], %s::text[], %s::text[], %s::integer[], %s::text[])" + _ON_CONFLICT + ")"
        " select pg_notify(%s, payload), set_config('synchronous_commit', 'off', true)"
        " from unnest(%s::text[]) as payload",
        [*deleted, *saved, CHANNEL, list(notify_payloads(node, aors))])


def notify_payloads(node: str, aors: list[str]):
    chunk: list[str] = []
    size = len(node) + 1
    for aor in aors:
        if chunk and size + len(aor) + 1 > _NOTIFY_LIMIT:
            yield f"{node}|{','.join(chunk)}"
            chunk, size = [], len(node) + 1
        chunk.append(aor)
        size += len(aor) + 1
    if chunk:
        yield f"{node}|{','.join(chunk)}"


async def live_bindings_of(tx: Tx, subscribers: list[tuple[int, int]]) -> list[Row]:
    """Unexpired bindings of (isp_id, subscriber_id) pairs, for a node catching up on a NOTIFY."""
    return await tx.fetch(
        "select r.* from registrations r join unnest(%s::bigint[], %s::bigint[])"
        " as k(isp_id, subscriber_id) on r.isp_id = k.isp_id and r.subscriber_id = k.subscriber_id"
        " where r.expires_at > now()", [list(column) for column in zip(*subscribers)])


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
