"""The drainer sends each outbox row once, backs off from a failing receiver, and holds no
transaction while it sends."""

import pytest_twisted
from twisted.internet import defer, protocol, reactor, task
from twisted.internet.task import Clock

from tests.store.builders import build_tree
from tests.webhook_receiver import WebhookReceiver
from wevoip.config import MailConfig
from wevoip.mail import SmtpSender
from wevoip.outbox import OutboxDrainer
from wevoip.store import outbox, webhooks
from wevoip.store.database import Database
from wevoip.webhooks import WebhookSender


@pytest_twisted.ensureDeferred
async def test_rows_are_sent_once_and_failures_retried_later(database):
    tree = await build_tree(database, "drain.example.net")
    isp_id = tree.isp["id"]
    for to in ("ok@example.org", "bounce@example.org"):
        await database.transact(lambda tx, to=to: outbox.enqueue_mail(tx, isp_id, to=to, subject="s", body="b"))
    delivered = []

    async def send(row):
        if row["payload"]["to"].startswith("bounce"):
            raise ConnectionRefusedError("relay refused")
        delivered.append(row["payload"]["to"])

    drainer = OutboxDrainer(Clock(), database, "mail", send)
    assert await drainer.drain() == 1
    assert await drainer.drain() == 0
    assert delivered == ["ok@example.org"]
    rows = {row["payload"]["to"]: row for row in await database.transact(outbox.list_outbox, isp_id)}
    assert rows["ok@example.org"]["sent_at"] is not None
    bounced = rows["bounce@example.org"]
    assert (bounced["sent_at"], bounced["attempts"]) == (None, 1)
    assert "relay refused" in bounced["last_error"]
    assert bounced["next_attempt_at"] > bounced["created_at"]


@pytest_twisted.ensureDeferred
async def test_a_row_that_always_fails_is_given_up_after_max_attempts(database):
    tree = await build_tree(database, "giveup.example.net")
    await database.transact(lambda tx: outbox.enqueue_webhook(tx, tree.isp["id"], event="e", data={}))
    await database.transact(lambda tx: tx.execute("update outbox set attempts = 3"))
    calls = []

    async def send(row):
        calls.append(row["id"])

    drainer = OutboxDrainer(Clock(), database, "webhook", send, max_attempts=3)
    assert await drainer.drain() == 0
    assert calls == []


