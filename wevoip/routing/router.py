"""
Where a call goes: a subscriber of the same tenant, a number on-net, or out through a carrier.

The order follows the product: an extension of the caller's tenant rings that subscriber;
otherwise the dialled digits are made E.164 by the ISP's dialplan; a number held by any
tenant of the same ISP (a DID: a subscriber's own number is one of its tenant's) stays on-net; anything
else leaves through the ISP's gateways in priority order (or the order least-cost routing
gives), each with its own strip/prefix rule, showing the caller's DID as identity.
Calls from a carrier's address reach the tenant destination the dialled DID points at.

Decisions only: no SIP here. A refusal carries the SIP status and reason the B2BUA sends.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Sequence, Union

from wevoip.routing.cache import RoutingCache
from wevoip.routing.dialplan import Rule, denormalise, normalise
from wevoip.routing.numbering import caller_of
from wevoip.store.database import Tx
from wevoip.store.errors import NotFound

_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_TRUNK_NUMBER = re.compile(r"\+?([1-9][0-9]{1,14})")


@dataclass(frozen=True)
class Origin:
    """The calling subscriber, and the number it shows (its own, else its tenant's pilot; only
    a number its tenant holds as a DID, else None)."""

    isp_id: int
    customer_id: int
    tenant_id: int
    subscriber_id: int
    e164: str | None


@dataclass(frozen=True)
class Local:
    """Ring a subscriber's registered contacts."""

    isp_id: int
    customer_id: int
    tenant_id: int
    subscriber_id: int
    e164: str | None
    # The DID the call came to, when it came to one: billing's inbound minutes are its.
    did_id: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Feature:
    """A DID routed to a feature plugin (IVR, voicemail, echo test, ...)."""

    isp_id: int
    customer_id: int
    tenant_id: int
    feature: str
    e164: str | None    # None for a feature code dialled
    # The DID the call came to, when it came to one: billing's inbound minutes are its.
    did_id: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Gateway:
    carrier_id: int
    gateway_id: int
    host: str
    port: int | None    # None: a gateway by DNS name whose port SRV gives
    transport: str
    number: str


@dataclass(frozen=True)
class Outbound:
    """Try each gateway in turn; `caller_id` is the E.164 identity to present."""

    e164: str | None    # None for a feature code dialled
    gateways: tuple[Gateway, ...]
    caller_id: str | None


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str


Route = Union[Local, Feature, Outbound, Refusal]
READ_THROUGH = RoutingCache()   # never attached: keeps nothing


async def origin_of(tx: Tx, isp_id: int, subscriber_id: int, *, cache: RoutingCache = READ_THROUGH) -> Origin:
    row = await cache.caller_identity(tx, isp_id, subscriber_id)
    if row is None:
        raise NotFound("subscriber")
    return Origin(isp_id, row["customer_id"], row["tenant_id"], subscriber_id, row["e164"])


async def route_from_subscriber(tx: Tx, origin: Origin, dialled: str, rules: Sequence[Rule], *,
                                carrier_order: Sequence[int] | None = None,
                                cache: RoutingCache = READ_THROUGH) -> Route:
    dialled = dialled.strip()
    extension = await cache.subscriber_by_extension(tx, origin.isp_id, origin.tenant_id, dialled) \
        if dialled.isdigit() else None
    if extension is not None:
        return Local(origin.isp_id, origin.customer_id, origin.tenant_id, extension["id"], extension["e164"])
    e164 = dialled if _E164.fullmatch(dialled) else normalise(dialled, list(rules), caller_of(origin.e164))
    if e164 is None:
        return Refusal(484, "Address Incomplete: the dialplan makes no E.164 number of it")
    on_net = await _on_net(tx, origin.isp_id, e164, cache)
    if on_net is not None:
        return on_net
    gateways = _ordered(await cache.outbound_gateways(tx, origin.isp_id), carrier_order)
    if not gateways:
        return Refusal(503, "No carrier route to this destination")
    return Outbound(e164, tuple(_gateway(row, e164) for row in gateways), origin.e164)


async def route_from_trunk(tx: Tx, source: str, number: str, *,
                           cache: RoutingCache = READ_THROUGH) -> tuple[int | None, Route]:
    """The ISP the call belongs to (None when the source is no gateway) and where it goes.

    Carriers send the called number with or without '+'; it is taken as E.164 either way.
    """
    try:
        address = str(ipaddress.ip_address(source))
    except ValueError:
        return None, Refusal(403, "Forbidden: not a carrier address")
    isp_ids = await cache.trunk_isps(tx, address)
    if not isp_ids:
        return None, Refusal(403, "Forbidden: not a carrier address")
    match = _TRUNK_NUMBER.fullmatch(number.strip())
    if match is None:
        return isp_ids[0], Refusal(404, "Not Found: the called number is not E.164")
    e164 = "+" + match.group(1)
    for isp_id in isp_ids:
        route = await _on_net(tx, isp_id, e164, cache)
        if route is not None:
            return isp_id, route
    return isp_ids[0], Refusal(404, "Not Found: no such number here")


async def _on_net(tx: Tx, isp_id: int, e164: str, cache: RoutingCache) -> Route | None:
    held = await cache.local_number(tx, isp_id, e164)
    if held is None:
        return None
    if held["subscriber_id"] is not None:
        return Local(isp_id, held["customer_id"], held["tenant_id"], held["subscriber_id"], e164, held["id"])
    feature = held.get("feature")
    if feature:
        return Feature(isp_id, held["customer_id"], held["tenant_id"], feature, e164, held["id"])
    return Refusal(480, "Temporarily Unavailable: the number is not routed to anyone")


def _ordered(rows: list[dict], carrier_order: Sequence[int] | None) -> list[dict]:
    """Priority order, or least-cost order by carrier (carriers it leaves out are not used)."""
    if carrier_order is None:
        return rows
    rank = {carrier_id: index for index, carrier_id in enumerate(carrier_order)}
    chosen = [row for row in rows if row["carrier_id"] in rank]
    return sorted(chosen, key=lambda row: (rank[row["carrier_id"]], row["priority"], row["id"]))


def _gateway(row: dict, e164: str) -> Gateway:
    return Gateway(row["carrier_id"], row["id"], row["host"], row["port"], row["transport"],
                   denormalise(e164, row["strip_digits"], row["prefix"]))
