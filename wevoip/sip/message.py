"""
SIP requests and responses as plain values, and the bytes they come from and go to.

`parse` reads one whole message (a datagram, or what the stream framer cut out) and checks
what every message needs before anything can be done with it: the start line, the header
syntax, the presence of the RFC 3261 §8.1.1 mandatory headers (Via, From, To, Call-ID,
CSeq), the Via list, CSeq and Max-Forwards, and the framing. Everything else (Request-URI,
From, To, Contact...) is parsed on first access and cached in `Headers`, so the hot path
(an OPTIONS ping) never pays for it; a malformed one raises `ParseError` there, which the
core turns into a 400 like any other.
Content-Length is framing, not content: `parse` consumes it and `serialise` writes it from
the body, so a message's headers never disagree with its body. Bodies (multipart too) are
bytes passed through untouched.
"""

from __future__ import annotations

import re
from typing import Callable, Iterable, Iterator, TypeVar, Union

from wevoip.sip.errors import ParseError
from wevoip.sip.headers import CSeq, Via, parse_count, parse_cseq, parse_vias, split_commas
from wevoip.sip.uri import URI, Address, parse_address, parse_uri

MAX_MESSAGE_BYTES = 65535
MAX_HEADER_COUNT = 100
MAX_LINE_BYTES = 8192

_CANONICAL = {name.lower(): name for name in (
    "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Allow-Events",
    "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact",
    "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length",
    "Content-Type", "CSeq", "Date", "Error-Info", "Event", "Expires", "From", "Identity",
    "In-Reply-To", "Max-Forwards", "MIME-Version", "Min-Expires", "Min-SE", "Organization",
    "P-Asserted-Identity", "P-Preferred-Identity", "Path", "Priority", "Privacy",
    "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "RAck", "Reason",
    "Record-Route", "Refer-To", "Referred-By", "Reply-To", "Require", "Retry-After", "Route",
    "RSeq", "Server", "Service-Route", "Session-Expires", "Subject", "Subscription-State",
    "Supported", "Timestamp", "To", "Unsupported", "User-Agent", "Via", "Warning",
    "WWW-Authenticate")}
_COMPACT = {"i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length",
            "c": "Content-Type", "f": "From", "s": "Subject", "k": "Supported", "t": "To",
            "v": "Via", "o": "Event", "r": "Refer-To", "b": "Referred-By", "u": "Allow-Events",
            "x": "Session-Expires", "y": "Identity", "d": "Request-Disposition",
            "a": "Accept-Contact", "j": "Reject-Contact"}
_CANONICAL.update(_COMPACT)
_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_BAD_VALUE = re.compile(r"[\r\n\x00]")
_VERSION = re.compile(r"SIP/[0-9]{1,3}\.[0-9]{1,3}", re.I)
_STATUS = re.compile(r"[1-6][0-9][0-9]")
# NUL may only stand escaped, as a quoted-pair (RFC 3261 §25.1; RFC 4475 §3.1.1.2).
_BARE_NUL = re.compile(r"(?<!\\)\x00")
_MANDATORY = ("Via", "From", "To", "Call-ID", "CSeq")
_MANDATORY_KEYS = frozenset(name.lower() for name in _MANDATORY)

T = TypeVar("T")
_ABSENT = object()


def canonical(name: str) -> str:
    """The full, conventionally cased name of a header (compact forms expanded)."""
    return _CANONICAL.get(name.lower(), name)


_KEYS = {spelling: full.lower() for lower, full in _CANONICAL.items() for spelling in (lower, full)}


def _key(name: str) -> str:
    """The lookup key of a header name: its full name in lower case."""
    key = _KEYS.get(name)
    return key if key is not None else canonical(name).lower()


