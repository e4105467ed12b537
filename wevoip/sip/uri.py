"""
SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966) and the addresses that carry them.

Values are kept as the peer wrote them, escapes included, so a URI re-serialises to the
same text and a digest over it (RFC 7616 hashes the Request-URI as sent) stays valid.
Parameters are ordered (name, value) pairs; a flag parameter such as `lr` has the value
None. Every parse failure is a `ParseError` whose reason can stand as a 400 reason phrase.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace

from wevoip.sip.errors import ParseError

Params = tuple[tuple[str, "str | None"], ...]

_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_PARAM = re.compile(r'\s*(' + _TOKEN + r')\s*(?:=\s*("(?:[^"\\]|\\.)*"|\[[0-9A-Fa-f:.]+\]|[^;,\s"]*))?\s*')
_HOST = re.compile(r"\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9_\-.]{1,253}")
_URI_PARAM = re.compile(r"[A-Za-z0-9\-.!~*'()\[\]/:&+$%_]+")
_USER = re.compile(r"[A-Za-z0-9\-.!~*'()&=+$,;?/%_]+")
_PASSWORD = re.compile(r"[A-Za-z0-9\-.!~*'()&=+$,%_]*")
_HEADER = re.compile(r"[A-Za-z0-9\-.!~*'()\[\]/?:+$%_]*")
_TEL = re.compile(r"[0-9A-Fa-f*#+\-.()pwPW]{1,64}")
_TOKEN_ONLY = re.compile(_TOKEN)
_DOTTED = frozenset("0123456789.")
_PORT = re.compile(r"[0-9]{1,5}")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
_QUOTED_ESCAPE = re.compile(r'(["\\])')
_QUOTED_UNESCAPE = re.compile(r"\\(.)", re.S)


class UnsupportedScheme(ParseError):
    """A well-formed URI of a scheme we do not serve (RFC 3261 §8.2.2.1: 416 in a
    Request-URI; elsewhere, such as a REGISTER's To, the 400 of any malformed header)."""

    def __init__(self, scheme: str):
        super().__init__("Unsupported URI scheme")
        self.scheme = scheme


def valid_host(host: str) -> bool:
    """An IPv6 reference must hold an IPv6 address (RFC 5118 §4.10: not three colons in a
    row), a dotted quad only numbers up to 255; names are left to the resolver."""
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return host.endswith("]")
    if _DOTTED.issuperset(host):
        parts = host.split(".")
        return len(parts) != 4 or all(0 < len(part) <= 3 and int(part) <= 255 for part in parts)
    return True


def param_value(params: Params, name: str) -> str | None:
    """The value of the first parameter called `name` (any case); None when absent or a flag."""
    name = name.lower()
    for key, value in params:
        if key.lower() == name:
            return value
    return None


def has_param(params: Params, name: str) -> bool:
    name = name.lower()
    return any(key.lower() == name for key, _ in params)


def with_param(params: Params, name: str, value: str | None) -> Params:
    """Set (replacing in place) or append one parameter."""
    lower = name.lower()
    if has_param(params, name):
        return tuple((key, value) if key.lower() == lower else (key, old) for key, old in params)
    return params + ((name, value),)


def without_param(params: Params, name: str) -> Params:
    lower = name.lower()
    return tuple((key, value) for key, value in params if key.lower() != lower)


def parse_params(text: str, *, what: str = "parameter") -> Params:
    """`;a=b;flag;c="quoted; value"` -> (("a", "b"), ("flag", None), ("c", '"quoted; value"'))."""
    result = []
    position, end = 0, len(text)
    while position < end:
        if text[position] != ";":
            if not text[position].isspace():
                raise ParseError(f"Malformed {what}")
            position += 1   # LWS before the ";" (RFC 3261 SEMI = SWS ";" SWS)
            continue
        match = _PARAM.match(text, position + 1)
        if match is None or match.end() == position + 1:
            raise ParseError(f"Malformed {what}")
        result.append((match.group(1), match.group(2)))
        position = match.end()
    return tuple(result)


def format_params(params: Params) -> str:
    return "".join(f";{name}" if value is None else f";{name}={value}" for name, value in params)


@dataclass(frozen=True, slots=True)
class URI:
    scheme: str
    user: str | None = None
    host: str = ""
    port: int | None = None
    password: str | None = None
    params: Params = ()
    headers: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        if self.scheme == "tel":
            return f"tel:{self.user}{format_params(self.params)}"
        text = [self.scheme, ":"]
        if self.user is not None:
            text.append(self.user)
            if self.password is not None:
                text += (":", self.password)
            text.append("@")
        text.append(self.host)
        if self.port is not None:
            text.append(f":{self.port}")
        text.append(format_params(self.params))
        if self.headers:
            text.append("?" + "&".join(f"{name}={value}" for name, value in self.headers))
        return "".join(text)

    @property
    def secure(self) -> bool:
        return self.scheme == "sips"

    @property
    def host_bare(self) -> str:
        """The host without IPv6 brackets, as a socket wants it."""
        return self.host[1:-1] if self.host.startswith("[") else self.host

    def param(self, name: str) -> str | None:
        return param_value(self.params, name)

    def has_param(self, name: str) -> bool:
        return has_param(self.params, name)

    def with_param(self, name: str, value: str | None = None) -> URI:
        return replace(self, params=with_param(self.params, name, value))


def websocket_uri(uri: URI) -> URI:
    """RFC 7118 §5.2 defines only `transport=ws` for SIP URIs, over WS and WSS alike; some
    WebSocket clients write `transport=wss`. Their URIs are accepted as written (a binding
    keeps its Contact, so the REGISTER's 200 lists it as the phone sent it) and said with
    `ws` whenever we send them on (a Request-URI towards that phone)."""
    if (uri.param("transport") or "").lower() == "wss":
        return uri.with_param("transport", "ws")
    return uri


# A request names the same URI several times (a REGISTER's From and To, the Request-URI
# domain every phone of a tenant uses, a phone's Contact each time it refreshes); URIs are
# immutable, so the parsed value of a short text is kept, the oldest dropped first. Only
# what parsed is kept, so a malformed URI is reported every time.
_PARSED: dict[str, URI] = {}
PARSED_LIMIT = 1024
PARSED_TEXT_LIMIT = 256


def parse_uri(text: str) -> URI:
    uri = _PARSED.get(text)
    if uri is None:
        uri = _parse_uri(text)
        if len(text) <= PARSED_TEXT_LIMIT:
            if len(_PARSED) >= PARSED_LIMIT:
                del _PARSED[next(iter(_PARSED))]
            _PARSED[text] = uri
    return uri


def _parse_uri(text: str) -> URI:
    scheme, colon, rest = text.strip().partition(":")
    scheme = scheme.lower()
    if not colon or not rest:
        raise ParseError("Malformed URI")
    if scheme == "tel":
        return _parse_tel(rest)
    if scheme not in ("sip", "sips"):
        if _SCHEME.fullmatch(scheme) is None:
            raise ParseError("Malformed URI scheme")
        raise UnsupportedScheme(scheme)
    user = password = None
    at = rest.find("@")
    if at >= 0:
        user, has_password, password = rest[:at].partition(":")
        if not _USER.fullmatch(user) or not _PASSWORD.fullmatch(password):
            raise ParseError("Malformed URI user part")
        password = password if has_password else None
        rest = rest[at + 1:]
    rest, question, header_text = rest.partition("?")
    host_match = _HOST.match(rest)
    if host_match is None:
        raise ParseError("Malformed URI host")
    host = host_match.group()
    if not valid_host(host):
        raise ParseError("Malformed URI host")
    position = host_match.end()
    port = None
    if rest[position:position + 1] == ":":
        digits = _PORT.match(rest, position + 1)
        if digits is None or int(digits.group()) > 65535:
            raise ParseError("Malformed URI port")
        port = int(digits.group())
        position = digits.end()
    params = parse_params(rest[position:], what="URI parameter")
    for name, value in params:
        if value is not None and not _URI_PARAM.fullmatch(value):
            raise ParseError("Malformed URI parameter")
    headers = ()
    if question:
        headers = tuple(_uri_header(pair) for pair in header_text.split("&"))
    return URI(scheme, user, host, port, password, params, headers)


def _uri_header(pair: str) -> tuple[str, str]:
    name, equals, value = pair.partition("=")
    if not equals or not name or not _HEADER.fullmatch(name) or not _HEADER.fullmatch(value):
        raise ParseError("Malformed URI header")
    return name, value


def _parse_tel(rest: str) -> URI:
    number, semicolon, param_text = rest.partition(";")
    if not _TEL.fullmatch(number):
        raise ParseError("Malformed tel URI")
    params = parse_params(semicolon + param_text, what="tel URI parameter")
    return URI("tel", number, params=params)


def quote(text: str) -> str:
    return '"' + _QUOTED_ESCAPE.sub(r"\\\1", text) + '"'


def unquote(text: str) -> str:
    """A quoted-string's content (backslash escapes removed); other text as it is."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return _QUOTED_UNESCAPE.sub(r"\1", text[1:-1])
    return text


@dataclass(frozen=True, slots=True)
class Address:
    """A From, To, Contact, Route... value: optional display name, URI, header parameters."""

    uri: URI
    display_name: str | None = None
    params: Params = ()

    def __str__(self) -> str:
        name = "" if self.display_name is None else quote(self.display_name) + " "
        return f"{name}<{self.uri}>{format_params(self.params)}"

    @property
    def tag(self) -> str | None:
        return param_value(self.params, "tag")

    def param(self, name: str) -> str | None:
        return param_value(self.params, name)

    def has_param(self, name: str) -> bool:
        return has_param(self.params, name)

    def with_param(self, name: str, value: str | None = None) -> Address:
        return replace(self, params=with_param(self.params, name, value))


def _quoted_end(text: str, start: int) -> int:
    """The index just past the quoted-string that opens at `start`."""
    position = start + 1
    while True:
        quote_at = text.find('"', position)
        if quote_at < 0:
            raise ParseError("Unterminated quoted string")
        backslashes = 0
        while text[quote_at - 1 - backslashes] == "\\":
            backslashes += 1
        if backslashes % 2 == 0:
            return quote_at + 1
        position = quote_at + 1


def parse_address(text: str) -> Address:
    """name-addr (`"Alice" <sip:a@b>;tag=1`) or addr-spec (`sip:a@b;tag=1`, whose
    parameters are the header's, not the URI's, as RFC 3261 §20.10 says)."""
    text = text.strip()
    display = None
    if text.startswith('"'):
        end = _quoted_end(text, 0)
        display = unquote(text[:end])
        text = text[end:].lstrip()
        if not text.startswith("<"):
            raise ParseError("Display name without <URI>")
    if "<" in text:
        open_at = text.index("<")
        if display is None:
            words = text[:open_at].split()
            if any(not _TOKEN_ONLY.fullmatch(word) for word in words):
                raise ParseError("Malformed display name")
            display = " ".join(words) if words else None
        close_at = text.find(">", open_at)
        if close_at < 0:
            raise ParseError("Missing > after URI")
        uri = parse_uri(text[open_at + 1:close_at])
        params = parse_params(text[close_at + 1:], what="header parameter")
        return Address(uri, display, params)
    uri_text, semicolon, param_text = text.partition(";")
    if "?" in uri_text or "," in uri_text:
        raise ParseError("URI with headers or commas must be in <>")
    return Address(parse_uri(uri_text), None, parse_params(semicolon + param_text, what="header parameter"))
