"""
The outbox: mail and webhook events recorded in the caller's transaction.

Whoever changes state enqueues what must be said about it in the same transaction; a
dispatcher drains the table later. A `dedupe_key` turns "send once per crossing" into a
uniqueness rule: enqueueing the same key again does nothing and returns None.
"""

from __future__ import annotations

import json
from typing import Any

from wevoip.store.database import Row, Tx
from wevoip.store.notify import publish

CHANNEL = "outbox"


async def _enqueue(tx: Tx, isp_id: int | None, kind: str, payload: dict[str, Any],
                   dedupe_key: str | None) -> Row | None:
    row = await tx.fetch_one(
        "insert into outbox (isp_id, kind, payload, dedupe_key) values (%s, %s, %s, %s)"
        " on conflict (coalesce(isp_id, 0), kind, dedupe_key) where dedupe_key is not null"
        " do nothing returning *",
        (isp_id, kind, json.dumps(payload), dedupe_key))
    if row is not None:
        await publish(tx, CHANNEL, kind)
    return row


async def enqueue_mail(tx: Tx, isp_id: int | None, *, to: str, subject: str, body: str,
                       dedupe_key: str | None = None) -> Row | None:
    """A mail from the ISP's sender (the platform's when `isp_id` is None)."""
    return await _enqueue(tx, isp_id, "mail", {"to": to, "subject": subject, "body": body}, dedupe_key)


async def enqueue_webhook(tx: Tx, isp_id: int, *, event: str, data: dict[str, Any],
                          dedupe_key: str | None = None) -> Row | None:
    """An event for the ISP's webhook URL (sent only if the ISP has one)."""
    return await _enqueue(tx, isp_id, "webhook", {"event": event, "data": data}, dedupe_key)


async def list_outbox(tx: Tx, isp_id: int, *, limit: int = 100) -> list[Row]:
    return await tx.fetch("select * from outbox where isp_id = %s order by id desc limit %s",
                          (isp_id, limit))


async def claim_due(tx: Tx, kind: str, max_attempts: int, lease_seconds: float, limit: int = 20) -> list[Row]:
    """Due, unsent rows of one kind, leased to the caller for `lease_seconds`.

    The claim is its own short transaction: it counts the attempt and moves the row's
    `next_attempt_at` past the lease, so no other node (nor this one) takes it again while
    it is being sent outside any transaction, and a node that dies mid-send leaves it due
    again once the lease runs out. The attempt count a row is claimed with fences the
    outcome: only the claim still holding the row may record a failure."""
    return await tx.fetch(
        "with due as (select id from outbox where kind = %s and sent_at is null and next_attempt_at <= now()"
        " and attempts < %s order by id limit %s for update skip locked)"
        " update outbox set attempts = outbox.attempts + 1,"
        " next_attempt_at = now() + make_interval(secs => %s)"
        " from due where outbox.id = due.id returning outbox.*",
        (kind, max_attempts, limit, lease_seconds))


async def mark_sent(tx: Tx, outbox_id: int) -> None:
    await tx.execute("update outbox set sent_at = now(), last_error = '' where id = %s and sent_at is null",
                     (outbox_id,))


async def mark_failed(tx: Tx, outbox_id: int, attempts: int, error: str, retry_in_seconds: float) -> bool:
    """False when the claim had lapsed and another claim holds the row now (its outcome counts)."""
    return await tx.execute(
        "update outbox set last_error = %s, next_attempt_at = now() + make_interval(secs => %s)"
        " where id = %s and attempts = %s and sent_at is null",
        (error[:1000], retry_in_seconds, outbox_id, attempts)) == 1
