"""
The node: one ordered tree of services in one reactor.

Children start in the order they are added and stop in the reverse order, each waiting for
the one before: listeners close first, then the store finishes its queries and shuts the
database down. Twisted's MultiService would stop them all at once.
"""

from __future__ import annotations

import datetime
import os
from typing import Callable, Mapping

from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from wevoip import manhole
from wevoip.billing.recurring import BillingTimer
from wevoip.calls.service import CallService
from wevoip.config import Config
from wevoip.connections import ConnectionGate, descriptor_limit, open_descriptors
from wevoip.firstrun import ensure_platform_admin
from wevoip.interfaces import ICallApplication, IDialplanPreset
from wevoip.listeners import Listeners
from wevoip.mail import NoRelay, SmtpSender
from wevoip.media.relay import InProcessRelay
from wevoip.media.webrtc.gateway import WebRtcGateway
from wevoip.netservice import StreamListenService
from wevoip.outbox import OutboxDrainer
from wevoip.plugins import discover
from wevoip.resolver import make_resolver
from wevoip.sip.access import SipAccess
from wevoip.sip.gatewaydns import GatewayResolver
from wevoip.sip.locate import Locator
from wevoip.sip.service import SipService
from wevoip.store import carriers, outbox
from wevoip.store.routing import unheld_numbers
from wevoip.store.service import StoreService
from wevoip.web.api.routes import Services
from wevoip.web.console.housekeeping import ConsoleHousekeeping
from wevoip.web.root import build_web_app
from wevoip.web.service import web_service
from wevoip.webhooks import WebhookSender

log = Logger(namespace="wevoip")


