"""
Dialplans: what a phone dialled, made E.164 by an ordered list of rules.

A rule is the WeHostVoIP triple: `match` says whether the rule applies to the dialled
string, `subs` cuts it into groups, and `replacement` rebuilds it with \\1, \\2 ... and the
caller's `_CC` (country code) and `_AC` (area code). The first rule that matches decides.

Rules are typed by operators and run on every call, so they are checked when saved: a
pattern must compile, stay short, and have no nested repetition (the shape that makes a
regular expression take exponential time).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_PATTERN = 200
MAX_DIALLED = 32
_DIALLED = re.compile(r"[0-9*#+]{1,32}")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
# A group that repeats something and is itself repeated: (a+)+, (\d*)*, (x{2,})+ ...
_NESTED_REPEAT = re.compile(r"\((?:[^()\\]|\\.)*[+*}](?:[^()\\]|\\.)*\)[+*{]")


class DialplanError(ValueError):
    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class Rule:
    match: str
    subs: str
    replacement: str
    description: str = ""

    def check(self) -> "Rule":
        for field in ("match", "subs"):
            pattern = getattr(self, field)
            if not pattern or len(pattern) > MAX_PATTERN:
                raise DialplanError(field, f"must be 1 to {MAX_PATTERN} characters")
            if _NESTED_REPEAT.search(pattern):
                raise DialplanError(field, "nested repetition such as (x+)+ is not allowed")
            try:
                re.compile(pattern)
            except re.error as error:
                raise DialplanError(field, f"not a regular expression: {error}") from None
        if not self.replacement or len(self.replacement) > MAX_PATTERN:
            raise DialplanError("replacement", f"must be 1 to {MAX_PATTERN} characters")
        groups = re.compile(self.subs).groups
        for reference in re.findall(r"\\(\d+)", self.replacement):
            if int(reference) > groups:
                raise DialplanError("replacement", f"\\{reference} refers to a group subs does not have")
        return self


@dataclass(frozen=True)
class Caller:
    """Where the caller is: `country_code` and `area_code` are digits, without '+'."""

    country_code: str = ""
    area_code: str = ""


def _expand(replacement: str, caller: Caller) -> str:
    """\\1 becomes \\g<1> first, so a code put right after it cannot turn it into \\12."""
    explicit = re.sub(r"\\(\d+)", r"\\g<\1>", replacement)
    return explicit.replace("_CC", caller.country_code).replace("_AC", caller.area_code)


def translate(dialled: str, rules: list[Rule], caller: Caller) -> tuple[int, str] | None:
    """The index of the rule that decides and the E.164 number it makes, or None."""
    dialled = dialled.strip()
    if not _DIALLED.fullmatch(dialled):
        return None
    for index, rule in enumerate(rules):
        if not re.fullmatch(rule.match, dialled):
            continue
        result, count = re.subn(rule.subs, _expand(rule.replacement, caller), dialled, count=1)
        if count and _E164.fullmatch(result):
            return index, result
    return None


def normalise(dialled: str, rules: list[Rule], caller: Caller) -> str | None:
    """The E.164 number `dialled` means, or None when no rule makes one of it."""
    found = translate(dialled, rules, caller)
    return None if found is None else found[1]


def denormalise(e164: str, strip_digits: int, prefix: str) -> str:
    """A gateway's view of a number: strip leading characters, then put its prefix in front."""
    return prefix + e164[strip_digits:]
