"""
Pricing a call: rate decks matched by longest prefix, billing increments, markups and
profit rules, least-cost carrier choice, and how long a balance can talk.

Everything is Decimal, and rounding happens in named places only: billable time rounds up
to the increment, and amounts are quantised to 6 decimal places (the ledger's precision),
half up. `max_duration` and `call_cost` use the same arithmetic, so a call cut off at its
maximum never costs more than the balance it was given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Iterable

PRECISION = Decimal("0.000001")
SIXTY = Decimal(60)
_INCREMENT = re.compile(r"([1-9]\d{0,3})/([1-9]\d{0,3})")


class RatingError(ValueError):
    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field


def money(amount: Decimal) -> Decimal:
    return amount.quantize(PRECISION, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Increment:
    """`first/step`: the first `first` seconds are charged whole, then blocks of `step`."""

    first: int
    step: int

    @classmethod
    def parse(cls, text: str, field: str = "billing") -> "Increment":
        match = _INCREMENT.fullmatch(text.strip())
        if not match:
            raise RatingError(field, f"{text!r} is not an increment such as 1/1, 30/6 or 60/60")
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.first}/{self.step}"

    def billable(self, duration_ms: int) -> int:
        """Seconds charged for a call of `duration_ms`; a call with no talk time is free."""
        if duration_ms <= 0:
            return 0
        seconds = -(-duration_ms // 1000)
        if seconds <= self.first:
            return self.first
        return self.first + -(-(seconds - self.first) // self.step) * self.step

    def affordable(self, seconds: int) -> int:
        """The longest billable time that fits in `seconds` of money."""
        if seconds < self.first:
            return 0
        return self.first + (seconds - self.first) // self.step * self.step


@dataclass(frozen=True)
class Rate:
    prefix: str
    description: str
    per_minute: Decimal
    connection_fee: Decimal = Decimal(0)
    increment: Increment = Increment(1, 1)
    dest_class: str = "international"

    def cost(self, duration_ms: int) -> Decimal:
        billable = self.increment.billable(duration_ms)
        if not billable:
            return Decimal(0)
        return money(self.connection_fee + self.per_minute * billable / SIXTY)


class RateDeck:
    """Prefixes are digits of the E.164 number without '+'; the longest that matches wins."""

    def __init__(self, rates: Iterable[Rate]):
        self._rates: dict[str, Rate] = {}
        for rate in rates:
            if not re.fullmatch(r"\d{1,15}", rate.prefix):
                raise RatingError("prefix", f"{rate.prefix!r} is not 1 to 15 digits")
            if rate.per_minute < 0 or rate.connection_fee < 0:
                raise RatingError("cost", f"prefix {rate.prefix}: costs are not negative")
            if rate.prefix in self._rates:
                raise RatingError("prefix", f"{rate.prefix} is listed twice")
            self._rates[rate.prefix] = rate
        self._longest = max((len(p) for p in self._rates), default=0)

    def __len__(self) -> int:
        return len(self._rates)

    def __iter__(self):
        return iter(self._rates.values())

    def match(self, e164: str) -> Rate | None:
        digits = e164.lstrip("+")
        for length in range(min(len(digits), self._longest), 0, -1):
            rate = self._rates.get(digits[:length])
            if rate is not None:
                return rate
        return None


@dataclass(frozen=True)
class Markup:
    """VoIP.ms package markup: the fixed amount is added to the cost, then the percentage.

    Cost 0.009 with 0.0025 fixed and 20 % sells at (0.009 + 0.0025) x 1.2 = 0.0138.
    """

    fixed: Decimal = Decimal(0)
    percent: Decimal = Decimal(0)

    def price(self, cost_per_minute: Decimal) -> Decimal:
        return money((cost_per_minute + self.fixed) * (1 + self.percent / 100))


@dataclass(frozen=True)
class ProfitRule:
    """ConnexCS profit row: for a prefix, add an absolute amount or a percentage of cost,
    then round the price up to a multiple of `rounding` (0.0001, say)."""

    prefix: str
    kind: str
    amount: Decimal
    rounding: Decimal = PRECISION

    def price(self, cost: Decimal) -> Decimal:
        if self.kind == "absolute":
            raw = cost + self.amount
        elif self.kind == "percent":
            raw = cost * (1 + self.amount / 100)
        else:
            raise RatingError("profit_type", f"{self.kind!r} is neither absolute nor percent")
        steps = (raw / self.rounding).to_integral_value(rounding=ROUND_CEILING)
        return money(steps * self.rounding)


def build_customer_deck(carrier_decks: Iterable[RateDeck], rules: Iterable[ProfitRule],
                        *, allow_loss: bool = False) -> RateDeck:
    """A customer card from carrier cards: the cheapest cost per prefix, priced by the rule
    with the longest prefix that covers it. Without a rule a prefix is not sold."""
    cheapest: dict[str, Rate] = {}
    for deck in carrier_decks:
        for rate in deck:
            known = cheapest.get(rate.prefix)
            if known is None or rate.per_minute < known.per_minute:
                cheapest[rate.prefix] = rate
    ordered_rules = sorted(rules, key=lambda rule: len(rule.prefix), reverse=True)
    sold = []
    for prefix, rate in sorted(cheapest.items()):
        rule = next((r for r in ordered_rules if prefix.startswith(r.prefix)), None)
        if rule is None:
            continue
        price = rule.price(rate.per_minute)
        if price < rate.per_minute and not allow_loss:
            raise RatingError("profit", f"prefix {prefix} would sell at {price}, below its cost {rate.per_minute}")
        sold.append(Rate(prefix, rate.description, price, rate.connection_fee, rate.increment, rate.dest_class))
    return RateDeck(sold)


@dataclass(frozen=True)
class Offer:
    carrier: str
    rate: Rate


def least_cost(e164: str, decks: dict[str, RateDeck], *, price_per_minute: Decimal | None = None,
               allow_loss: bool = False, priority: list[str] | None = None) -> list[Offer]:
    """Carriers that can take the call, cheapest first (or in `priority` order); those that
    would cost more than the customer pays are left out unless loss is allowed."""
    offers = []
    for carrier, deck in decks.items():
        rate = deck.match(e164)
        if rate is None:
            continue
        if price_per_minute is not None and rate.per_minute > price_per_minute and not allow_loss:
            continue
        offers.append(Offer(carrier, rate))
    if priority is not None:
        rank = {name: index for index, name in enumerate(priority)}
        return sorted(offers, key=lambda offer: (rank.get(offer.carrier, len(rank)), offer.rate.per_minute))
    return sorted(offers, key=lambda offer: (offer.rate.per_minute, offer.carrier))


def max_duration(balance: Decimal, rate: Rate) -> int | None:
    """Seconds a balance can pay for at `rate`, in whole increments: 0 refuses the call,
    None means money sets no limit (a free destination; other limits still apply)."""
    available = balance - rate.connection_fee
    if available < 0 or (available == 0 and rate.per_minute):
        return 0
    if rate.per_minute == 0:
        return None
    seconds = int((available * SIXTY / rate.per_minute).to_integral_value(rounding=ROUND_FLOOR))
    affordable = rate.increment.affordable(seconds)
    # Amounts are rounded to 6 places, so the exact division can be a step off either way.
    while affordable and rate.cost(affordable * 1000) > balance:
        affordable = rate.increment.affordable(affordable - 1)
    following = affordable + rate.increment.step if affordable else rate.increment.first
    while rate.cost(following * 1000) <= balance:
        affordable, following = following, following + rate.increment.step
    return affordable


def free_minutes_used(durations_ms: Iterable[int]) -> int:
    """Free minutes are counted per call in whole minutes, rounded up (3:11 uses 4)."""
    return sum(-(-duration // 60000) for duration in durations_ms if duration > 0)
