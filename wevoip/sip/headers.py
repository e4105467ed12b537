"""
Header values with structure: Via (RFC 3261 §20.42, RFC 3581 rport), CSeq, and the
comma-separated lists that Via, Contact, Route, Allow... may carry in one line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from wevoip.sip.errors import ParseError
from wevoip.sip.uri import Address, Params, format_params, has_param, param_value, parse_address, \
    parse_params, valid_host, with_param

MAGIC_COOKIE = "z9hG4bK"

_VIA = re.compile(r"\s*SIP\s*/\s*2\.0\s*/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s+"
                  r"(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9_\-.]{1,253})(?:\s*:\s*([0-9]{1,5}))?\s*", re.I)
_CSEQ = re.compile(r"\s*([0-9]{1,10})\s+([A-Za-z0-9\-.!%*_+`'~]+)\s*")
_DIGITS = re.compile(r"\s*([0-9]{1,10})\s*")
# Via rport and ttl: ASCII digits (str.isdigit() takes "²", which int() refuses).
_NUMBER_PARAM = re.compile(r"[0-9]{1,5}")


def split_commas(value: str) -> list[str]:
    """Split a list header at the commas that are outside quotes and <>; parts stripped."""
    if '"' not in value:
        if "<" not in value:
            return [part.strip() for part in value.split(",") if part.strip()]
        if "," not in value:  # one name-addr, the usual Contact: only the <> need checking
            if value.rfind("<") > value.rfind(">"):
                raise ParseError("Unbalanced quotes or <> in header")
            value = value.strip()
            return [value] if value else []
    parts, start, quoted, angled, escaped = [], 0, False, False, False
    for index, char in enumerate(value):
        if escaped:
            escaped = False
        elif quoted:
            if char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == "<":
            angled = True
        elif char == ">":
            angled = False
        elif char == "," and not angled:
            parts.append(value[start:index])
            start = index + 1
    if quoted or angled:
        raise ParseError("Unbalanced quotes or <> in header")
    parts.append(value[start:])
    return [part.strip() for part in parts if part.strip()]


@dataclass(frozen=True, slots=True)
class Via:
    transport: str
    host: str
    port: int | None = None
    params: Params = ()

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return f"SIP/2.0/{self.transport} {self.host}{port}{format_params(self.params)}"

    @property
    def branch(self) -> str | None:
        return param_value(self.params, "branch")

    @property
    def received(self) -> str | None:
        return param_value(self.params, "received")

    @property
    def rport(self) -> int | None:
        """The rport a server filled in; None when absent or only asked for (a bare `;rport`)."""
        value = param_value(self.params, "rport")
        return int(value) if value and _NUMBER_PARAM.fullmatch(value) else None

    @property
    def wants_rport(self) -> bool:
        return has_param(self.params, "rport")

    @property
    def host_bare(self) -> str:
        return self.host[1:-1] if self.host.startswith("[") else self.host

    @property
    def rfc3261(self) -> bool:
        """True when the branch carries the magic cookie, so it alone names the transaction."""
        branch = self.branch
        return branch is not None and branch.startswith(MAGIC_COOKIE)

    def param(self, name: str) -> str | None:
        return param_value(self.params, name)

    def with_param(self, name: str, value: str | None = None) -> Via:
        return Via(self.transport, self.host, self.port, with_param(self.params, name, value))


def parse_via(text: str) -> Via:
    match = _VIA.match(text)
    if match is None:
        raise ParseError("Malformed Via header")
    port = match.group(3)
    if port is not None and int(port) > 65535 or not valid_host(match.group(2)):
        raise ParseError("Malformed Via header")
    params = parse_params(text[match.end():], what="Via parameter")
    for name, value in params:
        lowered = name.lower()
        if lowered in ("rport", "ttl") and value is not None and not _NUMBER_PARAM.fullmatch(value):
            raise ParseError("Malformed Via parameter")
    return Via(match.group(1).upper(), match.group(2), int(port) if port else None, params)


def parse_vias(values: list[str]) -> list[Via]:
    """Every Via of a message, top first, from its Via header lines."""
    return [parse_via(part) for value in values for part in split_commas(value)]


@dataclass(frozen=True, slots=True)
class CSeq:
    number: int
    method: str

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


def parse_cseq(text: str) -> CSeq:
    match = _CSEQ.fullmatch(text)
    if match is None or int(match.group(1)) >= 2 ** 31:
        raise ParseError("Malformed CSeq header")
    return CSeq(int(match.group(1)), match.group(2))


def parse_count(text: str, what: str) -> int:
    """A small non-negative integer header (Max-Forwards, Expires, Content-Length)."""
    match = _DIGITS.fullmatch(text)
    if match is None:
        raise ParseError(f"Malformed {what} header")
    return int(match.group(1))


def parse_addresses(values: list[str]) -> list[Address]:
    """Contact, Route, Record-Route, Path: every address, in order, from all their lines."""
    return [parse_address(part) for value in values for part in split_commas(value)]


def parse_tokens(values: list[str]) -> list[str]:
    """Allow, Supported, Require...: the tokens of all lines."""
    return [part for value in values for part in split_commas(value)]

