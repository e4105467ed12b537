"""
Checks for the values people type into consoles and API calls, before SQL sees them.

Each raises `Invalid` naming the field and saying what a right value looks like; the SQL
schema repeats the essential ones as constraints, so nothing wrong is stored even if a
caller skips these.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

import pycountry

from wevoip.store.errors import Invalid

_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_DNS_NAME = re.compile(rf"({_LABEL}\.)+[a-z]([a-z0-9-]{{0,61}}[a-z0-9])?")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_COLOUR = re.compile(r"#[0-9a-f]{6}")


def text(field: str, value: Any, *, max_length: int = 200, required: bool = True) -> str:
    if not isinstance(value, str):
        raise Invalid(field, "must be a string")
    value = value.strip()
    if required and not value:
        raise Invalid(field, "is required")
    if len(value) > max_length:
        raise Invalid(field, f"is longer than {max_length} characters")
    return value


def dns_name(field: str, value: Any) -> str:
    value = text(field, value, max_length=253).lower().rstrip(".")
    if not _DNS_NAME.fullmatch(value):
        raise Invalid(field, "must be a DNS name such as pbx.example.net (letters, digits, "
                             "hyphens; at least two labels)")
    return value


def dns_label(field: str, value: Any) -> str:
    value = text(field, value, max_length=63).lower()
    if not re.fullmatch(_LABEL, value):
        raise Invalid(field, "must be one DNS label: letters, digits and inner hyphens")
    return value


def currency(field: str, value: Any) -> str:
    value = text(field, value, max_length=3).upper()
    if pycountry.currencies.get(alpha_3=value) is None:
        raise Invalid(field, f"{value!r} is not an ISO 4217 currency code")
    return value


def country(field: str, value: Any) -> str | None:
    if value in (None, ""):
        return None
    value = text(field, value, max_length=2).upper()
    if pycountry.countries.get(alpha_2=value) is None:
        raise Invalid(field, f"{value!r} is not an ISO 3166 country code")
    return value


def e164(field: str, value: Any, *, required: bool = True) -> str | None:
    if value in (None, "") and not required:
        return None
    value = text(field, value, max_length=16)
    if not _E164.fullmatch(value):
        raise Invalid(field, "must be an E.164 number: '+', country code and number, "
                             "up to 15 digits")
    return value


def colour(field: str, value: Any) -> str:
    value = text(field, value, max_length=7).lower()
    if not _COLOUR.fullmatch(value):
        raise Invalid(field, "must be a colour as #rrggbb")
    return value


def email(field: str, value: Any, *, required: bool = False) -> str:
    value = text(field, value, max_length=254, required=required)
    if value and not re.fullmatch(r"[^\s@]+@[^\s@]+\.[^\s@]+", value):
        raise Invalid(field, "must be an e-mail address")
    return value


def count(field: str, value: Any, *, maximum: int = 1_000_000) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise Invalid(field, f"must be a whole number from 0 to {maximum}")
    return value


def money(field: str, value: Any, *, minimum: Decimal | None = None) -> Decimal:
    if isinstance(value, float) or isinstance(value, bool):
        raise Invalid(field, "must be a decimal string or integer, never a float")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise Invalid(field, "must be a decimal amount") from None
    if not amount.is_finite() or amount.as_tuple().exponent < -6 or abs(amount) >= 10 ** 14:
        raise Invalid(field, "must be an amount with at most 6 decimal places")
    if minimum is not None and amount < minimum:
        raise Invalid(field, f"must be at least {minimum}")
    return amount


def flag(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid(field, "must be true or false")
    return value


def one_of(field: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise Invalid(field, f"must be one of {', '.join(allowed)}")
    return value
