"""
Session descriptions (RFC 8866, which replaced RFC 4566), parsed and written sans-IO.

A description is kept as its lines, in order, exactly as they came: the relay and the
B2BUA rewrite a few fields (addresses, ports, direction) and every line they do not touch
- vendor attributes, crypto, video, bandwidth - goes out byte for byte as it came in. The
typed views below (origin, connection, codecs, direction, T.38, RTCP) are read from and
written back into those lines, never held beside them, so the two cannot disagree.

A description that cannot be read raises `SdpError` with a reason a B2BUA can put in a
488 Not Acceptable Here.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Iterable

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")

# RFC 3551 table 4: payload types with a fixed meaning that need no rtpmap.
STATIC_PAYLOADS = {
    0: ("PCMU", 8000, 1), 3: ("GSM", 8000, 1), 4: ("G723", 8000, 1), 5: ("DVI4", 8000, 1),
    6: ("DVI4", 16000, 1), 7: ("LPC", 8000, 1), 8: ("PCMA", 8000, 1), 9: ("G722", 8000, 1),
    10: ("L16", 44100, 2), 11: ("L16", 44100, 1), 12: ("QCELP", 8000, 1), 13: ("CN", 8000, 1),
    14: ("MPA", 90000, 1), 15: ("G728", 8000, 1), 16: ("DVI4", 11025, 1),
    17: ("DVI4", 22050, 1), 18: ("G729", 8000, 1),
}

# RFC 7742/ICE attributes that name the phone's own addresses; a relay that keeps them
# would invite the far end to go around it.
ICE_ATTRIBUTES = ("candidate", "remote-candidates", "end-of-candidates", "ice-ufrag",
                  "ice-pwd", "ice-options", "ice-lite", "ice-mismatch")

_LINE = re.compile(r"([a-z])=(.*)\Z", re.S)
_TOKEN = r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+"
_MEDIA = re.compile(rf"({_TOKEN}) ([0-9]{{1,5}})(?:/([0-9]{{1,5}}))? ({_TOKEN}(?:/{_TOKEN})*)((?: {_TOKEN})*)\Z")
_ORIGIN = re.compile(r"(\S+) ([0-9]{1,64}) ([0-9]{1,64}) (\S+) (\S+) (\S+)\Z")
_CONNECTION = re.compile(r"(\S+) (\S+) ([^\s/]+)((?:/[0-9]{1,10}){0,2})\Z")
_RTPMAP = re.compile(r"([0-9]{1,3}) ([^/\s]+)/([0-9]{1,10})(?:/([0-9]{1,3}))?\Z")
_RTCP = re.compile(r"([0-9]{1,5})(?: (\S+) (\S+) (\S+))?\Z")
# Numbers from the peer are ASCII digits of bounded length: int() of thousands of digits
# raises ValueError (CPython's limit), and str.isdigit() takes "²", which int() refuses.
_PAYLOAD = re.compile(r"[0-9]{1,3}\Z")


class SdpError(ValueError):
    """The description is not one we can read; str() is a reason fit for a 488."""


@dataclass(frozen=True)
class Line:
    """One `type=value` line; `type` is the single letter, `value` everything after '='."""

    type: str
    value: str

    def __str__(self) -> str:
        return f"{self.type}={self.value}"


@dataclass(frozen=True)
class Origin:
    username: str
    session_id: str
    session_version: int
    nettype: str
    addrtype: str
    address: str

    def __str__(self) -> str:
        return (f"{self.username} {self.session_id} {self.session_version} "
                f"{self.nettype} {self.addrtype} {self.address}")


@dataclass(frozen=True)
class Connection:
    """A c= line; `suffix` keeps a multicast '/ttl/count' as written."""

    nettype: str
    addrtype: str
    address: str
    suffix: str = ""

    @classmethod
    def for_address(cls, address: str) -> Connection:
        family = "IP6" if ipaddress.ip_address(address).version == 6 else "IP4"
        return cls("IN", family, address)

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}{self.suffix}"


@dataclass(frozen=True)
class Codec:
    """A payload type of an m= line with what rtpmap/fmtp (or RFC 3551) say of it."""

    payload_type: int
    name: str
    clock_rate: int
    channels: int = 1
    fmtp: str | None = None


class _Section:
    """
    Lines shared by the session part and each media part: attributes and c=. Each
    subclass says where a new c= goes (`_insert_connection`), as RFC 8866 orders lines.
    """

    lines: list[Line]

    def _first(self, kind: str) -> Line | None:
        return next((line for line in self.lines if line.type == kind), None)

    def attributes(self, name: str) -> list[str]:
        """Values of every `a=name:value` (or '' for a flag `a=name`), in order."""
        found = []
        for line in self.lines:
            if line.type == "a":
                key, _, value = line.value.partition(":")
                if key == name:
                    found.append(value)
        return found

    def attribute(self, name: str) -> str | None:
        values = self.attributes(name)
        return values[0] if values else None

    def has_attribute(self, name: str) -> bool:
        return bool(self.attributes(name))

    def remove_attributes(self, names: Iterable[str]) -> None:
        names = set(names)
        self.lines = [line for line in self.lines
                      if not (line.type == "a" and line.value.partition(":")[0] in names)]

    def add_attribute(self, name: str, value: str | None = None) -> None:
        self.lines.append(Line("a", name if value is None else f"{name}:{value}"))

    def set_attribute(self, name: str, value: str | None = None) -> None:
        """Replace the first `a=name` in place (or append one) and drop any others."""
        text = name if value is None else f"{name}:{value}"
        for index, line in enumerate(self.lines):
            if line.type == "a" and line.value.partition(":")[0] == name:
                self.lines[index] = Line("a", text)
                rest = self.lines[index + 1:]
                self.lines[index + 1:] = [other for other in rest if not (
                    other.type == "a" and other.value.partition(":")[0] == name)]
                return
        self.lines.append(Line("a", text))

    @property
    def connection(self) -> Connection | None:
        line = self._first("c")
        return _connection(line.value) if line else None

    @connection.setter
    def connection(self, value: Connection) -> None:
        for index, line in enumerate(self.lines):
            if line.type == "c":
                self.lines[index] = Line("c", str(value))
                return
        self._insert_connection(Line("c", str(value)))

    def _own_direction(self) -> str | None:
        for line in self.lines:
            if line.type == "a" and line.value in DIRECTIONS:
                return line.value
        return None


class MediaDescription(_Section):
    """An m= line and the lines under it up to the next m=."""

    def __init__(self, lines: list[Line], session: SessionDescription):
        self.lines = lines
        self.session = session
        self._parse_m(lines[0].value)

    def _parse_m(self, value: str) -> None:
        match = _MEDIA.match(value)
        if not match:
            raise SdpError(f"m= line {value!r} is not 'media port proto formats'")
        port = int(match.group(2))
        if port > 65535:
            raise SdpError(f"m= line {value!r}: port {port} is out of range")
        if not match.group(5):
            raise SdpError(f"m= line {value!r} lists no formats")

    def _fields(self) -> tuple[str, int, int | None, str, list[str]]:
        match = _MEDIA.match(self.lines[0].value)
        count = match.group(3)
        return (match.group(1), int(match.group(2)), int(count) if count else None,
                match.group(4), match.group(5).split())

    def _set_fields(self, media: str, port: int, count: int | None, proto: str,
                    formats: list[str]) -> None:
        count_text = f"/{count}" if count is not None else ""
        self.lines[0] = Line("m", f"{media} {port}{count_text} {proto} {' '.join(formats)}")

    @property
    def media(self) -> str:
        return self._fields()[0]

    @property
    def port(self) -> int:
        return self._fields()[1]

    @port.setter
    def port(self, value: int) -> None:
        if not 0 <= value <= 65535:
            raise ValueError(f"port {value} is out of range")
        media, _, count, proto, formats = self._fields()
        self._set_fields(media, value, count, proto, formats)

    @property
    def proto(self) -> str:
        return self._fields()[3]

    @property
    def formats(self) -> list[str]:
        return self._fields()[4]

    @formats.setter
    def formats(self, value: list[str]) -> None:
        if not value:
            raise ValueError("an m= line needs at least one format")
        media, port, count, proto, _ = self._fields()
        self._set_fields(media, port, count, proto, list(value))
        keep = set(value)
        self.lines = [line for line in self.lines if not (
            line.type == "a" and line.value.partition(":")[0] in ("rtpmap", "fmtp")
            and line.value.partition(":")[2].split(" ", 1)[0] not in keep)]

    @property
    def is_rtp(self) -> bool:
        """True for RTP profiles (RTP/AVP, RTP/SAVPF, UDP/TLS/RTP/SAVP...): packets are RTP."""
        return "RTP/" in self.proto.upper()

    @property
    def is_t38(self) -> bool:
        return (self.media == "image" and self.proto.lower() == "udptl"
                and "t38" in (f.lower() for f in self.formats))

    @property
    def effective_connection(self) -> Connection | None:
        """The media-level c= if there is one, else the session's (RFC 8866 5.7)."""
        return self.connection or self.session.connection

    def _insert_connection(self, line: Line) -> None:
        at = 1
        while at < len(self.lines) and self.lines[at].type == "i":
            at += 1
        self.lines.insert(at, line)

    @property
    def direction(self) -> str:
        """This stream's direction: its own attribute, else the session's, else sendrecv."""
        return self._own_direction() or self.session._own_direction() or "sendrecv"

    @direction.setter
    def direction(self, value: str) -> None:
        if value not in DIRECTIONS:
            raise ValueError(f"{value!r} is not one of {', '.join(DIRECTIONS)}")
        self.lines = [line for line in self.lines
                      if not (line.type == "a" and line.value in DIRECTIONS)]
        self.add_attribute(value)

    def codecs(self) -> list[Codec]:
        """Every format of an RTP stream as a Codec, in the m= line's order of preference."""
        if not self.is_rtp:
            return []
        maps: dict[str, tuple[str, int, int]] = {}
        for value in self.attributes("rtpmap"):
            match = _RTPMAP.match(value)
            if not match:
                raise SdpError(f"a=rtpmap:{value} is not 'payload name/rate[/channels]'")
            maps[match.group(1)] = (match.group(2), int(match.group(3)),
                                    int(match.group(4) or 1))
        fmtps = {}
        for value in self.attributes("fmtp"):
            payload, _, parameters = value.partition(" ")
            fmtps[payload] = parameters
        found = []
        for payload in self.formats:
            if not _PAYLOAD.match(payload) or int(payload) > 127:
                raise SdpError(f"RTP payload type {payload!r} is not a number 0-127")
            known = maps.get(payload) or STATIC_PAYLOADS.get(int(payload))
            if known is None:
                raise SdpError(f"dynamic payload type {payload} has no a=rtpmap")
            found.append(Codec(int(payload), known[0], known[1], known[2], fmtps.get(payload)))
        return found

    def codec(self, name: str, clock_rate: int | None = None) -> Codec | None:
        """The first codec of this name (case-insensitive, as RFC 4855 registers names)."""
        for codec in self.codecs():
            if codec.name.lower() == name.lower() and clock_rate in (None, codec.clock_rate):
                return codec
        return None

    @property
    def telephone_event(self) -> Codec | None:
        """The RFC 4733 DTMF payload, if offered."""
        return self.codec("telephone-event")

    def t38_options(self) -> dict[str, str]:
        """The T38* attributes of an image/udptl stream (ITU-T T.38 annex D), by name."""
        options = {}
        for line in self.lines:
            if line.type == "a" and line.value.lower().startswith("t38"):
                name, _, value = line.value.partition(":")
                options[name] = value
        return options

    @property
    def rtcp(self) -> tuple[int, Connection | None] | None:
        """The a=rtcp port (RFC 3605) and its address if it names one."""
        value = self.attribute("rtcp")
        if value is None:
            return None
        match = _RTCP.match(value)
        if not match or int(match.group(1)) > 65535:
            raise SdpError(f"a=rtcp:{value} is not 'port [nettype addrtype address]'")
        address = (Connection(match.group(2), match.group(3), match.group(4))
                   if match.group(2) else None)
        return int(match.group(1)), address

    def set_rtcp(self, port: int, address: str | None = None) -> None:
        text = f"{port} {Connection.for_address(address)}" if address else str(port)
        self.set_attribute("rtcp", text)

    @property
    def rtcp_mux(self) -> bool:
        return self.has_attribute("rtcp-mux")

    def rtcp_destination(self) -> tuple[str, int] | None:
        """Where this stream's sender expects RTCP: a=rtcp, else the RTP port plus one."""
        connection = self.effective_connection
        if connection is None or self.port == 0:
            return None
        rtcp = self.rtcp
        if rtcp is None:
            return connection.address, self.port + 1
        port, address = rtcp
        return (address.address if address else connection.address), port


