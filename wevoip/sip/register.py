"""
The REGISTER handler: a parsed request and where it came from in, a response out.

It strings the pieces together: authentication (and with it the tenant), the check that a
subscriber registers only its own address of record, the registrar's decision, and the
store's commit before the 200 goes out. Everything a phone sent is checked here before
the registrar sees it, so a bad Contact or Expires is a 400 that names the header.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Protocol

from twisted.logger import Logger

from wevoip.sip.auth import Asked, Authenticator, Decision
from wevoip.sip.errors import ParseError
from wevoip.sip.headers import parse_addresses, parse_count
from wevoip.sip.location import Location
from wevoip.sip.message import Request, Response, response_to
from wevoip.sip.registrar import ContactRequest, RegisterRequest, Registrar, contact_value
from wevoip.sip.tags import random_hex
from wevoip.store.errors import StoreUnavailable

log = Logger(namespace="wevoip.sip.register")

SERVER = "WeVoIP"


class Origin(Protocol):
    """What the handler needs of the transport's `Flow`: where the request came from."""

    transport: str                  # udp, tcp, tls, ws, wss
    remote: tuple[str, int]         # the source after NAT
    local: tuple[str, int]          # our socket it arrived on

    @property
    def reliable(self) -> bool: ...


def hostport(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def asked_of(request: Request, source: Origin) -> Asked:
    """What authentication needs from a request (credentials header chosen by method)."""
    header = "Authorization" if request.method == "REGISTER" else "Proxy-Authorization"
    from_uri, to_uri = request.from_.uri, request.to.uri
    return Asked(method=request.method, request_host=request.uri.host_bare,
                 from_user=from_uri.user or "", from_host=from_uri.host_bare,
                 to_user=to_uri.user or "", to_host=to_uri.host_bare,
                 authorization=tuple(request.headers.get_all(header)), source=source.remote[0],
                 user_agent=request.headers.get("User-Agent") or "")


def answer(request: Request, decision: Decision) -> Response:
    response = reply(request, decision.status, decision.reason)
    for name, value in decision.headers or ():
        response.headers.add(name, value)
    return response


def reply(request: Request, status: int, reason: str | None = None) -> Response:
    response = response_to(request, status, reason, to_tag=random_hex(5))
    response.headers.add("Server", SERVER)
    return response


class RegisterHandler:
    def __init__(self, authenticator: Authenticator, registrar: Registrar, location: Location):
        self.authenticator = authenticator
        self.registrar = registrar
        self.location = location

    async def handle(self, request: Request, source: Origin) -> Response | None:
        """None means: say nothing (the source has just been banned)."""
        decision = await self.authenticator.authenticate(asked_of(request, source))
        if decision.drop:
            return None
        if decision.subscriber is None:
            return answer(request, decision)
        subscriber = decision.subscriber
        if (request.to.uri.user or "") != subscriber.username:
            return reply(request, 403, "Forbidden (To is not the authenticated user)")
        try:
            register = self._request(request, source, subscriber)
        except ParseError as error:
            return reply(request, 400, error.reason)
        outcome = self.registrar.register(register)
        if outcome.status != 200:
            response = reply(request, outcome.status, outcome.reason)
            if outcome.min_expires is not None:
                response.headers.add("Min-Expires", str(outcome.min_expires))
            return response
        try:
            await self.location.persist(subscriber.isp_id, subscriber.tenant_id, subscriber.subscriber_id,
                                        outcome, _text(request.headers.get("User-Agent") or "")[:256])
        except StoreUnavailable as error:
            response = reply(request, 503, "Service Unavailable: database unavailable")
            response.headers.add("Retry-After", str(error.retry_after))
            return response
        except Exception:
            log.failure("registration of {user}@{domain} not saved", user=subscriber.username,
                        domain=subscriber.domain)
            return reply(request, 500, "Registration not saved")
        for binding in outcome.saved:
            if binding.flow is not None:
                binding.flow.hold_until(binding.expires_at)
        response = reply(request, 200)
        now = self.registrar.clock.seconds()
        for binding in outcome.contacts:
            response.headers.add("Contact", contact_value(binding, now))
        return response

    def _request(self, request: Request, source: Origin, subscriber) -> RegisterRequest:
        if _text(request.call_id) != request.call_id:
            raise ParseError("Call-ID is not UTF-8")
        values = request.headers.get_all("Contact")
        wildcard = [v.strip() for v in values] == ["*"]
        contacts = () if wildcard or not values else tuple(
            _contact(address) for address in parse_addresses(values))
        expires = request.headers.get("Expires")
        return RegisterRequest(
            isp_id=subscriber.isp_id, tenant_id=subscriber.tenant_id,
            subscriber_id=subscriber.subscriber_id, call_id=request.call_id[:256],
            cseq=request.cseq.number,
            expires=None if expires is None else parse_count(expires, "Expires"),
            contacts=contacts, wildcard=wildcard, source=hostport(source.remote),
            transport=source.transport, local=hostport(source.local),
            flow=source if source.reliable else None)


def _text(value: str) -> str:
    """Bytes that are not UTF-8 (kept as surrogates by the parser) as U+FFFD: the store
    takes only UTF-8, and a User-Agent is only shown, never compared."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _contact(address) -> ContactRequest:
    uri = str(address.uri)
    if address.uri.scheme not in ("sip", "sips") or len(uri) > 1024:
        raise ParseError("Contact must be a sip: or sips: URI of at most 1024 characters")
    expires = address.param("expires")
    q = address.param("q")
    try:
        quality = None if q is None else Decimal(q)
    except InvalidOperation:
        quality = Decimal(-1)
    if quality is not None and not Decimal(0) <= quality <= Decimal(1):
        raise ParseError("Contact q must be from 0 to 1")
    reg_id = address.param("reg-id")
    return ContactRequest(
        uri=uri, expires=None if expires is None else parse_count(expires, "Contact expires"),
        q=None if quality is None else int(quality * 1000),
        instance=(address.param("+sip.instance") or "")[:256],
        reg_id=parse_count(reg_id, "Contact reg-id") if reg_id is not None else 0)