class Headers:
    """Ordered, multi-valued and case-insensitive; each entry is one header line.

    `parsed` keeps structured values (Via list, CSeq, From...) until the headers change."""

    __slots__ = ("_items", "_cache")

    def __init__(self, items: Iterable[tuple[str, str]] = ()):
        self._items: list[tuple[str, str, str]] = []
        self._cache: dict[str, object] = {}
        for name, value in items:
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        if _BAD_VALUE.search(value) or not _TOKEN.fullmatch(name):
            raise ValueError(f"header {name!r} would not serialise as one line")
        name = canonical(name)
        self._items.append((name.lower(), name, value))
        self._cache.clear()

    def get(self, name: str, default: str | None = None) -> str | None:
        key = _key(name)
        for lower, _, value in self._items:
            if lower == key:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        key = _key(name)
        return [value for lower, _, value in self._items if lower == key]

    def set(self, name: str, value: str) -> None:
        """Replace every line of `name` with one, where the first of them was."""
        key = _key(name)
        for index, (lower, _, _) in enumerate(self._items):
            if lower == key:
                self.remove(name)
                self._items.insert(index, (key, canonical(name), value))
                return
        self.add(name, value)

    def remove(self, name: str) -> None:
        key = _key(name)
        self._items = [item for item in self._items if item[0] != key]
        self._cache.clear()

    def prepend(self, name: str, value: str) -> None:
        """Put a header line first (a proxy's Via or Record-Route goes on top)."""
        self.add(name, value)
        self._items.insert(0, self._items.pop())

    def parsed(self, name: str, parse: Callable[[list[str]], T]) -> T:
        """`parse` applied to all lines of `name`, computed once while the headers stand."""
        key = _key(name)
        try:
            return self._cache[key]
        except KeyError:
            value = self._cache[key] = parse([value for lower, _, value in self._items if lower == key])
            return value

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return ((name, value) for _, name, value in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [item[1:] for item in self._items] == [item[1:] for item in other._items]

    def __repr__(self) -> str:
        return f"Headers({list(self)!r})"

    def copy(self) -> Headers:
        clone = Headers()
        clone._items = list(self._items)
        return clone


def _single(name: str, parse: Callable[[str], T]) -> Callable[[list[str]], T]:
    def one(values: list[str]) -> T:
        if not values:
            raise ParseError(f"Missing {name} header")
        if len(values) > 1:
            raise ParseError(f"More than one {name} header")
        return parse(values[0])
    return one


_parse_cseq = _single("CSeq", parse_cseq)
_parse_from = _single("From", parse_address)
_parse_to = _single("To", parse_address)
_parse_max_forwards = _single("Max-Forwards", lambda text: parse_count(text, "Max-Forwards"))


def _parse_via_list(values: list[str]) -> list[Via]:
    vias = parse_vias(values)
    if not vias:
        raise ParseError("Missing Via header")
    return vias


class _Message:
    """What requests and responses share: the structured view of their headers, each
    parsed on first use and kept (a malformed one raises ParseError then)."""

    __slots__ = ()
    headers: Headers
    body: bytes

    # These are read many times per message (transaction keys, dialog ids, auth): the
    # cache is looked at directly, so a hit costs one dict look-up, not a `parsed` call.

    @property
    def via(self) -> list[Via]:
        value = self.headers._cache.get("via")
        return value if value is not None else self.headers.parsed("via", _parse_via_list)

    @property
    def top_via(self) -> Via:
        return self.via[0]

    @property
    def cseq(self) -> CSeq:
        value = self.headers._cache.get("cseq")
        return value if value is not None else self.headers.parsed("cseq", _parse_cseq)

    @property
    def from_(self) -> Address:
        value = self.headers._cache.get("from")
        return value if value is not None else self.headers.parsed("from", _parse_from)

    @property
    def to(self) -> Address:
        value = self.headers._cache.get("to")
        return value if value is not None else self.headers.parsed("to", _parse_to)

    @property
    def call_id(self) -> str:
        for key, _, value in self.headers._items:
            if key == "call-id":
                return value
        return ""

    def __bytes__(self) -> bytes:
        return serialise(self)

    def _fields(self) -> tuple:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self._fields()!r}"


