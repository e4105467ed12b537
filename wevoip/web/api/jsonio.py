"""
JSON in and out: bounded request bodies (size and nesting), and rows turned into plain
JSON values. Every type a row from the store may hold has a JSON form here (dates and
times as ISO 8601, money as a decimal string, addresses and ids as text); `dumps` refuses
anything else, and handlers run it inside their transaction (routes.Call.tx), so a value
without a JSON form rolls the transaction back instead of failing an answer already
committed.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from wevoip.web.api.errors import ApiError

MAX_BODY = 1024 * 1024
MAX_DEPTH = 32          # objects and arrays inside each other; no route's body needs more than a few
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Download:
    """A handler's result that is sent as a file (a CSV export) instead of JSON."""

    content_type: str
    filename: str
    content: bytes


def _utc(moment: datetime.datetime) -> str:
    """A timestamp as ISO 8601 in UTC; a naive one (SQL `timestamp`) is UTC already."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return moment.isoformat() + "Z"


def iso_duration(span: datetime.timedelta) -> str:
    """An SQL interval as an ISO 8601 duration (P1DT2H3M4.5S); a negative one with a leading '-'."""
    sign, span = ("-", -span) if span < datetime.timedelta(0) else ("", span)
    hours, rest = divmod(span.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    second_part = f"{seconds}.{span.microseconds:06d}".rstrip("0").rstrip(".") if span.microseconds else str(seconds)
    clock = "".join(f"{value}{unit}" for value, unit in ((hours, "H"), (minutes, "M")) if value)
    if seconds or span.microseconds or not (span.days or clock):
        clock += f"{second_part}S"
    return f"{sign}P{f'{span.days}D' if span.days else ''}{'T' + clock if clock else ''}"


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime.datetime):
        return _utc(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return iso_duration(value)
    if isinstance(value, (uuid.UUID, ipaddress.IPv4Network, ipaddress.IPv6Network, ipaddress.IPv4Address,
                          ipaddress.IPv6Address, ipaddress.IPv4Interface, ipaddress.IPv6Interface)):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, (bytes, memoryview)):
        return None
    raise TypeError(f"cannot put {type(value).__name__} in JSON")


def dumps(value: Any) -> bytes:
    """Compact JSON; a float that is not finite has no JSON form and raises, like an unknown type."""
    return json.dumps(value, default=_default, separators=(",", ":"), allow_nan=False).encode()


def read_json(request) -> tuple[bytes, Any]:
    """The raw body and its JSON; a body over the limit, or not JSON, is a 4xx."""
    content_type = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
    raw = request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise ApiError(413, "too_large", f"the body is over {MAX_BODY} bytes")
    if not raw:
        return raw, {}
    if content_type != b"application/json":
        raise ApiError(415, "unsupported_media_type", "send application/json")
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise _too_deep() from None
    except (ValueError, UnicodeDecodeError) as error:
        raise ApiError(400, "bad_json", f"the body is not JSON: {error}") from None
    bad = _unstorable(value, ())
    if bad is not None:
        field = ".".join(bad) or "body"
        raise ApiError(422, "invalid", f"{field}: holds a NUL character or half of a surrogate pair, which no text"
                                       " field can store", field=field)
    return raw, value


def _no_constant(name: str):
    """NaN and Infinity are Python's extensions, not JSON (RFC 8259): the body is refused."""
    raise ValueError(f"{name} is not a JSON value")


def _too_deep() -> ApiError:
    return ApiError(400, "too_deep", f"the body nests objects and arrays more than {MAX_DEPTH} deep")


def _unstorable(value: Any, path: tuple[str, ...]) -> tuple[str, ...] | None:
    """The path of the first string PostgreSQL text cannot hold: NUL, or a lone UTF-16 surrogate.
    A body nested deeper than MAX_DEPTH is refused here, before any deeper walk (the schema
    check, the handler) could recurse that far."""
    if isinstance(value, str):
        return path if "\x00" in value or _SURROGATE.search(value) else None
    if isinstance(value, (dict, list)) and len(path) >= MAX_DEPTH:
        raise _too_deep()
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((str(index), item) for index, item in enumerate(value))
    else:
        return None
    for key, item in items:
        if _unstorable(key, ()) is not None:
            return path
        found = _unstorable(item, (*path, key))
        if found is not None:
            return found
    return None
