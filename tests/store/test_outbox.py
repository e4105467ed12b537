"""The outbox keeps what must be said in the same transaction as what caused it."""

import pytest
import pytest_twisted

from tests.store.builders import build_tree
from wevoip.store import customers, outbox


@pytest_twisted.ensureDeferred
async def test_a_dedupe_key_sends_once(database):
    tree = await build_tree(database, "mail.example.net")
    isp_id = tree.isp["id"]

    async def crossing(tx):
        return await outbox.enqueue_mail(tx, isp_id, to="ann@example.org", subject="Low balance",
                                         body="Your balance is 4.00", dedupe_key="low-balance:1:2026-11")

    first = await database.transact(crossing)
    second = await database.transact(crossing)
    assert first["payload"] == {"to": "ann@example.org", "subject": "Low balance", "body": "Your balance is 4.00"}
    assert second is None
    rows = await database.transact(outbox.list_outbox, isp_id)
    assert [row["id"] for row in rows] == [first["id"]]


@pytest_twisted.ensureDeferred
async def test_a_rolled_back_change_announces_nothing(database):
    tree = await build_tree(database, "rollback.example.net")

    async def failing(tx):
        await outbox.enqueue_webhook(tx, tree.isp["id"], event="account.locked", data={"customer": 1})
        raise RuntimeError("the change that caused it failed")

    with pytest.raises(RuntimeError):
        await database.transact(failing)
    assert await database.transact(outbox.list_outbox, tree.isp["id"]) == []


@pytest_twisted.ensureDeferred
async def test_a_customer_waiting_for_activation_is_announced_to_the_isp(database):
    tree = await build_tree(database, "signup.example.net")

    async def sign_up(tx):
        waiting = await customers.create_customer(tx, tree.isp["id"], name="Newco", email="boss@newco.example")
        await customers.create_customer(tx, tree.isp["id"], name="Oldco", status="ACTIVE")
        return waiting
    waiting = await database.transact(sign_up)
    rows = [row for row in await database.transact(outbox.list_outbox, tree.isp["id"]) if row["kind"] == "webhook"]
    assert [(row["payload"]["event"], row["payload"]["data"]) for row in rows] == [
        ("signup.waiting", {"customer_id": waiting["id"], "name": "Newco", "email": "boss@newco.example"})]
