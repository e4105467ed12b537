"""
An ISP's webhook (URL and signing secret) and the events it is sent.

Whoever causes an event calls its function here in the same transaction as the change, so
an event is announced exactly when the change commits. The functions only enqueue; the
webhook drainer (`wevoip/webhooks.py`) signs and posts them, and drops events of an ISP
that has no webhook when their turn comes.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from wevoip.credentials import new_secret
from wevoip.store import fields
from wevoip.store.database import Row, Tx
from wevoip.store.errors import Invalid, NotFound
from wevoip.store.outbox import enqueue_webhook

CALL_ENDED = "call.ended"
BALANCE_LOW = "balance.low"
ACCOUNT_LOCKED = "account.locked"
SIGNUP_WAITING = "signup.waiting"
SIP_USER_LOCKED = "sip.user_locked"
PING = "webhook.ping"
EVENTS = (CALL_ENDED, BALANCE_LOW, ACCOUNT_LOCKED, SIGNUP_WAITING, SIP_USER_LOCKED, PING)


def webhook_url(field: str, value: Any) -> str:
    value = fields.text(field, value, max_length=2000)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value):
        raise Invalid(field, "must be an http:// or https:// URL with a host")
    return value


def _secret(field: str, value: Any) -> str:
    value = fields.text(field, value, max_length=200)
    if len(value) < 16:
        raise Invalid(field, "must be at least 16 characters")
    return value


async def set_webhook(tx: Tx, isp_id: int, url: str, secret: str | None = None) -> Row:
    """Set the URL; a new secret is made unless one is given. The row holds the secret."""
    url = webhook_url("url", url)
    secret = new_secret("whsec_", 24) if secret is None else _secret("secret", secret)
    if await tx.fetch_one("select id from isps where id = %s", (isp_id,)) is None:
        raise NotFound("isp")
    return await tx.fetch_one(
        "insert into webhooks (isp_id, url, secret) values (%s, %s, %s) on conflict (isp_id)"
        " do update set url = excluded.url, secret = excluded.secret, updated_at = now() returning *",
        (isp_id, url, secret))


async def get_webhook(tx: Tx, isp_id: int) -> Row:
    row = await tx.fetch_one("select * from webhooks where isp_id = %s", (isp_id,))
    if row is None:
        raise NotFound("webhook")
    return row


async def webhook_target(tx: Tx, isp_id: int) -> Row | None:
    """The drainer's question: where does this ISP's event go, if anywhere?"""
    return await tx.fetch_one("select url, secret from webhooks where isp_id = %s", (isp_id,))


async def delete_webhook(tx: Tx, isp_id: int) -> None:
    if await tx.execute("delete from webhooks where isp_id = %s", (isp_id,)) == 0:
        raise NotFound("webhook")


async def list_deliveries(tx: Tx, isp_id: int, *, limit: int = 100, offset: int = 0) -> list[Row]:
    """The ISP's webhook events, newest first, with how their delivery went."""
    return await tx.fetch(
        "select id, payload->>'event' as event, created_at, attempts, sent_at, next_attempt_at, last_error"
        " from outbox where isp_id = %s and kind = 'webhook' order by id desc limit %s offset %s",
        (isp_id, limit, offset))


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.timezone.utc).isoformat().replace("+00:00", "Z")
    return value


async def _event(tx: Tx, isp_id: int, event: str, dedupe_key: str | None, **data: Any) -> Row | None:
    return await enqueue_webhook(tx, isp_id, event=event, data={k: _plain(v) for k, v in data.items()},
                                 dedupe_key=dedupe_key)


async def call_ended(tx: Tx, isp_id: int, *, call_id: str, customer_id: int | None, tenant_id: int | None,
                     caller: str, callee: str, direction: str, started_at: datetime.datetime,
                     answered_at: datetime.datetime | None, ended_at: datetime.datetime, duration_ms: int,
                     end_reason: str, charge: Decimal | None = None) -> Row | None:
    """The B2BUA's call record, once per Call-ID."""
    return await _event(tx, isp_id, CALL_ENDED, f"{CALL_ENDED}:{call_id}"[:200], call_id=call_id,
                        customer_id=customer_id, tenant_id=tenant_id, caller=caller, callee=callee,
                        direction=direction, started_at=started_at, answered_at=answered_at, ended_at=ended_at,
                        duration_ms=duration_ms, end_reason=end_reason, charge=charge)


async def balance_low(tx: Tx, isp_id: int, *, customer_id: int, balance: Decimal, threshold: Decimal,
                      currency: str, dedupe_key: str | None = None) -> Row | None:
    """Billing, when a balance crosses its threshold (dedupe_key: once per crossing)."""
    return await _event(tx, isp_id, BALANCE_LOW, dedupe_key, customer_id=customer_id, balance=balance,
                        threshold=threshold, currency=currency)


async def account_locked(tx: Tx, isp_id: int, *, customer_id: int, reason: str,
                         dedupe_key: str | None = None) -> Row | None:
    """Billing, when HARD balance management locks a customer out."""
    return await _event(tx, isp_id, ACCOUNT_LOCKED, dedupe_key, customer_id=customer_id, reason=reason)


async def signup_waiting(tx: Tx, isp_id: int, *, customer_id: int, name: str, email: str) -> Row | None:
    """The consoles, when a signup waits in WAIT for the ISP to activate it."""
    return await _event(tx, isp_id, SIGNUP_WAITING, f"{SIGNUP_WAITING}:{customer_id}", customer_id=customer_id,
                        name=name, email=email)


async def sip_user_locked(tx: Tx, isp_id: int, *, subscriber_id: int, tenant_id: int, username: str,
                          domain: str, locked_until: datetime.datetime, failures: int,
                          sources: list[str]) -> Row | None:
    """The SIP stack, when a distributed password guess locks a user to its known addresses."""
    return await _event(tx, isp_id, SIP_USER_LOCKED, None, subscriber_id=subscriber_id, tenant_id=tenant_id,
                        username=username, domain=domain, locked_until=locked_until, failures=failures,
                        sources=sources)


async def ping(tx: Tx, isp_id: int) -> Row | None:
    """A test event the ISP sends itself to check its receiver and signature code."""
    await get_webhook(tx, isp_id)
    return await _event(tx, isp_id, PING, None, message="a test event from WeVoIP")