class Request(_Message):
    """`uri` may be given as text; it is parsed when first read (the hot OPTIONS path
    never needs it), and `uri_text` keeps it as the peer wrote it (digest hashes that)."""

    __slots__ = ("method", "_uri", "uri_text", "headers", "body")

    def __init__(self, method: str, uri: URI | str, headers: Headers | None = None, body: bytes = b""):
        self.method = method
        self.uri = uri
        self.headers = Headers() if headers is None else headers
        self.body = body

    @property
    def uri(self) -> URI:
        if self._uri is None:
            self._uri = parse_uri(self.uri_text)
        return self._uri

    @uri.setter
    def uri(self, value: URI | str) -> None:
        if isinstance(value, URI):
            self._uri, self.uri_text = value, str(value)
        else:
            self._uri, self.uri_text = None, value

    def _fields(self) -> tuple:
        return (self.method, self.uri, self.headers, self.body)

    @property
    def max_forwards(self) -> int | None:
        value = self.headers._cache.get("max-forwards", _ABSENT)
        if value is not _ABSENT:
            return value
        if "max-forwards" not in self.headers:
            self.headers._cache["max-forwards"] = None
            return None
        return self.headers.parsed("max-forwards", _parse_max_forwards)

    def start_line(self) -> str:
        return f"{self.method} {self.uri_text} SIP/2.0"

    def set_top_via(self, via: Via) -> None:
        """Rewrite the top Via in place (RFC 3581 received/rport), keeping every other."""
        vias = self.via
        items = self.headers._items
        index = next(i for i, item in enumerate(items) if item[0] == "via")
        rest = [str(other) for other in vias[1:len(split_commas(items[index][2]))]]
        items[index] = ("via", "Via", ", ".join([str(via), *rest]))
        self.headers._cache["via"] = [via, *vias[1:]]


class Response(_Message):
    __slots__ = ("status", "reason", "headers", "body")

    def __init__(self, status: int, reason: str, headers: Headers | None = None, body: bytes = b""):
        self.status = status
        self.reason = reason
        self.headers = Headers() if headers is None else headers
        self.body = body

    def _fields(self) -> tuple:
        return (self.status, self.reason, self.headers, self.body)

    def start_line(self) -> str:
        return f"SIP/2.0 {self.status} {self.reason}"


Message = Union[Request, Response]


def serialise(message: Message) -> bytes:
    lines = [message.start_line()]
    lines += [f"{name}: {value}" for _, name, value in message.headers._items if name != "Content-Length"]
    lines.append(f"Content-Length: {len(message.body)}\r\n\r\n")
    return "\r\n".join(lines).encode("utf-8", "surrogateescape") + message.body


def _split(data: bytes) -> tuple[list[str], bytes]:
    """Header lines (folding undone) and the bytes after the blank line."""
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        head, body = data[:end], data[end + 4:]
    else:
        end = data.find(b"\n\n")
        head, body = (data[:end], data[end + 2:]) if end >= 0 else (data.rstrip(b"\r\n"), b"")
    text = head.decode("utf-8", "surrogateescape")
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    if len(lines) > MAX_HEADER_COUNT + 1:
        raise ParseError("Too many headers")
    if len(text) > MAX_LINE_BYTES and max(map(len, lines)) > MAX_LINE_BYTES:
        raise ParseError("Header line too long")
    if "\n " in text or "\n\t" in text:
        lines = _unfold(lines)
    return lines, body


def _unfold(lines: list[str]) -> list[str]:
    result = [lines[0]]
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and len(result) > 1:
            result[-1] = result[-1].rstrip() + " " + line.strip()
        elif line[:1] in (" ", "\t"):
            raise ParseError("Folded line without a header")
        else:
            result.append(line)
    return result


