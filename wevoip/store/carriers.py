"""Carriers and their gateways: where an ISP's calls leave and arrive."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from wevoip.store import fields
from wevoip.store.database import Row, Tx
from wevoip.store.errors import Invalid
from wevoip.store.notify import EVERYTHING, publish

GATEWAYS_CHANNEL = "sip_gateways"  # "*" whenever which addresses are trunks may have changed
from wevoip.store.rows import checked, fetch_page, fetch_row, insert_row, update_row


def _optional_count(field: str, value: Any) -> int | None:
    return None if value is None else fields.count(field, value)


def _host(field: str, value: Any) -> str:
    value = fields.text(field, value, max_length=253).lower()
    try:
        return str(ipaddress.ip_address(value.strip("[]")))
    except ValueError:
        return fields.dns_name(field, value)


def _source_ips(field: str, value: Any) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    if not isinstance(value, list) or len(value) > 64:
        raise Invalid(field, "must be a list of up to 64 addresses or networks")
    try:
        return [ipaddress.ip_network(item, strict=False) for item in value]
    except (TypeError, ValueError):
        raise Invalid(field, "holds something that is not an IP address or network") from None


def _prefix(field: str, value: Any) -> str:
    value = fields.text(field, value, max_length=16, required=False)
    if not re.fullmatch(r"\+?[0-9]{0,15}", value):
        raise Invalid(field, "must be digits, optionally after '+'")
    return value


_CARRIER = {
    "name": lambda field, value: fields.text(field, value, max_length=100),
    "enabled": fields.flag,
    "max_concurrent_calls": _optional_count,
}
_GATEWAY = {
    "host": _host,
    "port": lambda field, value: _port(field, value),
    "transport": lambda field, value: fields.one_of(field, value, ("udp", "tcp", "tls")),
    "strip_digits": lambda field, value: fields.count(field, value, maximum=15),
    "prefix": _prefix,
    "ip_auth": fields.flag,
    "source_ips": _source_ips,
    "priority": lambda field, value: fields.count(field, value, maximum=1000),
    "enabled": fields.flag,
}


def _port(field: str, value: Any) -> int:
    if fields.count(field, value, maximum=65535) == 0:
        raise Invalid(field, "must be from 1 to 65535")
    return value


async def create_carrier(tx: Tx, isp_id: int, *, name: str, **details: Any) -> Row:
    values = checked({"name": name, **details}, _CARRIER, "carrier")
    return await insert_row(tx, "carriers", {"isp_id": isp_id, **values})


async def get_carrier(tx: Tx, isp_id: int, carrier_id: int) -> Row:
    return await fetch_row(tx, "carriers", {"isp_id": isp_id, "id": carrier_id}, "carrier")


async def list_carriers(tx: Tx, isp_id: int, *, limit: int = 100, offset: int = 0) -> list[Row]:
    return await fetch_page(tx, "carriers", {"isp_id": isp_id}, limit, offset)


async def update_carrier(tx: Tx, isp_id: int, carrier_id: int, **changes: Any) -> Row:
    row = await update_row(tx, "carriers", {"isp_id": isp_id, "id": carrier_id}, "carrier",
                           changes, _CARRIER)
    await publish(tx, GATEWAYS_CHANNEL, EVERYTHING)
    return row


async def create_gateway(tx: Tx, isp_id: int, carrier_id: int, *, host: str, **details: Any) -> Row:
    await get_carrier(tx, isp_id, carrier_id)
    values = checked({"host": host, **details}, _GATEWAY, "gateway")
    if "source_ips" not in values and values.get("ip_auth", True):
        values["source_ips"] = _implied_source(values["host"])
    row = await insert_row(tx, "gateways", {"isp_id": isp_id, "carrier_id": carrier_id, **values})
    await publish(tx, GATEWAYS_CHANNEL, EVERYTHING)
    return row


def _implied_source(host: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """A gateway given by IP address authenticates from that address unless told otherwise."""
    try:
        return [ipaddress.ip_network(host)]
    except ValueError:
        return []


async def get_gateway(tx: Tx, isp_id: int, gateway_id: int) -> Row:
    return await fetch_row(tx, "gateways", {"isp_id": isp_id, "id": gateway_id}, "gateway")


async def list_gateways(tx: Tx, isp_id: int, carrier_id: int, *, limit: int = 100,
                        offset: int = 0) -> list[Row]:
    """A carrier's gateways; a carrier that is missing or another ISP's is NotFound, not an
    empty list, as for every object nested under another."""
    await get_carrier(tx, isp_id, carrier_id)
    return await fetch_page(tx, "gateways", {"isp_id": isp_id, "carrier_id": carrier_id}, limit, offset)


async def update_gateway(tx: Tx, isp_id: int, gateway_id: int, **changes: Any) -> Row:
    row = await update_row(tx, "gateways", {"isp_id": isp_id, "id": gateway_id}, "gateway",
                           changes, _GATEWAY)
    await publish(tx, GATEWAYS_CHANNEL, EVERYTHING)
    return row


async def gateways_for_source(tx: Tx, address: str) -> list[Row]:
    """The SIP stack's question: is this packet's source one of an ISP's trunks?"""
    return await tx.fetch(
        "select g.* from gateways g join carriers c on c.id = g.carrier_id "
        "where g.enabled and c.enabled and g.ip_auth and %s::inet <<= any(g.source_ips) "
        "order by g.priority, g.id", (address,))
