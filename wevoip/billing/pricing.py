"""
What a plan sells a call for: pure rules over a plan and the rates that match a number.

A plan sells from its customer card when it has one ("rate deck"); otherwise, with a
service deck, at the markup over the cheapest carrier's cost; with neither, calls are not
charged (the plan charges its monthly fee only). The service deck then applies per-area
rates (which override the price), free zones (free calls) and the pulse (the increment).
Free minutes cover whole minutes of a call, each call rounded up, before money is spent.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from wevoip.billing.rating import Increment, Markup, Rate, RateDeck, max_duration

ZERO = Decimal(0)


@dataclass(frozen=True)
class PlanRules:
    has_rate_deck: bool = False
    service_deck: bool = False
    markup: Markup = Markup()
    pulse: int | None = None
    free_minutes: int = 0
    area_rates: RateDeck = RateDeck(())
    free_zones: tuple[tuple[str, Decimal | None], ...] = ()
    allowed_classes: frozenset[str] = frozenset({"domestic", "international"})

    @classmethod
    def from_rows(cls, plan: dict[str, Any] | None, area_rows: list[dict], zone_rows: list[dict]) -> "PlanRules":
        if plan is None:
            return cls()
        return cls(has_rate_deck=plan["rate_deck_id"] is not None, service_deck=plan["service_deck"],
                   markup=Markup(plan["markup_fixed"], plan["markup_percent"]), pulse=plan["pulse"],
                   free_minutes=plan["free_minutes"] if plan["service_deck"] else 0,
                   area_rates=RateDeck(Rate(row["prefix"], "area rate", row["per_minute"]) for row in area_rows),
                   free_zones=tuple((row["prefix"], row["max_cost"]) for row in zone_rows),
                   allowed_classes=frozenset(plan["allowed_classes"]))

    def increment(self) -> Increment:
        """The increment of what the plan prices itself (incoming DID minutes)."""
        return Increment(self.pulse, self.pulse) if self.service_deck and self.pulse else Increment(1, 1)

    def sell_rate(self, e164: str, customer_rate: Rate | None, cost_rate: Rate | None) -> Rate | None:
        """The price of a call to `e164`, or None when the plan has no price for it."""
        if self.has_rate_deck:
            if customer_rate is None:
                return None
            rate = customer_rate
        elif cost_rate is None:
            return None
        elif self.service_deck:
            rate = replace(cost_rate, per_minute=self.markup.price(cost_rate.per_minute))
        else:
            rate = replace(cost_rate, per_minute=ZERO, connection_fee=ZERO)
        if not self.service_deck:
            return rate
        area = self.area_rates.match(e164)
        if area is not None:
            rate = replace(rate, per_minute=area.per_minute)
        digits = e164.lstrip("+")
        for prefix, max_cost in self.free_zones:
            if digits.startswith(prefix) and (max_cost is None or cost_rate is not None
                                              and cost_rate.per_minute <= max_cost):
                rate = replace(rate, per_minute=ZERO, connection_fee=ZERO)
        if self.pulse:
            rate = replace(rate, increment=self.increment())
        return rate


@dataclass(frozen=True)
class Charge:
    price: Decimal
    billable_seconds: int
    free_minutes: int


def is_free(rate: Rate) -> bool:
    return not rate.per_minute and not rate.connection_fee


def charge(rate: Rate, duration_ms: int, free_left: int) -> Charge:
    """The price of `duration_ms` of talk: whole free minutes first, then money."""
    if duration_ms <= 0:
        return Charge(ZERO, 0, 0)
    covered = 0 if is_free(rate) else min(-(-duration_ms // 60000), max(free_left, 0))
    rest = duration_ms - covered * 60000
    price = rate.cost(rest) if rest > 0 else ZERO
    return Charge(price, rate.increment.billable(duration_ms), covered)


def longest_call(rate: Rate, money: Decimal, free_left: int, cap_ms: int) -> tuple[int, Decimal]:
    """The longest call (ms, at most `cap_ms`) that free minutes and `money` pay for, in whole
    increments, and what it would cost at most."""
    cap = cap_ms // 1000
    free_seconds = min(0 if is_free(rate) else max(free_left, 0) * 60, cap)
    paid = max_duration(money, rate)
    within_cap = rate.increment.affordable(cap - free_seconds)
    paid = within_cap if paid is None else min(paid, within_cap)
    if paid == 0:
        return free_seconds * 1000, ZERO
    return (free_seconds + paid) * 1000, rate.cost(paid * 1000)


def rate_to_json(rate: Rate) -> dict[str, Any]:
    return {"prefix": rate.prefix, "description": rate.description, "per_minute": str(rate.per_minute),
            "connection_fee": str(rate.connection_fee), "increment": str(rate.increment),
            "dest_class": rate.dest_class}


def rate_from_json(data: dict[str, Any]) -> Rate:
    return Rate(data["prefix"], data["description"], Decimal(data["per_minute"]), Decimal(data["connection_fee"]),
                Increment.parse(data["increment"]), data["dest_class"])
