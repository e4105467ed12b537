"""
Rating throughput against a generated 100,000-prefix deck.

Run:  .venv/bin/python bench/rating.py [--prefixes 100000] [--calls 200000] [--carriers 3]

Measures, in this process and on the same code the call path uses:
- longest-prefix look-ups in one deck (`RateDeck.match`), in microseconds each;
- whole calls rated per second: the customer card's rate, least-cost order over the
  carrier cards, the plan's service deck (markup, area rates, free zone, pulse), and the
  price, cost and free minutes of the call's duration (`rate_call`, what settling uses).
Loading the deck into its index is timed too (what a node does once per published version).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wevoip.billing.calls import Offer, Quote, rate_call  # noqa: E402
from wevoip.billing.pricing import PlanRules  # noqa: E402
from wevoip.billing.rating import Increment, Markup, Rate, RateDeck, least_cost  # noqa: E402


def generate_prefixes(count: int, rng: random.Random) -> list[str]:
    prefixes: set[str] = set()
    while len(prefixes) < count:
        prefixes.add(str(rng.randint(1, 9)) + "".join(rng.choices("0123456789", k=rng.randint(1, 8))))
    return sorted(prefixes)


def make_deck(prefixes: list[str], rng: random.Random) -> RateDeck:
    increments = [Increment(1, 1), Increment(30, 6), Increment(60, 60)]
    return RateDeck(Rate(p, f"dest {p}", Decimal(rng.randint(10, 90000)).scaleb(-6),
                         increment=rng.choice(increments)) for p in prefixes)


def numbers_for(prefixes: list[str], count: int, rng: random.Random) -> list[str]:
    return ["+" + (p + "".join(rng.choices("0123456789", k=12)))[:15]
            for p in rng.choices(prefixes, k=count)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prefixes", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--carriers", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(6)
    prefixes = generate_prefixes(args.prefixes, rng)

    started = time.perf_counter()
    customer = make_deck(prefixes, rng)
    loaded = time.perf_counter() - started
    carriers = {str(n): make_deck(prefixes, rng) for n in range(args.carriers)}
    numbers = numbers_for(prefixes, args.calls, rng)
    plan = PlanRules(has_rate_deck=True, service_deck=True, markup=Markup(Decimal("0.0025"), Decimal(20)),
                     pulse=6, free_minutes=0,
                     area_rates=RateDeck([Rate("44", "UK", Decimal("0.01"))]), free_zones=(("1800", None),))

    started = time.perf_counter()
    for number in numbers:
        customer.match(number)
    lookup = (time.perf_counter() - started) / len(numbers)

    durations = [rng.randint(0, 600_000) for _ in numbers]
    started = time.perf_counter()
    rated = 0
    for number, duration in zip(numbers, durations):
        sell = plan.sell_rate(number, customer.match(number), None)
        offers = least_cost(number, carriers, price_per_minute=sell.per_minute, allow_loss=True)
        quote = Quote(number, "outbound", sell, 1, tuple(Offer(int(o.carrier), 1, o.rate) for o in offers))
        rate_call(quote, duration, 0, None)
        rated += 1
    per_second = rated / (time.perf_counter() - started)

    print(f"deck: {len(customer)} prefixes, loaded into its index in {loaded * 1000:.0f} ms; "
          f"{args.carriers} carrier cards of the same size")
    print(f"longest-prefix look-up: {lookup * 1e6:.2f} us each ({len(numbers)} numbers)")
    print(f"calls rated: {per_second:,.0f} per second (customer card + LCR over {args.carriers} carriers"
          f" + service deck + price, cost)")


if __name__ == "__main__":
    main()
