"""
The SIP service of the node: one core, one flow table, and a listener per configured
address of every transport (sip.udp, sip.tcp, sip.tls, sip.ws, sip.wss).

Listeners bind in privilegedStartService like every other listener of the node, so a taken
port stops start-up with a ConfigError naming the key (`sip.udp[0]`), and each bound socket
is registered in `Listeners` for /healthz and the start-up log.

The stream listeners accept through one `ConnectionGate` (wevoip/connections.py: caps per
source and in total, the descriptor ceiling), outside TLS, so a refused connection costs no
TLS state; `lifetimes` times every accepted connection's set-up and idleness, and makes room
under the total cap by closing the connection idle longest that carries nothing.
"""

from __future__ import annotations

from twisted.application.service import MultiService
from twisted.protocols.tls import TLSMemoryBIOFactory

from wevoip.config import Config, ConfigError, Listen
from wevoip.connections import ConnectionGate, GatedFactory, descriptor_limit
from wevoip.listeners import Listeners
from wevoip.netservice import StreamListenService
from wevoip.sip.certificates import server_tls_options
from wevoip.sip.core import SipCore
from wevoip.sip.flow import FlowTable
from wevoip.sip.lifetime import Lifetimes, Timeouts
from wevoip.sip.transport import SipDatagramProtocol, SipStreamFactory
from wevoip.sip.transport_ws import SipWebSocketFactory


def sip_descriptor_ceiling(config: Config, descriptors: int) -> int:
    """The descriptor number at which SIP stops accepting: the reserve and the web's share
    (its cap, at most a quarter of what is left) stay free."""
    available = descriptors - config.connections.reserved_descriptors
    return available - min(config.connections.web_max, max(available, 0) // 4)


class SipService(MultiService):
    def __init__(self, reactor, config: Config, listeners: Listeners, *, gate=None,
                 descriptors: int | None = None):
        """`descriptors`: RLIMIT_NOFILE, read (and raised) at start when not given."""
        super().__init__()
        self.setName("sip")
        self.reactor = reactor
        self.flows = FlowTable()
        self.core = SipCore(reactor, self.flows, gate=gate, advertise=config.sip.advertise)
        sip = config.sip
        limits = config.connections
        self.lifetimes = Lifetimes(reactor, Timeouts(idle=limits.idle_seconds,
                                                     tls_handshake=limits.tls_handshake_seconds,
                                                     ws_upgrade=limits.ws_upgrade_seconds))
        descriptors = descriptor_limit() if descriptors is None else descriptors
        self.connection_gate = ConnectionGate(reactor, "SIP", total=limits.sip_max, per_source=limits.sip_max_per_source,
                                   ceiling=sip_descriptor_ceiling(config, descriptors),
                                   exempt=config.sip_security.trusted_networks,
                                   make_room=self.lifetimes.make_room)
        self._tls_options = None
        if sip.tls or sip.wss:
            self._tls_options = server_tls_options(config.node.data_dir, sip.tls_certificate, sip.tls_private_key)
        factories = {name: SipStreamFactory(self.core, self.flows, name, lifetimes=self.lifetimes)
                     for name in ("tcp", "tls")}
        factories.update({name: SipWebSocketFactory(self.core, self.flows, name, self.lifetimes)
                          for name in ("ws", "wss")})
        for name in ("tls", "wss"):
            if self._tls_options is not None:
                factories[name] = TLSMemoryBIOFactory(self._tls_options, False, factories[name])
        kinds = [("udp", sip.udp, None, self._listen_udp)] + [
            (name, getattr(sip, name), GatedFactory(factories[name], self.connection_gate, name), None)
            for name in ("tcp", "tls", "ws", "wss")]
        for transport, listens, factory, bind in kinds:
            if listens:
                listener = StreamListenService(reactor, "sip", transport, f"sip.{transport}", listens, factory,
                                               listeners, bind=bind)
                listener.setName(f"sip-{transport}")
                listener.setServiceParent(self)

    def privilegedStartService(self) -> None:  # noqa: N802 (Twisted's name)
        """All listeners or none: a later one failing unbinds the earlier ones."""
        try:
            super().privilegedStartService()
        except ConfigError:
            for listener in self:
                listener.stopService()
            raise

    def _listen_udp(self, listen: Listen):
        return self.reactor.listenUDP(listen.port, SipDatagramProtocol(self.core, self.flows),
                                      interface=listen.host, maxPacketSize=65535)

    def report(self) -> dict:
        """For /healthz: the SIP connections open, refused, and closed by their lifetimes."""
        return {**self.connection_gate.report(), **self.lifetimes.report()}

    def stopService(self):  # noqa: N802 (Twisted's name)
        self.flows.remove_datagram_sockets()
        for flow in self.flows.connections():
            flow.close()
        return super().stopService()
