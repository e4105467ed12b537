"""JSON in and out: bounded request bodies, and rows turned into plain JSON values."""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from wevoip.web.api.errors import ApiError

MAX_BODY = 1024 * 1024
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Download:
    """A handler's result that is sent as a file (a CSV export) instead of JSON."""

    content_type: str
    filename: str
    content: bytes


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network,
                          ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return str(value)
    if isinstance(value, (bytes, memoryview)):
        return None
    raise TypeError(f"cannot put {type(value).__name__} in JSON")


def dumps(value: Any) -> bytes:
    return json.dumps(value, default=_default, separators=(",", ":")).encode()


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
        value = json.loads(raw)
        bad = _unstorable(value, ())
    except RecursionError:
        raise ApiError(400, "too_deep", "the body nests objects and arrays too deep") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise ApiError(400, "bad_json", f"the body is not JSON: {error}") from None
    if bad is not None:
        field = ".".join(bad) or "body"
        raise ApiError(422, "invalid", f"{field}: holds a NUL character or half of a surrogate pair, which no text"
                                       " field can store", field=field)
    return raw, value


def _unstorable(value: Any, path: tuple[str, ...]) -> tuple[str, ...] | None:
    """The path of the first string PostgreSQL text cannot hold: NUL, or a lone UTF-16 surrogate."""
    if isinstance(value, str):
        return path if "\x00" in value or _SURROGATE.search(value) else None
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