class _SlowDrainer(OutboxDrainer):
    """A drain that waits on `gate` the first time, standing for one that has already looked."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.drains = 0
        self.gate = defer.Deferred()

    async def drain(self) -> int:
        self.drains += 1
        if self.drains == 1:
            await self.gate
        return 0


def test_a_wake_during_a_drain_drains_again_after_it(database):
    """A notice that comes while a drain runs must not be lost if that drain already looked."""
    drainer = _SlowDrainer(Clock(), database, "mail", None)
    drainer.startService()
    assert drainer.drains == 1
    drainer.wake()
    drainer.wake()
    assert drainer.drains == 1
    drainer.gate.callback(None)
    assert drainer.drains == 2
    drainer.wake()
    assert drainer.drains == 3
    drainer.stopService()


IDLE_IN_TRANSACTION = ("select count(*) from pg_stat_activity where datname = current_database()"
                       " and state like 'idle in transaction%%'")


@pytest_twisted.ensureDeferred
async def test_no_transaction_is_held_while_a_webhook_receiver_stalls(dsn, database):
    """A node whose store has one connection: a stalled send holds none of it."""
    tree = await build_tree(database, "stall.example.net")
    isp_id = tree.isp["id"]
    receiver = WebhookReceiver()
    hook = await database.transact(webhooks.set_webhook, isp_id, receiver.url)
    receiver.secret, receiver.hang = hook["secret"], True
    row = await database.transact(lambda tx: outbox.enqueue_webhook(tx, isp_id, event="e", data={}))
    small = Database(reactor, dsn, size=1)
    await small.connect()
    try:
        drainer = OutboxDrainer(reactor, small, "webhook", WebhookSender(reactor, small, timeout_seconds=30).send)
        hung = receiver.next_hung()
        draining = drainer.wake()
        await hung
        assert await database.transact(lambda tx: tx.fetch_value(IDLE_IN_TRANSACTION)) == 0
        assert await small.transact(lambda tx: tx.fetch_value("select count(*) from outbox")) == 1
        leased = await small.transact(lambda tx: tx.fetch_one(
            "select attempts, next_attempt_at > now() + interval '10 minutes' as leased, sent_at"
            " from outbox where id = %s", (row["id"],)))
        assert leased == {"attempts": 1, "leased": True, "sent_at": None}
        assert await OutboxDrainer(Clock(), small, "webhook", None).drain() == 0, "leased rows are not taken"
        receiver.release()
        assert await draining == 1
        sent = await database.transact(lambda tx: tx.fetch_one("select * from outbox where id = %s", (row["id"],)))
        assert sent["sent_at"] is not None and sent["attempts"] == 1
    finally:
        await small.close()
        await receiver.close()


class _StalledRelay(protocol.Protocol):
    """Accepts the connection and never greets: a relay that has stopped answering."""

    def connectionMade(self):  # noqa: N802 (Twisted's name)
        self.factory.connected.append(self)


@pytest_twisted.ensureDeferred
async def test_a_stalled_mail_relay_holds_no_transaction_and_times_out(dsn, database):
    relay_factory = protocol.ServerFactory.forProtocol(_StalledRelay)
    relay_factory.connected = []
    relay = reactor.listenTCP(0, relay_factory, interface="127.0.0.1")
    tree = await build_tree(database, "relay.example.net")
    row = await database.transact(lambda tx: outbox.enqueue_mail(tx, tree.isp["id"], to="a@example.org",
                                                                 subject="s", body="b"))
    settings = MailConfig(relay_host="127.0.0.1", relay_port=relay.getHost().port, timeout_seconds=30)
    clock = Clock()
    small = Database(reactor, dsn, size=1)
    await small.connect()
    try:
        drainer = OutboxDrainer(clock, small, "mail", SmtpSender(reactor, settings, small).send,
                                send_timeout=settings.timeout_seconds)
        draining = drainer.wake()
        while not relay_factory.connected:
            await task.deferLater(reactor, 0.01, lambda: None)
        assert await database.transact(lambda tx: tx.fetch_value(IDLE_IN_TRANSACTION)) == 0
        assert await small.transact(lambda tx: tx.fetch_value("select count(*) from outbox")) == 1
        clock.advance(settings.timeout_seconds)
        assert await draining == 0
        failed = await database.transact(lambda tx: tx.fetch_one("select * from outbox where id = %s", (row["id"],)))
        assert failed["sent_at"] is None and failed["attempts"] == 1
        assert "no answer within 30 s" in failed["last_error"]
        assert failed["next_attempt_at"] > failed["created_at"]
    finally:
        await small.close()
        await relay.stopListening()
        for connection in relay_factory.connected:
            connection.transport.abortConnection()


@pytest_twisted.ensureDeferred
async def test_a_node_that_dies_mid_send_leaves_the_row_to_another_after_the_lease(database):
    tree = await build_tree(database, "lease.example.net")
    row = await database.transact(lambda tx: outbox.enqueue_mail(tx, tree.isp["id"], to="b@example.org",
                                                                 subject="s", body="b"))
    never = defer.Deferred()
    dying = OutboxDrainer(Clock(), database, "mail", lambda row: never)
    dying.wake()                                    # claims the row, then never hears back
    while await database.transact(lambda tx: tx.fetch_value("select attempts from outbox")) == 0:
        await task.deferLater(reactor, 0.01, lambda: None)
    delivered = []

    async def send(row):
        delivered.append(row["id"])

    other = OutboxDrainer(Clock(), database, "mail", send)
    assert await other.drain() == 0 and delivered == [], "nothing is sent twice while the lease holds"
    await database.transact(lambda tx: tx.execute(      # the lease runs out
        "update outbox set next_attempt_at = now() - interval '1 second' where id = %s", (row["id"],)))
    assert await other.drain() == 1 and delivered == [row["id"]]
    stale = await database.transact(outbox.mark_failed, row["id"], 1, "late", 30)
    assert stale is False, "the lapsed claim's outcome does not overwrite the new one"
    sent = await database.transact(lambda tx: tx.fetch_one("select * from outbox where id = %s", (row["id"],)))
    assert sent["sent_at"] is not None and sent["attempts"] == 2 and sent["last_error"] == ""
