"""The web listeners, serving the Klein apps the node is built with."""

from __future__ import annotations

from twisted.web.server import Site

from wevoip.config import Listen
from wevoip.listeners import Listeners
from wevoip.netservice import StreamListenService


def web_service(reactor, listens: tuple[Listen, ...], resource, listeners: Listeners) -> StreamListenService:
    site = Site(resource)
    site.displayTracebacks = False
    return StreamListenService(reactor, "web", "http", "web.http", listens, site, listeners)
