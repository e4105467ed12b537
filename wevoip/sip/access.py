"""
SIP access for the node: who may talk to it (the gate), who they are (digest), where
they are (the registrar), put together once the store is up.

The defence and the gate exist from construction, so the transports can consult them
from their first packet and the manhole can show the ban list at any time; a REGISTER
that arrives before the store is ready gets 503 with Retry-After.
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.logger import Logger
from zope.interface import implementer

from wevoip.config import Config
from wevoip.interfaces import ISipGate
from wevoip.sip.auth import Authenticator, is_address
from wevoip.sip.defence import Defence, DefencePolicy
from wevoip.sip.digest import DigestAuthority
from wevoip.sip.directory import Directory
from wevoip.sip.edge import EdgeProxy
from wevoip.sip.errors import ParseError
from wevoip.sip.keepalive import OptionsPinger
from wevoip.sip.location import Location
from wevoip.sip.lockout import UserLocks
from wevoip.sip.message import Request, Response
from wevoip.sip.nodes import Nodes
from wevoip.sip.register import Origin, RegisterHandler, reply
from wevoip.sip.registrar import Registrar, RegistrarPolicy
from wevoip.store.errors import quiet_when_unavailable
from wevoip.store.secrets import shared_secret

log = Logger(namespace="wevoip.sip.access")

HOUSEKEEPING_SECONDS = 60


@implementer(ISipGate)
class SipGate:
    """The core's gate, asked before anything is dispatched (junk that did not parse too)."""

    def __init__(self, defence: Defence):
        self.defence = defence

    def admit(self, message, flow) -> bool:
        if isinstance(message, Response):
            return self.defence.admit_response(flow.remote[0])
        if isinstance(message, ParseError):
            headers = message.headers
            agent = (headers.get("User-Agent") or "") if headers is not None else ""
            return self.defence.admit(flow.remote[0], agent)
        return self.defence.admit(flow.remote[0], message.headers.get("User-Agent") or "")


def defence_policy(config: Config) -> DefencePolicy:
    s = config.sip_security
    return DefencePolicy(
        trusted_networks=s.trusted_networks, ban_after_failures=s.ban_after_failures,
        ban_after_user_failures=s.ban_after_user_failures, failure_window=s.failure_window,
        ban_seconds=s.ban_seconds, requests_per_second=s.requests_per_second,
        request_burst=s.request_burst, drop_scanners=s.drop_scanners,
        scanner_user_agents=s.scanner_user_agents, max_tracked=s.max_tracked, max_bans=s.max_bans)


