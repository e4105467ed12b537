"""
The SIP torture corpus (tests/sip/torture/, see its README.md): each file's expectations
and its message as the bytes that go on the wire.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

FOLDER = Path(__file__).resolve().parent / "torture"

_ONE_LINE = re.compile(r"<allOneLine>\n(.*?)\n?</allOneLine>", re.S)
_REPEAT = re.compile(r"<repeat count=(\d+)>(.*?)</repeat>", re.S)
_HEX = re.compile(r"<hex>([0-9A-Fa-f]*)</hex>")


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    parse: str                  # "ok" or the ParseError's status
    answer: str                 # a status, or "none"
    answer_tcp: str             # a status, "none" or "closed"
    transports: tuple[str, ...]
    read: tuple[str, ...] = field(default=())
    case: str = ""

    @property
    def is_request(self) -> bool:
        return not self.data.startswith(b"SIP/")


def _message(text: str) -> bytes:
    text = _ONE_LINE.sub(lambda match: match.group(1).replace("\n", ""), text)
    text = _REPEAT.sub(lambda match: match.group(2) * int(match.group(1)), text)
    text = text.replace("\n", "\r\n")
    parts, position = [], 0
    for match in _HEX.finditer(text):
        parts.append(text[position:match.start()].encode("utf-8"))
        parts.append(bytes.fromhex(match.group(1)))
        position = match.end()
    parts.append(text[position:].encode("utf-8"))
    return b"".join(parts)


def load(path: Path) -> Case:
    lines = path.read_text(encoding="utf-8").split("\n")
    meta: dict[str, str] = {}
    while lines and lines[0].startswith("#"):
        key, _, value = lines.pop(0)[1:].partition(":")
        meta[key.strip()] = (meta.get(key.strip(), "") + " " + value.strip()).strip()
    answer = meta["answer"]
    return Case(name=path.stem, data=_message("\n".join(lines)), parse=meta["parse"], answer=answer,
                answer_tcp=meta.get("answer-tcp", answer),
                transports=tuple(meta.get("transports", "udp tcp").split()),
                read=tuple(meta.get("read", "").split()), case=meta.get("case", ""))


def cases() -> list[Case]:
    return [load(path) for path in sorted(FOLDER.glob("*.sip"))]
