"""Webhook events: enqueued with the change, posted signed to the ISP's receiver, retried on failure."""

import datetime
from decimal import Decimal

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock

from tests.store.builders import build_tree
from tests.webhook_receiver import WebhookReceiver, verify
from wevoip.outbox import OutboxDrainer
from wevoip.store import outbox, webhooks
from wevoip.store.errors import Invalid
from wevoip.webhooks import WebhookSender, signature

T0 = datetime.datetime(2026, 11, 23, 8, 0, tzinfo=datetime.timezone.utc)


async def _call_ended(database, isp_id, call_id="c1@pbx"):
    return await database.transact(lambda tx: webhooks.call_ended(
        tx, isp_id, call_id=call_id, customer_id=None, tenant_id=None, caller="+15550100100",
        callee="+442071234567", direction="outbound", started_at=T0, answered_at=T0 + datetime.timedelta(seconds=3),
        ended_at=T0 + datetime.timedelta(seconds=63), duration_ms=60000, end_reason="caller hung up",
        charge=Decimal("0.012000")))


async def _rows(database, isp_id):
    return {row["id"]: row for row in await database.transact(outbox.list_outbox, isp_id)}


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body():
    header = signature("s" * 16, 1763884800, b'{"a":1}')
    assert header.startswith("t=1763884800,v1=") and len(header.split("v1=")[1]) == 64
    assert verify("s" * 16, header, b'{"a":1}', now=1763884800)
    assert not verify("s" * 16, header, b'{"a":2}', now=1763884800)
    assert not verify("s" * 16, header, b'{"a":1}', now=1763884800 + 3600)


@pytest_twisted.async_yield_fixture
async def hooked(database):
    """An ISP whose webhook points at a receiver on loopback that knows the secret."""
    tree = await build_tree(database, "hooks.example.net")
    receiver = WebhookReceiver()
    hook = await database.transact(webhooks.set_webhook, tree.isp["id"], receiver.url)
    receiver.secret = hook["secret"]
    yield tree.isp["id"], receiver
    await receiver.close()


@pytest_twisted.ensureDeferred
async def test_an_event_is_posted_signed_and_failures_are_retried(database, hooked):
    isp_id, receiver = hooked
    first = await _call_ended(database, isp_id)
    assert await _call_ended(database, isp_id) is None, "one event per Call-ID"
    drainer = OutboxDrainer(Clock(), database, "webhook",
                            WebhookSender(reactor, database, timeout_seconds=2).send)
    assert await drainer.drain() == 1
    [event] = receiver.events
    assert event["event"] == "call.ended" and event["delivery"] == str(first["id"])
    assert event["body"]["data"]["charge"] == "0.012000"
    assert event["body"]["data"]["started_at"] == "2026-11-23T08:00:00Z"
    assert event["body"]["isp_id"] == isp_id and event["body"]["id"] == first["id"]

    receiver.status = 500
    failing = await _call_ended(database, isp_id, "c2@pbx")
    assert await drainer.drain() == 0
    row = (await _rows(database, isp_id))[failing["id"]]
    assert row["sent_at"] is None and row["attempts"] == 1 and "HTTP 500" in row["last_error"]

    receiver.secret = "another-secret-entirely"
    receiver.status = 200
    await database.transact(lambda tx: tx.execute("update outbox set next_attempt_at = now()"))
    assert await drainer.drain() == 0 and len(receiver.refused) == 1, "a wrong secret fails the check"


@pytest_twisted.ensureDeferred
async def test_a_receiver_that_hangs_times_out_and_an_isp_without_webhook_gets_nothing(database, hooked):
    isp_id, receiver = hooked
    receiver.hang = True
    slow = await _call_ended(database, isp_id)
    drainer = OutboxDrainer(Clock(), database, "webhook",
                            WebhookSender(reactor, database, timeout_seconds=1).send)
    assert await drainer.drain() == 0
    row = (await _rows(database, isp_id))[slow["id"]]
    assert row["attempts"] == 1 and row["last_error"]

    await database.transact(webhooks.delete_webhook, isp_id)
    await database.transact(lambda tx: tx.execute("update outbox set next_attempt_at = now()"))
    assert await drainer.drain() == 1
    assert receiver.events == []


@pytest.mark.parametrize("url, secret, field", [("ftp://example.org/x", None, "url"),
                                               ("http:///nohost", None, "url"),
                                               ("https://example.org/hook", "short", "secret")])
@pytest_twisted.ensureDeferred
async def test_webhook_urls_and_secrets_are_checked(database, url, secret, field):
    tree = await build_tree(database, "checks.example.net")
    with pytest.raises(Invalid) as refused:
        await database.transact(webhooks.set_webhook, tree.isp["id"], url, secret)
    assert refused.value.field == field
