"""
Sending webhook events: the outbox drainer's sender for kind "webhook".

Each event is POSTed as JSON to the ISP's URL with a signature a receiver can check:

    WeVoIP-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>

The timestamp is inside the signed bytes, so a receiver that refuses old timestamps (five
minutes is usual) also refuses replays. `WeVoIP-Event` names the event and
`WeVoIP-Delivery` is the event's id, the same on every retry, for receivers to drop
duplicates. Anything but a 2xx answer within the timeout is a failure that the drainer
retries later; redirects are not followed.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from treq.client import HTTPClient
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool

from wevoip.store.database import Database, Row
from wevoip.store.webhooks import webhook_target

log = Logger(namespace="wevoip.webhooks")

SIGNATURE_HEADER = "WeVoIP-Signature"


class WebhookFailed(Exception):
    """The receiver did not take the event (an HTTP status other than 2xx)."""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def event_body(row: Row) -> bytes:
    payload = row["payload"]
    created = row["created_at"].isoformat().replace("+00:00", "Z")
    return json.dumps({"id": row["id"], "event": payload["event"], "isp_id": row["isp_id"], "created_at": created,
                       "data": payload["data"]}, separators=(",", ":")).encode()


class WebhookSender:
    def __init__(self, reactor, database: Database, *, timeout_seconds: float = 10.0):
        self.reactor = reactor
        self.database = database
        self.timeout_seconds = timeout_seconds
        self.http = HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False)))

    async def send(self, row: Row) -> None:
        """Post one outbox row; an ISP with no webhook (any more) has nothing to receive it."""
        target = await self.database.transact(webhook_target, row["isp_id"])
        if target is None:
            return
        body = event_body(row)
        headers = {"Content-Type": ["application/json"], "User-Agent": ["WeVoIP-Webhooks/1"],
                   "WeVoIP-Event": [row["payload"]["event"]], "WeVoIP-Delivery": [str(row["id"])],
                   SIGNATURE_HEADER: [signature(target["secret"], int(self.reactor.seconds()), body)]}
        response = await self.http.post(target["url"], data=body, headers=headers, allow_redirects=False,
                                        reactor=self.reactor, timeout=self.timeout_seconds)
        await self._discard(response)
        if not 200 <= response.code < 300:
            raise WebhookFailed(f"the receiver answered HTTP {response.code}")

    async def _discard(self, response) -> None:
        """Read and drop the answer, within the same timeout, so the connection closes cleanly."""
        reading = response.collect(lambda chunk: None)
        reading.addTimeout(self.timeout_seconds, self.reactor)
        try:
            await reading
        except Exception as error:
            log.info("the webhook answer was not read to its end: {error}", error=error)
