"""
The API's route table. Each handler is declared once, with what the OpenAPI document and
the request checks both need: method, path, scope, the body's JSON schema, the result's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping

from wevoip.store.database import Database
from wevoip.web.api.auth import Principal
from wevoip.web.api.errors import ApiError
from wevoip.web.api.jsonio import dumps


@dataclass(frozen=True)
class Services:
    """What handlers reach besides the store: the node's dialplan presets and DNS resolver."""

    dialplan_presets: Mapping[str, Any] = field(default_factory=dict)
    resolver: Any = None
    listeners: Any = None     # the node's bound sockets: the phone page's WebSocket port
    gateway: Any = None       # the WebRTC gateway: media state of browser calls in progress
    calls: Any = None         # the calls service: this node's calls in progress (`webrtc_calls`)
    # The call applications this node serves, by name: the only features a DID may be routed to.
    applications: Mapping[str, Any] = field(default_factory=dict)
    public_url: str = ""      # web.public_url: where links the API hands out point (signup links)


@dataclass
class Call:
    """One API request as a handler sees it: checked body, integer path ids, the caller."""

    principal: Principal
    database: Database
    params: dict[str, int]
    query: dict[str, str]
    body: dict[str, Any]
    record: Callable[[Any, Any], Awaitable[None]] | None = None
    services: Services = field(default_factory=Services)

    async def tx(self, work, *args, **kwargs):
        """One transaction; for an idempotent request it also records the response.

        The result is put into JSON before the COMMIT: a value without a JSON form raises
        here and rolls the work back, so no answer can fail after its write was committed
        (a client retrying a 500 would write twice). Handlers reach the store only
        through here (tests/web/test_api_encoding.py holds them to it)."""
        async def with_record(tx):
            result = await work(tx, *args, **kwargs)
            dumps(result)
            if self.record is not None:
                await self.record(tx, result)
            return result
        return await self.database.transact(with_record)

    def query_int(self, name: str) -> int | None:
        value = self.query.get(name)
        if value is None:
            return None
        if not re.fullmatch(r"[0-9]{1,19}", value) or not 1 <= int(value) <= 2**62:
            raise ApiError(422, "invalid", f"{name}: must be a whole number from 1", field=name)
        return int(value)

    def query_choice(self, name: str, allowed: tuple[str, ...]) -> str | None:
        value = self.query.get(name)
        if value is not None and value not in allowed:
            raise ApiError(422, "invalid", f"{name}: must be one of {', '.join(allowed)}", field=name)
        return value

    def page(self) -> tuple[int, int]:
        try:
            limit = int(self.query.get("limit", "100"))
            offset = int(self.query.get("offset", "0"))
        except ValueError:
            raise ApiError(422, "invalid", "limit and offset are whole numbers", field="limit") from None
        if not 1 <= limit <= 1000:
            raise ApiError(422, "invalid", "limit: must be from 1 to 1000", field="limit")
        if not 0 <= offset <= 10**9:
            raise ApiError(422, "invalid", "offset: must not be negative", field="offset")
        return limit, offset


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Callable[[Call], Awaitable[Any]]
    scope: str
    summary: str
    tag: str
    body: dict | None = None
    returns: dict | None = None
    status: int = 200
    listing: bool = False
    platform_only: bool = False
    customer_ok: bool = False
    # Query parameters besides limit/offset: a name is an id filter; (name, schema) anything else.
    query: tuple[str | tuple[str, dict], ...] = field(default=())
    # Media types besides JSON the route may answer with (a report as CSV, with ?format=csv).
    downloads: tuple[str, ...] = field(default=())

    @property
    def path_params(self) -> list[str]:
        return [part[1:-1] for part in self.path.split("/") if part.startswith("{")]


ROUTES: list[Route] = []


def api_route(method: str, path: str, *, scope: str, summary: str, tag: str, **options: Any):
    def register(handler):
        ROUTES.append(Route(method, path, handler, scope, summary, tag, **options))
        return handler
    return register


def obj(properties: dict[str, dict], required: tuple[str, ...] = ()) -> dict:
    """A closed JSON object schema: unknown fields are refused by name."""
    return {"type": "object", "properties": properties, "required": list(required),
            "additionalProperties": False}


def text(max_length: int = 200, **extra: Any) -> dict:
    return {"type": "string", "maxLength": max_length, **extra}


INTEGER = {"type": "integer", "minimum": 0, "maximum": 1_000_000}
BOOLEAN = {"type": "boolean"}
AMOUNT = {"type": "string", "pattern": r"^-?[0-9]{1,14}(\.[0-9]{1,6})?$"}
NULLABLE_ID = {"type": ["integer", "null"], "minimum": 1, "maximum": 2**62}
ID_IN = {"type": "integer", "minimum": 1, "maximum": 2**62}


def shaped(pattern: str, max_length: int, says: str) -> dict:
    """A string with a pattern; `says` is how the 422 describes a right value."""
    return {"type": "string", "pattern": pattern, "maxLength": max_length, "description": f"must be {says}"}


_LABEL = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
E164 = shaped(r"^\+[1-9][0-9]{1,14}$", 16, "an E.164 number: '+', country code and number, up to 15 digits")
OPTIONAL_E164 = shaped(r"^(\+[1-9][0-9]{1,14})?$", 16, "an E.164 number, or empty")
DNS_NAME = shaped(rf"^({_LABEL}\.)+[A-Za-z]([A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?\.?$", 253,
                  "a DNS name such as pbx.example.net")
DNS_LABEL = shaped(rf"^{_LABEL}$", 63, "one DNS label: letters, digits and inner hyphens")
COLOUR = shaped(r"^#[0-9A-Fa-f]{6}$", 7, "a colour as #rrggbb")
CURRENCY = shaped(r"^[A-Za-z]{3}$", 3, "an ISO 4217 currency code such as USD")
COUNTRY = shaped(r"^([A-Za-z]{2})?$", 2, "an ISO 3166 country code such as US, or empty")
ROW = {"type": "object", "additionalProperties": True}


ID = {"type": "integer"}
STAMP = {"type": "string", "format": "date-time"}
DATE = {"type": "string", "format": "date"}


def nullable(schema: dict) -> dict:
    return {**schema, "type": [schema["type"], "null"]}


def record(properties: dict[str, dict]) -> dict:
    """A response object: every property listed is present; newer fields may come after them."""
    return {"type": "object", "properties": properties, "required": list(properties)}


def items_of(schema: dict) -> dict:
    """A whole collection in one answer (a range added, a preset loaded), in the list envelope's key."""
    return record({"items": {"type": "array", "items": schema}})
