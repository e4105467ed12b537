"""Self-care and a SIP account locked after password guessing (issue 12 point 13): the
subscriber is told, and the address it logged in from with its web password becomes one
its phones (and the browser phone) may register from while the lock holds."""

import pytest_twisted
from twisted.internet import reactor

from tests.web.consolepeople import people_of
from wevoip.store import audit, siplocks


@pytest_twisted.ensureDeferred
async def test_self_care_shows_the_lock_and_vouches_for_the_address_it_is_used_from(console):
    people = await people_of(console, "lockcare.example.net")
    tree = people.tree
    subscriber = tree.subscriber["id"]
    page = await people.subscriber.get("/me")
    assert "guessing your SIP password" not in page
    now = reactor.seconds()
    await console.database.transact(lambda tx: tx.execute("delete from sip_known_sources where subscriber_id = %s",
                                                          (subscriber,)))
    await console.database.transact(lambda tx: siplocks.lock_user(
        tx, isp_id=tree.isp["id"], tenant_id=tree.tenant["id"], subscriber_id=subscriber, username="alice",
        domain=tree.tenant["sip_domain"], now=now, seconds=600, failures=20, sources=["203.0.113.9"]))
    page = await people.subscriber.get("/me")
    assert "guessing your SIP password" in page and "(127.0.0.1)" in page
    assert await console.database.transact(siplocks.known_source, subscriber, "127.0.0.1", now - 60)


@pytest_twisted.ensureDeferred
async def test_the_isp_console_shows_locked_sip_users_and_unlocks_one_with_an_audit_line(console):
    people = await people_of(console, "lockisp.example.net")
    tree = people.tree
    isp = people.isp_admin
    page = await isp.get("/isp")
    assert "SIP users locked" not in page
    await console.database.transact(lambda tx: siplocks.lock_user(
        tx, isp_id=tree.isp["id"], tenant_id=tree.tenant["id"], subscriber_id=tree.subscriber["id"],
        username="alice", domain=tree.tenant["sip_domain"], now=reactor.seconds(), seconds=600, failures=20,
        sources=["203.0.113.9"]))
    page = await isp.get("/isp")
    assert "SIP users locked after password guessing" in page and f"alice@{tree.tenant['sip_domain']}" in page
    page = await isp.post(f"/isp/sip-locks/{tree.subscriber['id']}/unlock")
    assert "SIP users locked" not in page
    assert await console.database.transact(siplocks.lock_of, tree.subscriber["id"]) is None
    rows = await console.database.transact(audit.list_audit, tree.isp["id"])
    assert any(row["action"] == "sip_lock.unlock" for row in rows)
