"""
A real SMTP server on loopback (twisted.mail's server side) that keeps what it receives,
standing in for the operator's relay in tests.
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

from twisted.internet import defer, protocol, reactor
from twisted.mail import smtp
from zope.interface import implementer


@implementer(smtp.IMessage)
class _Message:
    def __init__(self, server: SmtpServer, envelope_from: str, recipient: str):
        self.server = server
        self.envelope = (envelope_from, recipient)
        self.lines: list[bytes] = []

    def lineReceived(self, line):  # noqa: N802
        self.lines.append(line)

    def eomReceived(self):  # noqa: N802
        self.server.received(self.envelope, b"".join(line + b"\n" for line in self.lines))
        return defer.succeed(None)

    def connectionLost(self):  # noqa: N802
        self.lines = []


@implementer(smtp.IMessageDelivery)
class _Delivery:
    def __init__(self, server: SmtpServer):
        self.server = server
        self.origin = ""

    def receivedHeader(self, helo, origin, recipients):  # noqa: N802
        return None

    def validateFrom(self, helo, origin):  # noqa: N802
        self.origin = str(origin)
        return origin

    def validateTo(self, user):  # noqa: N802
        if self.server.refuse:
            raise smtp.SMTPBadRcpt(user)
        return lambda: _Message(self.server, self.origin, str(user.dest))


class _Factory(protocol.ServerFactory):
    def __init__(self, server: SmtpServer):
        self.server = server

    def buildProtocol(self, addr):  # noqa: N802
        session = smtp.ESMTP()
        session.host = b"relay.test"
        session.delivery = _Delivery(self.server)
        session.factory = self
        return session


class SmtpServer:
    """`inbox` holds (envelope, parsed message); `next_mail()` waits for the next one."""

    def __init__(self):
        self.inbox: list[tuple[tuple[str, str], EmailMessage]] = []
        self.refuse = False
        self._waiting: list[defer.Deferred] = []
        self.port = None

    def start(self) -> int:
        self.port = reactor.listenTCP(0, _Factory(self), interface="127.0.0.1")
        return self.port.getHost().port

    async def stop(self) -> None:
        await self.port.stopListening()

    def received(self, envelope: tuple[str, str], raw: bytes) -> None:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        self.inbox.append((envelope, message))
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            waiter.callback(message)

    async def mail_to(self, address: str, timeout: float = 30.0) -> EmailMessage:
        """The first mail to `address`, received already or still to come."""
        while True:
            for (_, recipient), message in self.inbox:
                if recipient == address:
                    return message
            await self.next_mail(timeout)

    def next_mail(self, timeout: float = 20.0) -> defer.Deferred:
        waiter: defer.Deferred = defer.Deferred()
        self._waiting.append(waiter)
        return waiter.addTimeout(timeout, reactor)