class SessionDescription(_Section):
    """A whole description: the session-level lines and its media descriptions."""

    def __init__(self, lines: list[Line], media_lines: list[list[Line]]):
        self.lines = lines
        self.media = [MediaDescription(chunk, self) for chunk in media_lines]

    @classmethod
    def parse(cls, data: bytes | str) -> SessionDescription:
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError:
                raise SdpError("the description is not UTF-8 text") from None
        texts = data.split("\n")
        if texts and texts[-1] == "":
            texts.pop()
        if not texts:
            raise SdpError("the description is empty")
        session: list[Line] = []
        media: list[list[Line]] = []
        for number, text in enumerate(texts, 1):
            text = text[:-1] if text.endswith("\r") else text
            match = _LINE.match(text)
            if not match or "\r" in text or "\0" in text:
                raise SdpError(f"line {number} ({text[:40]!r}) is not 'x=value'")
            line = Line(match.group(1), match.group(2))
            if line.type == "m":
                media.append([line])
            elif media:
                media[-1].append(line)
            else:
                session.append(line)
        description = cls(session, media)
        description._check()
        return description

    def _check(self) -> None:
        if not self.lines or self.lines[0] != Line("v", "0"):
            raise SdpError("the description does not start with v=0")
        for kind, name in (("o", "origin (o=)"), ("s", "session name (s=)")):
            if self._first(kind) is None:
                raise SdpError(f"the description has no {name} line")
        self.origin  # noqa: B018 - reading it checks it
        for line in [*self.lines, *(line for m in self.media for line in m.lines)]:
            if line.type == "c":
                _connection(line.value)
        for index, media in enumerate(self.media):
            if not media.port:
                continue
            if media.effective_connection is None:
                raise SdpError(f"m= line {index + 1} has no connection address (c=)")
            media.codecs()
            media.rtcp  # noqa: B018

    def serialise(self) -> bytes:
        lines = [*self.lines, *(line for m in self.media for line in m.lines)]
        return "".join(f"{line}\r\n" for line in lines).encode("utf-8")

    def copy(self) -> SessionDescription:
        return SessionDescription.parse(self.serialise())

    @property
    def origin(self) -> Origin:
        value = self._first("o").value
        match = _ORIGIN.match(value)
        if not match:
            raise SdpError(f"o={value} is not 'username id version nettype addrtype address'")
        return Origin(match.group(1), match.group(2), int(match.group(3)), match.group(4),
                      match.group(5), match.group(6))

    @origin.setter
    def origin(self, value: Origin) -> None:
        index = next(i for i, line in enumerate(self.lines) if line.type == "o")
        self.lines[index] = Line("o", str(value))

    def _insert_connection(self, line: Line) -> None:
        at = next((i for i, other in enumerate(self.lines) if other.type in "btrzka"),
                  len(self.lines))
        self.lines.insert(at, line)

    @property
    def direction(self) -> str:
        return self._own_direction() or "sendrecv"

    @direction.setter
    def direction(self, value: str) -> None:
        """Set every stream's direction (as hold and unhold do) and drop the session's."""
        if value not in DIRECTIONS:
            raise ValueError(f"{value!r} is not one of {', '.join(DIRECTIONS)}")
        self.lines = [line for line in self.lines
                      if not (line.type == "a" and line.value in DIRECTIONS)]
        for media in self.media:
            media.direction = value

    def set_connection_address(self, address: str) -> None:
        """Point the origin and every c= at one address (the relay's), as the relay does."""
        connection = Connection.for_address(address)
        origin = self.origin
        self.origin = Origin(origin.username, origin.session_id, origin.session_version,
                             connection.nettype, connection.addrtype, address)
        had_session_level = self.connection is not None
        if had_session_level or not self.media:
            self.connection = connection
        for media in self.media:
            if media.connection is not None or not had_session_level:
                media.connection = connection

    def remove_ice(self) -> None:
        """Drop ICE attributes at both levels, so the far end only sees the relay."""
        self.remove_attributes(ICE_ATTRIBUTES)
        for media in self.media:
            media.remove_attributes(ICE_ATTRIBUTES)


def _connection(value: str) -> Connection:
    match = _CONNECTION.match(value)
    if not match:
        raise SdpError(f"c={value} is not 'nettype addrtype address'")
    nettype, addrtype, address, suffix = match.groups()
    if nettype == "IN" and addrtype in ("IP4", "IP6"):
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.version != int(addrtype[-1]):
            raise SdpError(f"c={value}: {address} is not an {addrtype} address")
    return Connection(nettype, addrtype, address, suffix)


def parse(data: bytes | str) -> SessionDescription:
    """Shorthand for `SessionDescription.parse`."""
    return SessionDescription.parse(data)
