"""
The SIP service of the node: one core, one flow table, and a listener per configured
address of every transport (sip.udp, sip.tcp, sip.tls, sip.ws, sip.wss).

Listeners bind in privilegedStartService like every other listener of the node, so a taken
port stops start-up with a ConfigError naming the key (`sip.udp[0]`), and each bound socket
is registered in `Listeners` for /healthz and the start-up log.
"""

from __future__ import annotations

from twisted.application.service import MultiService

from wevoip.config import Config, ConfigError, Listen
from wevoip.listeners import Listeners
from wevoip.netservice import StreamListenService
from wevoip.sip.certificates import server_tls_options
from wevoip.sip.core import SipCore
from wevoip.sip.flow import FlowTable
from wevoip.sip.transport import SipDatagramProtocol, SipStreamFactory
from wevoip.sip.transport_ws import websocket_site


class SipService(MultiService):
    def __init__(self, reactor, config: Config, listeners: Listeners, *, gate=None):
        super().__init__()
        self.setName("sip")
        self.reactor = reactor
        self.flows = FlowTable()
        self.core = SipCore(reactor, self.flows, gate=gate, advertise=config.sip.advertise)
        sip = config.sip
        self._tls_options = None
        if sip.tls or sip.wss:
            self._tls_options = server_tls_options(config.node.data_dir, sip.tls_certificate, sip.tls_private_key)
        stream = {name: SipStreamFactory(self.core, self.flows, name) for name in ("tcp", "tls")}
        sites = {name: websocket_site(self.core, self.flows, name) for name in ("ws", "wss")}
        kinds = [("udp", sip.udp, None, self._listen_udp), ("tcp", sip.tcp, stream["tcp"], None),
                 ("tls", sip.tls, stream["tls"], self._listen_tls(stream["tls"])),
                 ("ws", sip.ws, sites["ws"], None), ("wss", sip.wss, sites["wss"], self._listen_tls(sites["wss"]))]
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

    def _listen_tls(self, factory):
        def bind(listen: Listen):
            return self.reactor.listenSSL(listen.port, factory, self._tls_options, interface=listen.host)
        return bind

    def stopService(self):  # noqa: N802 (Twisted's name)
        self.flows.remove_datagram_sockets()
        for flow in self.flows.connections():
            flow.close()
        return super().stopService()
