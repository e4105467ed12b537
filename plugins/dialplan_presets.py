"""
Dialplan presets for the countries operators start from: the US (without a trunk '9'),
Brazil, the United Kingdom and Germany. Each turns what people dial there into E.164.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.plugin import IPlugin
from zope.interface import implementer

from wevoip.interfaces import IDialplanPreset
from wevoip.routing.dialplan import Rule

AS_IS = Rule(r"\+[1-9]\d{1,14}", r"^(.*)$", r"\1", "already E.164")


@implementer(IPlugin, IDialplanPreset)
@dataclass(frozen=True)
class Preset:
    name: str
    country: str
    description: str
    _rules: tuple[Rule, ...]

    def rules(self) -> list[Rule]:
        return [AS_IS, *self._rules]


us = Preset("us", "US", "United States, North American numbering, no outside-line 9", (
    Rule(r"[2-9]\d{9}", r"^(\d{10})$", r"+1\1", "ten digits"),
    Rule(r"1[2-9]\d{9}", r"^1(\d{10})$", r"+1\1", "1 and ten digits"),
    Rule(r"[2-9]\d{6}", r"^(\d{7})$", r"+1_AC\1", "seven-digit local number"),
    Rule(r"011[1-9]\d{6,14}", r"^011(\d+)$", r"+\1", "international with 011"),
))

br = Preset("br", "BR", "Brazil: local, 0 + area, 0 + carrier + area, 00 + carrier international", (
    Rule(r"[2-5]\d{7}", r"^(\d{8})$", r"+55_AC\1", "local landline"),
    Rule(r"9\d{8}", r"^(\d{9})$", r"+55_AC\1", "local mobile"),
    Rule(r"0[1-9]{2}9?\d{8}", r"^0(\d+)$", r"+55\1", "0 and area code"),
    Rule(r"0\d{2}[1-9]{2}9?\d{8}", r"^0\d{2}(\d+)$", r"+55\1", "0, carrier and area code"),
    Rule(r"00\d{2}[1-9]\d{6,14}", r"^00\d{2}(\d+)$", r"+\1", "international with 00 and carrier"),
))

gb = Preset("gb", "GB", "United Kingdom: local, 0 + national, 00 international", (
    Rule(r"0[1-9]\d{8,9}", r"^0(\d+)$", r"+44\1", "0 and national number"),
    Rule(r"00[1-9]\d{6,14}", r"^00(\d+)$", r"+\1", "international with 00"),
    Rule(r"[2-9]\d{5,7}", r"^(\d+)$", r"+44_AC\1", "local number"),
))

de = Preset("de", "DE", "Germany: local, 0 + national, 00 international", (
    Rule(r"0[1-9]\d{5,13}", r"^0(\d+)$", r"+49\1", "0 and national number"),
    Rule(r"00[1-9]\d{6,14}", r"^00(\d+)$", r"+\1", "international with 00"),
    Rule(r"[1-9]\d{3,7}", r"^(\d+)$", r"+49_AC\1", "local number"),
))
