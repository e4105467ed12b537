"""
What a call's set-up decided and what its record is written from, shared by the set-up
(`b2bua`), the per-call adapter (`session`) and the calls the server answers
(`applications`) without any of them importing another.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from twisted.internet import defer
from twisted.logger import Logger

from wevoip.calls.actions import CallRecord
from wevoip.routing.router import Gateway, Route
from wevoip.sip.flow import Flow
from wevoip.sip.uri import Address, URI

log = Logger(namespace="wevoip.calls")


@dataclass(frozen=True)
class Target:
    """Where a B leg goes: its Request-URI, To and From, and the way there."""

    uri: URI
    to: Address
    from_: Address
    transport: str
    host: str
    port: int | None    # None: a gateway by DNS name whose port SRV gives
    flow: Flow | None = None        # a registered phone's own connection
    gateway: Gateway | None = None
    identity: str | None = None     # P-Asserted-Identity for a carrier
    route: str | None = None        # through the node holding the phone's connection (sip/edge.py)



class Durable:
    """Whether a call's admission has been committed. The set-up sends the callee's INVITE
    as soon as the admission is decided, while its COMMIT is still on the way
    (`Database.decide`): what writes to the call's rows after that (the answer's mark, a
    failover's count, the call's record) waits for this, since until the commit those
    rows are not there to be found."""

    def __init__(self, committed: defer.Deferred | None = None):
        self.ok: bool | None = True if committed is None else None
        self._waiting: list[defer.Deferred[bool]] = []
        if committed is not None:
            committed.addCallbacks(lambda _: self._settle(True), self._failed)

    def _failed(self, failure) -> None:
        log.failure("committing a call's admission failed", failure)
        self._settle(False)

    def _settle(self, ok: bool) -> None:
        self.ok = ok
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            waiter.callback(ok)

    def wait(self) -> defer.Deferred[bool]:
        """A Deferred of its own for each caller (a shared one would hand its result to
        the first only)."""
        if self.ok is not None:
            return defer.succeed(self.ok)
        waiter: defer.Deferred[bool] = defer.Deferred()
        self._waiting.append(waiter)
        return waiter


@dataclass(frozen=True)
class CallFacts:
    """A call's record with who it belongs to: what a CDR is written from."""

    record: CallRecord
    isp_id: int
    customer_id: int
    tenant_id: int
    direction: str
    caller: str
    dialled: str
    callee_e164: str | None
    carrier_id: int | None
    gateway_id: int | None
    call_ids: tuple[str, ...]


@dataclass
class Admitted:
    route: Route
    isp_id: int
    customer_id: int
    tenant_id: int
    direction: str
    active_id: int
    carrier_id: int | None = None
    targets: list[list[Target]] = field(default_factory=list)
    reservation_id: int | None = None
    max_duration_ms: int | None = None
    subscriber_id: int | None = None
    caller_e164: str | None = None
    call_id: str = ""
    durable: Durable = field(default_factory=Durable, repr=False)


def utc_at(ms: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)


_FLOWS = {(True, True): "both", (True, False): "caller_only", (False, True): "callee_only", (False, False): "none"}


def media_flow(media, end) -> str | None:
    """Which ways an answered call's media went, for its record, from the released media
    session ('a' is the caller); None when the call was not answered (early media goes one
    way by nature) or nothing measured it."""
    if media is None or end.answered_at is None or end.disposition != "answered":
        return None
    flow = media.flow()
    return None if flow is None else _FLOWS[flow.a_to_b > 0, flow.b_to_a > 0]
