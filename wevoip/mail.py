"""
Sending the outbox's mail through the configured SMTP relay with twisted.mail.

The relay does the delivery (queues, retries to the recipient's MX, DKIM); the node only
hands each message over once, and the outbox retries while the relay is unreachable. An
ISP's mail comes from that ISP's `smtp_sender` when it has one, else from the platform's.
"""

from __future__ import annotations

import email.utils
from email.message import EmailMessage
from email.policy import default as policy

from twisted.internet import defer
from twisted.internet.error import ConnectError
from twisted.logger import Logger
from twisted.mail import smtp

from wevoip.config import MailConfig
from wevoip.store.database import Database, Row
from wevoip.store.isps import get_isp


log = Logger(namespace="wevoip.mail")

NOT_CONFIGURED = ("mail is not configured (mail.relay_host is empty): nothing is mailed; mail waits in the "
                  "outbox until a relay is configured. Signup confirmation links: the platform console's "
                  "Signups page (/platform/signups) or GET /api/v1/signups; ISP administrators: "
                  "/platform or POST /api/v1/isps/{id}/admins")


class MailError(Exception):
    """A message in the outbox cannot be turned into mail (a bad address or header)."""


def build_message(sender: str, to: str, subject: str, body: str) -> bytes:
    message = EmailMessage(policy=policy)
    try:
        message["From"] = sender
        message["To"] = to
        message["Subject"] = subject
    except ValueError as error:
        raise MailError(str(error)) from None
    message["Date"] = email.utils.formatdate(usegmt=True)
    message["Message-ID"] = email.utils.make_msgid(domain=sender.rpartition("@")[2] or "localhost")
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body)
    # Bare LF: twisted.mail's client turns each into CRLF on the wire.
    return message.as_bytes()


class SmtpSender:
    def __init__(self, reactor, settings: MailConfig, database: Database):
        self.reactor = reactor
        self.settings = settings
        self.database = database

    async def sender_for(self, isp_id: int | None) -> str:
        if isp_id is None:
            return self.settings.sender
        isp = await self.database.transact(get_isp, isp_id)
        return isp["smtp_sender"] or self.settings.sender

    async def send(self, row: Row) -> None:
        """The outbox drainer's `send` for kind "mail"; raises when the relay refuses."""
        payload = row["payload"]
        sender = await self.sender_for(row["isp_id"])
        message = build_message(sender, payload["to"], payload["subject"], payload["body"])
        settings = self.settings
        try:
            await smtp.sendmail(
                settings.relay_host, sender, [payload["to"]], message, port=settings.relay_port,
                reactor=self.reactor, username=settings.username or None, password=settings.password or None,
                requireAuthentication=bool(settings.username), requireTransportSecurity=settings.starttls)
        except smtp.SMTPConnectError as error:
            if not isinstance(error.__cause__, ConnectError):    # connected, then failed (TLS, AUTH): as it is
                raise
            # The usual first-run story: a relay configured (or left over) where none runs.
            raise MailError(f"no SMTP relay answers at {settings.relay_host}:{settings.relay_port} "
                            f"(mail.relay_host, mail.relay_port): {error.__cause__}; mail waits in the outbox. "
                            f"Signup links meanwhile: /platform/signups") from None


class NoRelay:
    """Stands in for the mail drainer on a node without a relay (a fresh install): it says so
    at start, and again whenever any node queues mail, with how much waits, so the log
    explains why a signup link never arrives instead of only showing failed sends."""

    def __init__(self, database: Database):
        self.database = database

    def announce(self) -> None:
        log.warn("{message}", message=NOT_CONFIGURED)

    def on_notify(self, payload: str) -> defer.Deferred | None:
        if payload != "mail":
            return None
        waiting = defer.Deferred.fromCoroutine(self.database.transact(
            lambda tx: tx.fetch_value("select count(*) from outbox where kind = 'mail' and sent_at is null")))
        waiting.addCallback(lambda count: log.warn(
            "mail queued but not sent: {count} mail(s) wait in the outbox; {message}", count=count,
            message=NOT_CONFIGURED))
        waiting.addErrback(lambda failure: log.failure("counting the unsent mail failed", failure))
        return waiting