class WeVoIPService(MultiService):
    def __init__(self, reactor, config: Config, *, environ: Mapping[str, str] = os.environ,
                 on_fatal: Callable[[Failure], None] | None = None):
        super().__init__()
        self.reactor = reactor
        self.config = config
        self.environ = environ
        self.on_fatal = on_fatal
        self.listeners = Listeners()
        self.ready: defer.Deferred[None] = defer.Deferred()
        self.is_ready = False
        self.store = StoreService(reactor, config)
        self.store.setServiceParent(self)
        self.sip_access = SipAccess(reactor, config, self.store)
        self.sip_access.setServiceParent(self)
        self.descriptors = descriptor_limit()
        self.sip = SipService(reactor, config, self.listeners, gate=self.sip_access.gate,
                              descriptors=self.descriptors)
        self.sip_access.attach(self.sip)
        self.sip.setServiceParent(self)
        BillingTimer(reactor, self.store.when_ready, config.node.name,
                     interval_seconds=config.billing.recurring_interval_seconds,
                     heartbeat_seconds=config.billing.heartbeat_seconds,
                     dead_node_seconds=config.billing.dead_node_seconds).setServiceParent(self)
        self.dialplan_presets = discover(IDialplanPreset, config.plugins.directories)
        self.media = InProcessRelay(reactor, config.media)
        self.media.setServiceParent(self)
        self.call_applications = discover(ICallApplication, config.plugins.directories)
        self.gateway = WebRtcGateway(reactor, self.media,
                                     consent_timeout=config.media.webrtc_consent_timeout_ms / 1000,
                                     setup_timeout=config.media.webrtc_setup_timeout_ms / 1000)
        resolver = make_resolver(reactor, config.dns)
        locator = Locator(resolver)
        self.gateway_dns = GatewayResolver(reactor, self.store.when_ready, locator,
                                           floor=config.dns.gateway_ttl_floor_seconds,
                                           ceiling=config.dns.gateway_ttl_ceiling_seconds)
        self.gateway_dns.setServiceParent(self)
        self.calls = CallService(reactor, config, self.store, self.sip, self.sip_access, self.dialplan_presets,
                                 relay=self.gateway, ports=self.media.pool,
                                 applications=self.call_applications, locator=locator)
        self.calls.setServiceParent(self)
        web_app = build_web_app(self.store, self.health, config, reactor,
                                Services(self.dialplan_presets, resolver,
                                         self.listeners, self.gateway, self.calls,
                                         self.calls.applications.found, config.web.public_url))
        limits = config.connections
        self.web_gate = ConnectionGate(reactor, "web", total=limits.web_max, per_source=limits.web_max_per_source,
                                       ceiling=self.descriptors - limits.reserved_descriptors)
        web_service(reactor, config.web.http, web_app.resource(), self.listeners, gate=self.web_gate,
                    idle_seconds=limits.web_idle_seconds,
                    header_seconds=limits.web_header_seconds).setServiceParent(self)
        self._warn_unreachable_caps()
        self.namespace = {"node": self, "config": config, "store": self.store,
                          "listeners": self.listeners, "reactor": reactor, "sip": self.sip, "calls": self.calls,
                          "media": self.media, "gateway": self.gateway,
                          "sip_defence": self.sip_access.defence, "registrar": self.sip_access.registrar,
                          "sip_access": self.sip_access}
        manhole_service = self._manhole()
        if manhole_service is not None:
            manhole_service.setServiceParent(self)

    def _warn_unreachable_caps(self) -> None:
        limits = self.config.connections
        log.info("open-file limit {limit}: SIP accepts below descriptor {sip}, the web below {web}",
                 limit=self.descriptors, sip=self.sip.connection_gate.ceiling, web=self.web_gate.ceiling)
        if self.sip.connection_gate.ceiling < limits.sip_max:
            log.warn("connections.sip_max ({cap}) cannot be reached under the open-file limit ({limit}); "
                     "SIP stops at descriptor {ceiling}: raise the limit (LimitNOFILE) to serve more",
                     cap=limits.sip_max, limit=self.descriptors, ceiling=self.sip.connection_gate.ceiling)

    def _manhole(self) -> Service | None:
        settings = self.config.manhole
        if settings.listen is None or settings.authorized_keys is None \
                or not manhole.manhole_enabled(str(settings.authorized_keys)):
            log.info("manhole disabled: no manhole.listen or no authorized_keys file")
            return None
        host_key = manhole.load_or_create_host_key(str(self.config.node.data_dir / "manhole_host_key"))
        factory = manhole.manhole_factory(self.namespace, str(settings.authorized_keys), host_key)
        return StreamListenService(self.reactor, "manhole", "ssh", "manhole.listen",
                                   (settings.listen,), factory, self.listeners)

    def startService(self) -> None:  # noqa: N802 (Twisted's name)
        super().startService()
        started = self.store.when_ready()
        started.addCallback(lambda database: defer.Deferred.fromCoroutine(self._start_on(database)))
        started.addCallback(self._started)
        started.addErrback(self._fatal)

    async def _start_on(self, database) -> None:
        """What needs the store: the first-run admin, then the outbox drainers for mail and
        webhooks (added last, so they stop first), woken by any node's enqueue through the
        notifier, and the sweeping of expired console sessions."""
        await ensure_platform_admin(self.reactor, database, self.environ)
        await self.store.notifier.subscribe(carriers.GATEWAYS_CHANNEL, self.gateway_dns.on_notify)
        for row in await database.transact(unheld_numbers):
            log.warn("ISP {isp_id}: {count} subscriber(s) have a number their tenant does not hold as a DID; "
                     "carriers are not shown it: add it to the inventory and allocate it, or change it",
                     isp_id=row["isp_id"], count=row["subscribers"])
        webhooks = WebhookSender(self.reactor, database, timeout_seconds=self.config.webhooks.timeout_seconds)
        # A webhook's send waits for the answer, then for its body: twice the timeout.
        drainers = [OutboxDrainer(self.reactor, database, "webhook", webhooks.send,
                                  max_attempts=self.config.webhooks.max_attempts,
                                  send_timeout=2 * self.config.webhooks.timeout_seconds + 5)]
        if self.config.mail.relay_host:
            drainers.insert(0, OutboxDrainer(self.reactor, database, "mail",
                                             SmtpSender(self.reactor, self.config.mail, database).send,
                                             send_timeout=self.config.mail.timeout_seconds))
        else:
            no_relay = NoRelay(database)
            no_relay.announce()
            await self.store.notifier.subscribe(outbox.CHANNEL, no_relay.on_notify)
        for drainer in drainers:
            await self.store.notifier.subscribe(outbox.CHANNEL, drainer.on_notify)
            drainer.setServiceParent(self)
        window = datetime.timedelta(minutes=self.config.web.login_window_minutes)
        ConsoleHousekeeping(self.reactor, database, window).setServiceParent(self)

    def _started(self, _) -> None:
        self.is_ready = True
        log.info("WeVoIP node {name} is ready", name=self.config.node.name)
        self.ready.callback(None)

    def _fatal(self, failure: Failure) -> None:
        self.ready.errback(failure)
        self.ready.addErrback(lambda _: None)
        if not self.running:
            # SIGTERM came while the node was still starting: a stop asked for, not a failure.
            log.info("WeVoIP node {name} stopped before it was ready", name=self.config.node.name)
            return
        log.critical("WeVoIP cannot start: {error}", error=failure.getErrorMessage())
        if self.on_fatal is not None:
            self.on_fatal(failure)

    def stopService(self):  # noqa: N802 (Twisted's name)
        Service.stopService(self)
        return defer.Deferred.fromCoroutine(self._stop_in_reverse())

    async def _stop_in_reverse(self) -> None:
        for child in reversed(list(self)):
            if child.running:
                try:
                    await defer.maybeDeferred(child.stopService)
                except Exception:
                    log.failure("stopping {name} failed", name=child.name)
        log.info("WeVoIP node {name} stopped", name=self.config.node.name)

    async def health(self) -> dict:
        store = await self.store.health()
        ready = self.is_ready
        if not ready:
            status = "starting"
        else:
            status = "ok" if store["status"] == "ok" else "degraded"
        retry = {"retry_after": store["retry_after"]} if "retry_after" in store else {}
        return {"status": status, "ready": ready, "node": self.config.node.name, "store": store, **retry,
                "calls": self.calls.health(), "listeners": [bound.as_json() for bound in self.listeners.all()],
                "connections": {"sip": self.sip.report(), "web": self.web_gate.report(),
                                "descriptors": {"limit": self.descriptors, "open": open_descriptors(),
                                                "reserved": self.config.connections.reserved_descriptors}}}
