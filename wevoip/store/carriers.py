"""Carriers and their gateways: where an ISP's calls leave and arrive.

A gateway given by IP address is trusted (IP authentication) from that address unless
`source_ips` says otherwise; one given by DNS name, from the addresses its name resolves
to (RFC 3263: SRV then A/AAAA when no port is given, A/AAAA when one is), which the node's
gateway resolver (wevoip/sip/gatewaydns.py) keeps in `gateway_addresses` on the
records' TTL. Every gateway read here says what it trusts and when that was resolved."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from wevoip.store import fields
from wevoip.store.database import Row, Tx
from wevoip.store.errors import Invalid, NotFound
from wevoip.store.notify import EVERYTHING, publish

GATEWAYS_CHANNEL = "sip_gateways"  # "*" whenever which addresses are trunks may have changed
from wevoip.store.rows import check_window, checked, fetch_page, fetch_row, insert_row, update_row


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


DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}


def _port(field: str, value: Any) -> int | None:
    """None: not given, found by SRV for a DNS name (an IP address gets its transport's)."""
    if value is None:
        return None
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
    if values.get("port") is None and is_address(values["host"]):
        values["port"] = DEFAULT_PORTS[values.get("transport", "udp")]
    row = await insert_row(tx, "gateways", {"isp_id": isp_id, "carrier_id": carrier_id, **values})
    await publish(tx, GATEWAYS_CHANNEL, EVERYTHING)
    return await get_gateway(tx, isp_id, row["id"])


def is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _implied_source(host: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """A gateway given by IP address authenticates from that address unless told otherwise."""
    try:
        return [ipaddress.ip_network(host)]
    except ValueError:
        return []


_TRUST_FIELDS = {"host", "port", "transport", "ip_auth", "source_ips"}
_WITH_TRUST = ("select g.*, a.addresses as resolved_addresses, a.resolved_at, a.next_at as next_resolve_at, "
               "a.error as resolve_error from gateways g left join gateway_addresses a on a.gateway_id = g.id ")


def _with_trust(row: Row) -> Row:
    """`trusted_sources`: the networks a call may come from to be this gateway's, as used."""
    resolved = row.pop("resolved_addresses", None) or []
    if not row["ip_auth"]:
        trusted = []
    elif row["source_ips"] or is_address(row["host"]):
        trusted = row["source_ips"]
    else:
        trusted = resolved
    return {**row, "trusted_sources": [str(network) for network in trusted]}


async def get_gateway(tx: Tx, isp_id: int, gateway_id: int) -> Row:
    row = await tx.fetch_one(_WITH_TRUST + "where g.isp_id = %s and g.id = %s", (isp_id, gateway_id))
    if row is None:
        raise NotFound("gateway")
    return _with_trust(row)


async def list_gateways(tx: Tx, isp_id: int, carrier_id: int, *, limit: int = 100,
                        offset: int = 0) -> list[Row]:
    """A carrier's gateways; a carrier that is missing or another ISP's is NotFound, not an
    empty list, as for every object nested under another."""
    check_window(limit, offset)
    await get_carrier(tx, isp_id, carrier_id)
    rows = await tx.fetch(_WITH_TRUST + "where g.isp_id = %s and g.carrier_id = %s order by g.id limit %s offset %s",
                          (isp_id, carrier_id, limit, offset))
    return [_with_trust(row) for row in rows]


async def update_gateway(tx: Tx, isp_id: int, gateway_id: int, **changes: Any) -> Row:
    row = await update_row(tx, "gateways", {"isp_id": isp_id, "id": gateway_id}, "gateway",
                           changes, _GATEWAY)
    if row["port"] is None and is_address(row["host"]):
        await tx.execute("update gateways set port = %s where id = %s", (DEFAULT_PORTS[row["transport"]], row["id"]))
    if _TRUST_FIELDS & set(changes):   # what the old name resolved to is trusted no more; looked up again
        await tx.execute("delete from gateway_addresses where gateway_id = %s", (gateway_id,))
    await publish(tx, GATEWAYS_CHANNEL, EVERYTHING)
    return await get_gateway(tx, isp_id, gateway_id)


async def gateways_for_source(tx: Tx, address: str) -> list[Row]:
    """The SIP stack's question: is this packet's source one of an ISP's trunks? Its own
    source_ips when it has some, else what its name resolved to."""
    return await tx.fetch(
        "select g.* from gateways g join carriers c on c.id = g.carrier_id "
        "left join gateway_addresses a on a.gateway_id = g.id "
        "where g.enabled and c.enabled and g.ip_auth and (%s::inet <<= any(g.source_ips) "
        " or (cardinality(g.source_ips) = 0 and %s::inet <<= any(a.addresses))) "
        "order by g.priority, g.id", (address, address))


# -- the gateway resolver's work (wevoip/sip/gatewaydns.py) ------------------------------

_BY_NAME = ("g.ip_auth and cardinality(g.source_ips) = 0 "
            "and g.host !~ '^[0-9.]+$' and position(':' in g.host) = 0")


async def claim_names_due(tx: Tx, lease_seconds: float, limit: int = 100) -> list[Row]:
    """Gateways whose name is due a look-up, each leased for `lease_seconds` so that other
    nodes leave it alone meanwhile; rows for new names are made (due at once), rows of
    gateways now trusted otherwise go."""
    await tx.execute(f"delete from gateway_addresses a using gateways g where g.id = a.gateway_id and not ({_BY_NAME})")
    await tx.execute(f"insert into gateway_addresses (gateway_id, isp_id) select g.id, g.isp_id from gateways g "
                     f"where {_BY_NAME} on conflict do nothing")
    return await tx.fetch(
        "update gateway_addresses a set next_at = now() + make_interval(secs => %s) "
        "from gateways g where g.id = a.gateway_id and a.gateway_id in ("
        " select gateway_id from gateway_addresses where next_at <= now() order by next_at limit %s "
        " for update skip locked) "
        "returning a.gateway_id, a.isp_id, g.host, g.port, g.transport, a.addresses, a.resolved_at",
        (lease_seconds, limit))


async def record_addresses(tx: Tx, gateway_id: int, addresses: list[str], next_in: float) -> Row | None:
    """What DNS answered: these addresses are trusted until the next look-up."""
    networks = [ipaddress.ip_network(address) for address in sorted(set(addresses))]
    return await tx.fetch_one(
        "update gateway_addresses set addresses = %s, resolved_at = now(), error = null, "
        "next_at = now() + make_interval(secs => %s) where gateway_id = %s returning *",
        (networks, next_in, gateway_id))


async def record_failure(tx: Tx, gateway_id: int, error: str, next_in: float) -> Row | None:
    """DNS did not answer: the addresses last resolved stay trusted, and the error is shown."""
    return await tx.fetch_one(
        "update gateway_addresses set error = %s, next_at = now() + make_interval(secs => %s) "
        "where gateway_id = %s returning *", (error[:500], next_in, gateway_id))
