"""The drainer sends each outbox row once, and backs off from a failing receiver."""

import pytest_twisted
from twisted.internet import defer
from twisted.internet.task import Clock

from tests.store.builders import build_tree
from wevoip.outbox import OutboxDrainer
from wevoip.store import outbox


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
