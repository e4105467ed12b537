"""Mail from the outbox reaches a real SMTP relay on loopback, and a refusal is retried."""

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock

from tests.smtpserver import SmtpServer
from tests.store.builders import build_tree
from wevoip.config import MailConfig
from wevoip.mail import MailError, SmtpSender, build_message
from wevoip.outbox import OutboxDrainer
from wevoip.store import outbox
from wevoip.store.isps import update_isp


@pytest_twisted.async_yield_fixture
async def relay():
    server = SmtpServer()
    server.start()
    yield server
    await server.stop()


@pytest_twisted.ensureDeferred
async def test_outbox_mail_is_delivered_through_the_relay(database, relay):
    tree = await build_tree(database, "mail.example.net")
    await database.transact(lambda tx: update_isp(tx, tree.isp["id"], smtp_sender="noreply@mail.example.net"))
    await database.transact(lambda tx: outbox.enqueue_mail(tx, tree.isp["id"], to="ceo@acme.example",
                                                           subject="Welcome to Acme's PBX", body="Hello, Ana\n"))
    await database.transact(lambda tx: outbox.enqueue_mail(tx, None, to="new@isp.example",
                                                           subject="Confirm", body="Click\n"))
    settings = MailConfig(relay_host="127.0.0.1", relay_port=relay.port.getHost().port,
                          sender="platform@wevoip.example")
    drainer = OutboxDrainer(Clock(), database, "mail", SmtpSender(reactor, settings, database).send)
    assert await drainer.drain() == 2
    (first_envelope, first), (second_envelope, second) = relay.inbox
    assert first_envelope == ("noreply@mail.example.net", "ceo@acme.example")
    assert first["Subject"] == "Welcome to Acme's PBX" and first["From"] == "noreply@mail.example.net"
    assert first.get_content() == "Hello, Ana\n"
    assert second_envelope == ("platform@wevoip.example", "new@isp.example")
    rows = await database.transact(outbox.list_outbox, tree.isp["id"])
    assert all(row["sent_at"] is not None for row in rows)


@pytest_twisted.ensureDeferred
async def test_a_refusing_or_absent_relay_leaves_the_mail_for_a_retry(database, relay):
    tree = await build_tree(database, "refuse.example.net")
    await database.transact(lambda tx: outbox.enqueue_mail(tx, tree.isp["id"], to="x@acme.example",
                                                           subject="s", body="b"))
    relay.refuse = True
    settings = MailConfig(relay_host="127.0.0.1", relay_port=relay.port.getHost().port)
    drainer = OutboxDrainer(Clock(), database, "mail", SmtpSender(reactor, settings, database).send)
    assert await drainer.drain() == 0
    [row] = await database.transact(outbox.list_outbox, tree.isp["id"])
    assert row["sent_at"] is None and row["attempts"] == 1 and row["last_error"]
    assert relay.inbox == []


def test_a_header_with_a_line_break_is_refused():
    with pytest.raises(MailError):
        build_message("a@b.example", "x@y.example", "hi\r\nBcc: victim@z.example", "body")


@pytest.mark.parametrize("settings", [{"starttls": True}, {"username": "wevoip", "password": "relay-secret"}])
@pytest_twisted.ensureDeferred
async def test_mail_is_not_sent_in_the_clear_or_unauthenticated_when_the_config_asks_for_more(database, relay,
                                                                                             settings):
    """The loopback relay offers neither STARTTLS nor AUTH: asked for, the sender must give up."""
    await database.transact(lambda tx: outbox.enqueue_mail(tx, None, to="x@acme.example", subject="s", body="b"))
    config = MailConfig(relay_host="127.0.0.1", relay_port=relay.port.getHost().port, **settings)
    drainer = OutboxDrainer(Clock(), database, "mail", SmtpSender(reactor, config, database).send)
    assert await drainer.drain() == 0
    assert relay.inbox == []
    [row] = await database.fetch("select * from outbox")
    assert row["sent_at"] is None and row["last_error"]


@pytest_twisted.ensureDeferred
async def test_a_relay_nobody_runs_is_named_in_the_error(database):
    """Issue 12, point 10: the log and the outbox row say which relay is missing and where
    signup links are meanwhile, not only that the outbox failed."""
    await database.transact(lambda tx: outbox.enqueue_mail(tx, None, to="x@acme.example", subject="s", body="b"))
    relay = SmtpServer()
    port = relay.start()
    await relay.stop()      # a port where nothing listens any more
    settings = MailConfig(relay_host="127.0.0.1", relay_port=port)
    drainer = OutboxDrainer(Clock(), database, "mail", SmtpSender(reactor, settings, database).send)
    assert await drainer.drain() == 0
    [row] = await database.fetch("select * from outbox")
    assert row["sent_at"] is None and row["attempts"] == 1
    assert f"no SMTP relay answers at 127.0.0.1:{port} (mail.relay_host, mail.relay_port)" in row["last_error"]
    assert "/platform/signups" in row["last_error"]