def _start(line: str) -> tuple[str, str, str]:
    """Method, Request-URI and "" for a request; "", status and reason for a response.
    RFC 3261 §25.1: single spaces between the elements, none inside the Request-URI,
    none after the version (RFC 4475 §3.1.2.8-10)."""
    if line.startswith("SIP/"):
        parts = line.split(" ", 2)
        if len(parts) < 2 or not _STATUS.fullmatch(parts[1]):
            raise ParseError("Malformed status line")
        if parts[0] != "SIP/2.0":
            raise ParseError("Version Not Supported", status=505)
        return "", parts[1], parts[2] if len(parts) == 3 else ""
    parts = line.split(" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not parts[1]:
        raise ParseError("Malformed request line")
    if parts[2].upper() != "SIP/2.0":
        if _VERSION.fullmatch(parts[2]):
            raise ParseError("Version Not Supported", status=505)
        raise ParseError("Malformed request line")
    return parts[0], parts[1], ""


# Every spelling of a known header name, as written, in lower case and in full: the
# (lookup key, full name) pair of a `Headers` item, found with one dict look-up.
_ITEM_NAMES = {spelling: (full.lower(), full) for lower, full in _CANONICAL.items()
               for spelling in (lower, full)}


def _headers(lines: list[str]) -> Headers:
    headers = Headers()
    items = headers._items
    known = _ITEM_NAMES
    nul = any("\x00" in line for line in lines)
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon:
            raise ParseError("Malformed header line")
        names = known.get(name)
        if names is None:
            name = name.rstrip()
            names = known.get(name.lower())
            if names is None:
                if not _TOKEN.fullmatch(name):
                    raise ParseError("Malformed header name")
                names = (name.lower(), name)
        if nul and _BARE_NUL.search(value):
            raise ParseError("NUL in header value")
        items.append((names[0], names[1], value.strip()))
    return headers


def parse(data: bytes) -> Message:
    """One message from a datagram or a framed stream message; only `ParseError` escapes.

    A request whose start line is malformed (or of another SIP version) still has its
    headers read, so that the error can be answered (400, 505) when they allow it."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise ParseError("Message Too Large", status=513)
    lines, body = _split(data)
    try:
        method, second, reason = _start(lines[0])
    except ParseError as error:
        if not lines[0].startswith(("SIP/", "ACK ")):
            error.headers, error.is_request = _headers(lines[1:]), True
        raise
    headers = _headers(lines[1:])
    try:
        body = _framed_body(headers, body)
        message = _build(method, second, reason, headers, body)
    except ParseError as error:
        error.headers = headers
        error.is_request = bool(method)
        raise
    return message


def _framed_body(headers: Headers, body: bytes) -> bytes:
    lengths = headers.get_all("Content-Length")
    if not lengths:
        return body
    headers.remove("Content-Length")
    if len(set(lengths)) > 1:
        raise ParseError("Conflicting Content-Length headers")
    length = parse_count(lengths[0], "Content-Length")
    if length > len(body):
        raise ParseError("Content-Length larger than the body")
    return body[:length]


def _build(method: str, second: str, reason: str, headers: Headers, body: bytes) -> Message:
    present = {item[0] for item in headers._items}
    if not _MANDATORY_KEYS <= present:
        missing = next(name for name in _MANDATORY if name.lower() not in present)
        raise ParseError(f"Missing {missing} header")
    if sum(item[0] == "call-id" for item in headers._items) > 1:
        raise ParseError("More than one Call-ID header")
    message: Message
    if method:
        message = Request(method, second, headers, body)
        if message.cseq.method != method:
            raise ParseError("CSeq method does not match the request")
        _ = message.max_forwards
    else:
        message = Response(int(second), reason, headers, body)
        _ = message.cseq
    _ = message.via
    return message


REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 301: "Moved Permanently",
    302: "Moved Temporarily", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 407: "Proxy Authentication Required",
    408: "Request Timeout", 415: "Unsupported Media Type", 416: "Unsupported URI Scheme",
    420: "Bad Extension", 423: "Interval Too Brief", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 491: "Request Pending", 500: "Server Internal Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Server Time-out", 505: "Version Not Supported", 513: "Message Too Large",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere",
    606: "Not Acceptable"}


def response_headers(request_headers: Headers, status: int, to_tag: str | None = None) -> Headers:
    """The headers a response copies from its request (RFC 3261 §8.2.6.2): every Via, From,
    To (with our tag added when the request had none), Call-ID and CSeq, as written."""
    headers = Headers()
    items = headers._items
    for item in request_headers._items:
        if item[0] in ("via", "from", "call-id", "cseq"):
            items.append(item)
        elif item[0] == "to":
            if to_tag is not None and status > 100 and ";tag=" not in item[2].replace(" ", "").lower():
                item = ("to", "To", f"{item[2]};tag={to_tag}")
            items.append(item)
    return headers


def response_to(request: Request, status: int, reason: str | None = None, *,
                to_tag: str | None = None, body: bytes = b"") -> Response:
    return Response(status, reason or REASONS.get(status, "Unknown"),
                    response_headers(request.headers, status, to_tag), body)
