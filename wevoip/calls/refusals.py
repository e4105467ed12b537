"""
Calls refused before they were admitted: which get a record, and which are only counted.

Every refused INVITE that named an ISP (an authenticated subscriber, or a carrier's source
address) is an attempt an operator wants to see: its record (disposition `refused`, the SIP
code and the reason) shows failed routes and a low ASR in the call lists, and a log line
carries its Call-ID, ISP, customer and tenant. An INVITE that named nobody (failed or
missing authentication, an address that is no carrier, a domain not served) gets neither:
anyone on the internet can send those as fast as they like, and a record each would let
them fill the CDR table. They are counted, and the count is logged once a minute while
it grows (and shown in /healthz).

A carrier's address can be spoofed over UDP, so even identified refusals are held to
`per_second` records per ISP (a token bucket, bursts up to that many); beyond it they are
counted as well. 0 records none.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.logger import Logger

log = Logger(namespace="wevoip.calls")

SUMMARY_SECONDS = 60.0


@dataclass
class Attempt:
    """Who a new call turned out to be from, as far as its set-up got."""

    call_id: str
    source: str
    dialled: str
    caller_dialled: str = ""
    isp_id: int | None = None
    customer_id: int | None = None
    tenant_id: int | None = None
    subscriber_id: int | None = None
    carrier_id: int | None = None
    caller_e164: str | None = None
    direction: str = "inbound"


class Refusals:
    def __init__(self, clock, *, per_second: int = 20):
        self.clock = clock
        self.per_second = per_second
        self.unidentified = 0           # refused before anyone was identified, since start
        self.over_limit = 0             # identified, but over the per-ISP rate: counted, not recorded
        self._buckets: dict[int, tuple[float, float]] = {}
        self._summarised_at: float | None = None
        self._summarised = (0, 0)

    def refused_anonymous(self) -> None:
        self.unidentified += 1
        self._summarise()

    def to_record(self, attempt: Attempt, status: int, reason: str) -> bool:
        """Log the refusal of a call that named an ISP; whether its record should be written."""
        if attempt.isp_id is None:
            self.refused_anonymous()
            return False
        log.info("call {call_id} refused {status} {reason}: isp={isp} customer={customer} tenant={tenant}"
                 " subscriber={subscriber} carrier={carrier} from {source} to {dialled}", call_id=attempt.call_id,
                 status=status, reason=reason, isp=attempt.isp_id, customer=attempt.customer_id,
                 tenant=attempt.tenant_id, subscriber=attempt.subscriber_id, carrier=attempt.carrier_id,
                 source=attempt.source, dialled=attempt.dialled)
        if not self._take(attempt.isp_id):
            self.over_limit += 1
            self._summarise()
            return False
        return True

    def _take(self, isp_id: int) -> bool:
        if self.per_second <= 0:
            return False
        now = self.clock.seconds()
        tokens, at = self._buckets.get(isp_id, (float(self.per_second), now))
        tokens = min(float(self.per_second), tokens + (now - at) * self.per_second)
        if tokens < 1:
            self._buckets[isp_id] = (tokens, now)
            return False
        self._buckets[isp_id] = (tokens - 1, now)
        return True

    def _summarise(self) -> None:
        """At most one line a minute, however fast refusals come."""
        now = self.clock.seconds()
        if self._summarised_at is not None and now - self._summarised_at < SUMMARY_SECONDS:
            return
        unidentified, over = self.unidentified - self._summarised[0], self.over_limit - self._summarised[1]
        self._summarised_at, self._summarised = now, (self.unidentified, self.over_limit)
        log.info("{unidentified} calls refused before anyone was identified and {over} refusals over the"
                 " record rate were counted, not recorded, since the last such line ({total} and {over_total}"
                 " since start)", unidentified=unidentified, over=over, total=self.unidentified,
                 over_total=self.over_limit)

    def health(self) -> dict[str, int]:
        return {"refused_unidentified": self.unidentified, "refused_not_recorded": self.over_limit}
