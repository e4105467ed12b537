"""A small real HTTP server on loopback that takes webhook events and checks their signature."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from twisted.internet import defer, reactor
from twisted.web import resource, server


def verify(secret: str, header: str, body: bytes, *, now: float, tolerance: float = 300) -> bool:
    """What a receiver does with WeVoIP-Signature: recompute, compare in constant time, refuse old ones."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    if "t" not in parts or "v1" not in parts or not parts["t"].isdigit():
        return False
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(now - int(parts["t"])) <= tolerance


class _Endpoint(resource.Resource):
    isLeaf = True

    def __init__(self, receiver: "WebhookReceiver"):
        super().__init__()
        self.receiver = receiver

    def render_POST(self, request):  # noqa: N802 (twisted.web's name)
        receiver = self.receiver
        body = request.content.read()
        header = (request.getHeader(b"wevoip-signature") or b"").decode()
        if receiver.hang:
            receiver.hung.append(request)
            waiting, receiver.waiting_hung = receiver.waiting_hung, []
            for waiter in waiting:
                waiter.callback(request)
            return server.NOT_DONE_YET
        if not verify(receiver.secret, header, body, now=time.time()):
            request.setResponseCode(401)
            receiver.refused.append(body)
            return b"bad signature"
        request.setResponseCode(receiver.status)
        if receiver.status < 300:
            receiver.events.append({"body": json.loads(body), "event": request.getHeader(b"wevoip-event").decode(),
                                    "delivery": request.getHeader(b"wevoip-delivery").decode()})
            waiting, receiver.waiting = receiver.waiting, []
            for waiter in waiting:
                waiter.callback(None)
        return b"ok"


class WebhookReceiver:
    def __init__(self, secret: str = ""):
        self.secret = secret
        self.status = 200
        self.hang = False
        self.events: list[dict] = []
        self.refused: list[bytes] = []
        self.waiting: list[defer.Deferred] = []
        self.hung: list[server.Request] = []
        self.waiting_hung: list[defer.Deferred] = []
        self.port = reactor.listenTCP(0, server.Site(_Endpoint(self)), interface="127.0.0.1")
        self.url = f"http://127.0.0.1:{self.port.getHost().port}/hooks/wevoip"

    def next_event(self, timeout: float = 10) -> defer.Deferred:
        waiter = defer.Deferred()
        self.waiting.append(waiter)
        return waiter.addTimeout(timeout, reactor)

    def next_hung(self, timeout: float = 10) -> defer.Deferred:
        """The next request kept waiting while `hang` is set."""
        waiter = defer.Deferred()
        self.waiting_hung.append(waiter)
        return waiter.addTimeout(timeout, reactor)

    def release(self) -> None:
        """Answer the requests kept waiting, at last, with 200."""
        self.hang = False
        hung, self.hung = self.hung, []
        for request in hung:
            request.write(b"ok")
            request.finish()

    def close(self):
        return self.port.stopListening()
