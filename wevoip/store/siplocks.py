"""
SIP users locked after a distributed password guess, and the addresses each user
registered from lately (migration 0120).

A lock holds on every node (a notification on `sip_user_locks` carries the subscriber id
at commit) and survives restarts. Times come from the caller's clock as Unix seconds, so
the SIP stack decides with the same (injectable) clock it writes with. Locking tells the
ISP in the same transaction: a `sip.user_locked` webhook event and a mail to its contact.
"""

from __future__ import annotations

import datetime

from wevoip.store import webhooks
from wevoip.store.database import Row, Tx
from wevoip.store.errors import NotFound
from wevoip.store.notify import publish
from wevoip.store.outbox import enqueue_mail

CHANNEL = "sip_user_locks"


def _utc(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)


async def lock_user(tx: Tx, *, isp_id: int, tenant_id: int, subscriber_id: int, username: str, domain: str,
                    now: float, seconds: int, failures: int, sources: list[str]) -> Row | None:
    """A new lock (or one replacing an expired lock) and its notices. A lock that holds
    already is only extended to `now + seconds` (the guessing outlasts it): None, no notice."""
    if await tx.fetch_one("select 1 from subscribers where isp_id = %s and id = %s and tenant_id = %s",
                          (isp_id, subscriber_id, tenant_id)) is None:
        raise NotFound("subscriber")
    held = await tx.fetch_one("select locked_until from sip_user_locks where subscriber_id = %s for update",
                              (subscriber_id,))
    if held is not None and held["locked_until"] > _utc(now):
        await tx.execute("update sip_user_locks set locked_until = greatest(locked_until, %s)"
                         " where subscriber_id = %s", (_utc(now + seconds), subscriber_id))
        await publish(tx, CHANNEL, str(subscriber_id))
        return None
    row = await tx.fetch_one(
        "insert into sip_user_locks (subscriber_id, isp_id, tenant_id, username, domain, locked_at, locked_until,"
        " failures, reason) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " on conflict (subscriber_id) do update set locked_at = excluded.locked_at,"
        " locked_until = excluded.locked_until, failures = excluded.failures, reason = excluded.reason"
        " where sip_user_locks.locked_until <= excluded.locked_at returning *",
        (subscriber_id, isp_id, tenant_id, username, domain, _utc(now), _utc(now + seconds), failures,
         f"{failures} failed answers from {len(sources)} or more addresses"))
    if row is None:
        return None
    await webhooks.sip_user_locked(tx, isp_id, subscriber_id=subscriber_id, tenant_id=tenant_id, username=username,
                                   domain=domain, locked_until=row["locked_until"], failures=failures,
                                   sources=sources)
    isp = await tx.fetch_one("select name, contact_email from isps where id = %s", (isp_id,))
    if isp is not None and isp["contact_email"]:
        until = row["locked_until"].strftime("%Y-%m-%d %H:%M UTC")
        await enqueue_mail(
            tx, isp_id, to=isp["contact_email"], subject=f"SIP account {username}@{domain} locked: password guessing",
            body=(f"{failures} wrong digest answers for {username}@{domain} came from several addresses"
                  f" (among them {', '.join(sources[:10])}).\n\n"
                  f"Until {until} the account registers and calls only from the addresses its phones"
                  f" registered from lately; a right password from anywhere else is refused as a wrong one.\n"
                  f"The lock is lifted by setting a new SIP password (API, console), or at once from the"
                  f" manhole (sip_access.unlock({subscriber_id})).\n"))
    await publish(tx, CHANNEL, str(subscriber_id))
    return row


async def unlock_user(tx: Tx, subscriber_id: int, isp_id: int | None = None) -> bool:
    """Lift a lock (an ISP's only when `isp_id` is given); False if there was none."""
    if isp_id is None:
        count = await tx.execute("delete from sip_user_locks where subscriber_id = %s", (subscriber_id,))
    else:
        count = await tx.execute("delete from sip_user_locks where subscriber_id = %s and isp_id = %s",
                                 (subscriber_id, isp_id))
    if count:
        await publish(tx, CHANNEL, str(subscriber_id))
    return bool(count)


async def lock_of(tx: Tx, subscriber_id: int) -> Row | None:
    return await tx.fetch_one("select * from sip_user_locks where subscriber_id = %s", (subscriber_id,))


async def active_locks(tx: Tx, now: float, isp_id: int | None = None) -> list[Row]:
    if isp_id is None:
        return await tx.fetch("select * from sip_user_locks where locked_until > %s order by subscriber_id",
                              (_utc(now),))
    return await tx.fetch("select * from sip_user_locks where locked_until > %s and isp_id = %s"
                          " order by subscriber_id", (_utc(now), isp_id))


async def list_locks(tx: Tx, isp_id: int, *, customer_id: int | None = None, limit: int = 100,
                     offset: int = 0) -> list[Row]:
    """An ISP's (or one customer's) locks in force, for the API and the console."""
    return await tx.fetch(
        "select l.subscriber_id, l.tenant_id, s.customer_id, l.username, l.domain, l.locked_at, l.locked_until,"
        " l.failures, l.reason from sip_user_locks l join subscribers s on s.id = l.subscriber_id"
        " where l.isp_id = %s and s.isp_id = %s and (%s::bigint is null or s.customer_id = %s)"
        " and l.locked_until > now() order by l.locked_at desc, l.subscriber_id limit %s offset %s",
        (isp_id, isp_id, customer_id, customer_id, limit, offset))


async def note_source(tx: Tx, subscriber_id: int, address: str, now: float) -> None:
    await tx.execute(
        "insert into sip_known_sources (subscriber_id, address, last_seen_at) values (%s, %s, %s)"
        " on conflict (subscriber_id, address) do update set last_seen_at = excluded.last_seen_at",
        (subscriber_id, address, _utc(now)))


async def known_source(tx: Tx, subscriber_id: int, address: str, since: float) -> bool:
    row = await tx.fetch_one("select 1 from sip_known_sources where subscriber_id = %s and address = %s"
                             " and last_seen_at > %s", (subscriber_id, address, _utc(since)))
    return row is not None


async def forget_sources(tx: Tx, before: float) -> int:
    """Housekeeping: addresses not registered from since `before` are no longer anyone's."""
    return await tx.execute("delete from sip_known_sources where last_seen_at <= %s", (_utc(before),))
