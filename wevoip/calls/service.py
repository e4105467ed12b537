"""
The calls service of the node: the B2BUA on the SIP core, once the store and SIP access
(digest and registrar) are up. Until then an INVITE gets 503 with Retry-After. The call
applications the configuration enables are required here, so a missing one stops start-up.
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger

from wevoip.calls.applications import Applications
from wevoip.calls.b2bua import METHODS, B2BUA
from wevoip.calls.live import webrtc_calls
from wevoip.calls.facts import CallFacts
from wevoip.calls.records import CallRecords
from wevoip.calls.refusals import Refusals
from wevoip.billing.decks import DeckIndexes
from wevoip.billing.recovery import recover_calls
from wevoip.calls.machine import CallTimers
from wevoip.config import Config
from wevoip.media.endpoint import MediaEndpoint
from wevoip.plugins import PluginError, require
from wevoip.routing.cache import RoutingCache
from wevoip.sip.auth import Decision
from wevoip.sip.core import Incoming
from wevoip.sip.register import asked_of

log = Logger(namespace="wevoip.calls")


class CallService(Service):
    name = "calls"

    def __init__(self, reactor, config: Config, store, sip, access, presets: dict, *, relay=None,
                 ports=None, applications: dict | None = None, locator=None):
        """`relay` anchors calls' media (an IMediaRelay); `ports` is the port pool the
        server's own media endpoints (call applications) take their ports from; `locator`
        finds gateways given by DNS name (RFC 3263)."""
        self.reactor = reactor
        self.locator = locator
        self.config = config
        self.store = store
        self.sip = sip
        self.access = access
        self.relay = relay
        self.ports = ports
        self.rules = tuple(require(presets, [config.calls.dialplan_preset], "dialplan preset")[0].rules())
        enabled = require(applications or {}, config.calls.applications, "call application")
        for code, name in config.calls.feature_codes:
            if name not in config.calls.applications:
                raise PluginError(f"feature code {code!r} names {name!r}, which calls.applications does not enable")
        self.applications = Applications({application.name: application for application in enabled},
                                         self._endpoint, dict(config.calls.feature_codes))
        self.b2bua: B2BUA | None = None
        self.records: CallRecords | None = None
        self.refusals = Refusals(reactor, per_second=config.calls.refused_records_per_second)
        for method in METHODS:
            sip.core.register(method, self._starting)
        sip.lifetimes.keep_while(self._carries)

    def startService(self) -> None:  # noqa: N802 (Twisted's name)
        super().startService()
        started = self.store.when_ready()
        started.addCallback(lambda database: defer.Deferred.fromCoroutine(self._start(database)))
        started.addErrback(self._failed)

    def _failed(self, failure) -> None:
        """A stop during start-up is no failure; anything else is."""
        if self.running:
            log.failure("the B2BUA could not start", failure)

    async def _start(self, database) -> None:
        """Records this node kept because the database would not take them are written first
        (they know how their calls ended); then calls this node's last run left get their
        records here (billed ones settled by billing's own settlement), before the B2BUA
        admits any; should that fail, the node still takes calls and billing's timer tries
        again."""
        calls = self.config.calls
        longest = self.config.billing.max_call_seconds
        timers = CallTimers(no_answer=calls.no_answer_seconds, max_duration=longest,
                            progress=calls.progress_seconds or None,
                            session_expires=calls.session_expires_seconds or None, min_se=calls.min_se_seconds)
        indexes = DeckIndexes()
        self.records = CallRecords(self.reactor, database, folder=self.config.node.data_dir / "spool" / "records",
                                   indexes=indexes)
        try:
            written = await self.records.replay()
        except Exception:
            log.failure("writing the records this node kept for the database failed")
        else:
            if written:
                log.info("{count} call records this node kept for the database are written", count=written)
        try:
            left = await database.transact(recover_calls, self.config.node.name, None, _retry=True)
        except Exception:
            log.failure("closing the calls this node left when it stopped failed")
        else:
            if left:
                log.info("{count} calls this node left when it stopped are closed", count=len(left))
        await indexes.attach(self.store.notifier)
        routes = RoutingCache()
        await routes.attach(self.store.notifier)
        self.b2bua = B2BUA(self.reactor, self.sip.core, database, node=self.config.node.name,
                           authenticate=self._authenticate, contacts=self.access.registrar.bindings,
                           rules=lambda isp_id: self.rules, timers=timers, on_record=self._record,
                           relay=self.relay, indexes=indexes, max_call_ms=longest * 1000,
                           applications=self.applications, edge=self.access.edge, routes=routes,
                           locator=self.locator, records=self.records, refusals=self.refusals)
        self.b2bua.install()

    def _endpoint(self) -> MediaEndpoint:
        """The server's own end of an application's call, on ports from the relay's pool."""
        media = self.config.media
        return MediaEndpoint(self.reactor, self.ports, media.advertised_address or media.rtp_address)

    def _carries(self, flow) -> bool:
        return self.b2bua is not None and self.b2bua.carries(flow)

    def _starting(self, incoming: Incoming) -> None:
        if incoming.request.method != "ACK":
            incoming.respond(503, "Service Unavailable: starting", headers=(("Retry-After", "5"),))

    async def _authenticate(self, request, flow) -> Decision:
        handler = self.access.handler
        if handler is None:
            return Decision(status=503, reason="Service Unavailable: starting", headers=[("Retry-After", "5")])
        return await handler.authenticator.authenticate(asked_of(request, flow))

    def _record(self, facts: CallFacts) -> None:
        """Every call's facts, with every leg's status, go to the log; its CDR row is written
        by the B2BUA's release."""
        record = facts.record
        log.info("CDR {call_ids} isp={isp} customer={customer} tenant={tenant} {direction} {caller} -> "
                 "{dialled} ({e164}) {disposition} {status} by {by} start={start} answer={answer} end={end} "
                 "carrier={carrier} gateway={gateway} attempts={attempts}", call_ids=",".join(facts.call_ids), isp=facts.isp_id,
                 customer=facts.customer_id, tenant=facts.tenant_id, direction=facts.direction, caller=facts.caller,
                 dialled=facts.dialled, e164=facts.callee_e164, disposition=record.disposition,
                 status=record.status, by=record.hung_up_by, start=record.start_ms, answer=record.answer_ms,
                 end=record.end_ms, carrier=facts.carrier_id, gateway=facts.gateway_id,
                 attempts=",".join(str(attempt.status) for attempt in record.attempts))

    def health(self) -> dict[str, int]:
        """Refusals only counted, and records waiting for the database (0 is what is wanted)."""
        return {**self.refusals.health(),
                "records_waiting": self.records.waiting() if self.records is not None else 0}

    def webrtc_calls(self, isp_id: int, *, customer_id: int | None = None,
                     tenant_id: int | None = None) -> list[dict]:
        """This node's calls in progress with a browser leg (see `calls.live`)."""
        if self.b2bua is None:
            return []
        return webrtc_calls(list(self.b2bua.sessions.values()), self.config.node.name, isp_id,
                            customer_id=customer_id, tenant_id=tenant_id)

    def stopService(self):  # noqa: N802 (Twisted's name)
        super().stopService()
        if self.records is not None:
            self.records.stop()
        if self.b2bua is not None:
            return self.b2bua.settled()
        return defer.succeed(None)