class SipAccess(Service):
    name = "sip-access"

    def __init__(self, reactor, config: Config, store):
        self.reactor = reactor
        self.config = config
        self.store = store
        self.defence = Defence(reactor, defence_policy(config))
        self.gate = SipGate(self.defence)
        r = config.registrar
        self.registrar = Registrar(reactor, RegistrarPolicy(r.min_expires, r.max_expires,
                                                            r.default_expires, r.max_contacts),
                                   node=config.node.name)
        self.digest: DigestAuthority | None = None
        self.location: Location | None = None
        self.locks: UserLocks | None = None
        self.handler: RegisterHandler | None = None
        self.pinger: OptionsPinger | None = None
        self.sip = None
        self.edge: EdgeProxy | None = None
        self._housekeeping = task.LoopingCall(self._tidy)
        self._housekeeping.clock = reactor
        self._started: defer.Deferred | None = None

    def startService(self) -> None:  # noqa: N802 (Twisted's name)
        super().startService()
        self._started = self.store.when_ready()
        self._started.addCallback(lambda database: defer.Deferred.fromCoroutine(self._start(database)))
        self._started.addErrback(self._not_started)

    def _not_started(self, failure) -> None:
        """A store that never came up is the node's failure to report, or a stop during start."""
        if self.running:
            log.failure("SIP access could not start", failure)

    async def _start(self, database) -> None:
        security = self.config.sip_security
        secret = await database.transact(shared_secret, "sip_nonce")
        self.digest = DigestAuthority(self.reactor, secret, nonce_lifetime=security.nonce_lifetime,
                                      tracked_nonces=security.tracked_nonces,
                                      offered=security.digest_algorithms,
                                      md5_user_agents=security.digest_md5_user_agents)
        directory = Directory(database, secret, limit=security.max_tracked)
        location = Location(self.reactor, database, self.registrar, self.config.node.name)
        locks = UserLocks(self.reactor, database, lock_seconds=security.user_lock_seconds,
                          known_days=security.known_source_days, sources_of=self._sources_of)
        await directory.attach(self.store.notifier)
        await location.attach(self.store.notifier)
        await locks.attach(self.store.notifier)
        loaded = await location.load()
        log.info("registrar loaded {count} live bindings", count=loaded)
        locked = await locks.load()
        if locked:
            log.warn("{count} SIP users are locked after password guessing", count=locked)
        self.location = location
        self.locks = locks
        self.handler = RegisterHandler(Authenticator(self.digest, directory, self.defence, locks),
                                       self.registrar, location)
        await self._start_edge(database)
        self._housekeeping.start(HOUSEKEEPING_SECONDS, now=False)
        if self.pinger is not None:
            self.pinger.start()

    async def _start_edge(self, database) -> None:
        """This node's address goes into `nodes` for the others; the flow-token key is shared."""
        if self.edge is None:
            return
        secret = await database.transact(shared_secret, "node_flow")
        nodes = Nodes(database)
        await nodes.attach(self.store.notifier)
        address = self.node_address()
        if address is None:
            log.warn("no UDP listener: phones connected to other nodes over TCP, TLS or WebSocket "
                     "cannot be called from here, nor this node's from them")
            await nodes.load()
        else:
            await nodes.announce(self.config.node.name, address)
        self.edge.start(secret, address, nodes.address, nodes.hosts)

    def node_address(self) -> tuple[str, int] | None:
        """sip.node_address, else the UDP listener's (a wildcard one as sip.advertise, when
        that is an IP address, or loopback)."""
        configured = self.config.sip.node_address
        if configured is not None:
            return configured.host, configured.port
        for family in (4, 6):
            local = self.sip.flows.datagram_local(family)
            if local is None:
                continue
            host, port = local
            if host in ("0.0.0.0", "::"):
                advertise = self.config.sip.advertise
                host = advertise if is_address(advertise) else "127.0.0.1" if family == 4 else "::1"
            return host, port
        return None

    def unlock(self, subscriber_id: int) -> defer.Deferred:
        """For the manhole: lift a SIP user's guessing lock now (fires with whether one held)."""
        return defer.Deferred.fromCoroutine(self.locks.unlock(subscriber_id))

    def locked(self) -> list[dict]:
        """For the manhole: the SIP users locked now, with the seconds left."""
        return self.locks.locks()

    def _sources_of(self, subscriber_id: int) -> list[str]:
        return [binding.source for binding in self.registrar.bindings(subscriber_id)]

    def _tidy(self) -> defer.Deferred:
        self.digest.prune()
        return defer.gatherResults([
            defer.Deferred.fromCoroutine(self.location.sweep()).addErrback(
                quiet_when_unavailable(log, "sweeping expired registrations failed")),
            defer.Deferred.fromCoroutine(self.locks.forget()).addErrback(
                quiet_when_unavailable(log, "forgetting old SIP source addresses failed"))])

    def attach(self, sip) -> None:
        """Serve REGISTER on the node's SIP core, and ping UDP phones through its sockets."""
        self.sip = sip
        self.edge = EdgeProxy(sip.core, self.config.node.name)
        sip.core.register("REGISTER", self._register)
        interval = self.config.registrar.options_ping_interval
        if interval:
            self.pinger = OptionsPinger(self.reactor, self.registrar, self._send_ping, interval)

    def _send_ping(self, binding, data: bytes) -> None:
        host, _, port = binding.source.rpartition(":")
        flow = self.sip.flows.datagram(host.strip("[]"), int(port))
        if flow is not None:
            flow.send(data)

    async def _register(self, incoming) -> None:
        response = await self.register(incoming.request, incoming.flow)
        if response is None:
            incoming.core.transactions.forget_server(incoming.transaction)
        else:
            incoming.send(response)

    async def register(self, request: Request, flow: Origin) -> Response | None:
        """A REGISTER's answer; None: send nothing (the source was just banned)."""
        if self.handler is None:
            response = reply(request, 503, "Starting")
            response.headers.add("Retry-After", "5")
            return response
        return await self.handler.handle(request, flow)

    def stopService(self):  # noqa: N802 (Twisted's name)
        super().stopService()
        if self._housekeeping.running:
            self._housekeeping.stop()
        if self.pinger is not None:
            self.pinger.stop()
        self.registrar.stop()
        if self.location is not None:
            self.location.stop()
