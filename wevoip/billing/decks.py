"""
Rate decks between the store and the rating core: CSV uploads checked line by line, and
each node's in-memory index of the versions in force.

A published version never changes, so its index (a `RateDeck`, dict look-ups by prefix
length) is kept until memory is wanted for another. What does change is which version of a
deck is in force: that list is an `InvalidatedCache` that forgets a deck when any node
publishes a version of it.
"""

from __future__ import annotations

import csv
import datetime
import io
from collections import OrderedDict
from decimal import Decimal

from wevoip.billing.pricing import PlanRules
from wevoip.billing.rating import Increment, ProfitRule, Rate, RateDeck, RatingError, build_customer_deck
from wevoip.store import customers, pricing, ratedecks
from wevoip.store.database import Row, Tx
from wevoip.store.errors import Invalid
from wevoip.store.fields import money
from wevoip.store.isps import get_isp
from wevoip.store.notify import InvalidatedCache, Notifier
from wevoip.store.ratedecks import CLASSES, RateRow

MAX_LINE_ERRORS = 50
_COLUMNS = {"prefix": "prefix", "description": "description", "per_minute": "per_minute",
            "cost": "per_minute", "price": "per_minute", "rate": "per_minute",
            "connection_fee": "connection_fee", "increment": "increment", "billing": "increment",
            "class": "class"}


class RateCsvError(Invalid):
    """Every bad line of an upload, by number; nothing of the upload was stored."""

    def __init__(self, problems: list[dict]):
        first = problems[0]
        super().__init__("csv", f"line {first['line']}: {first['field']}: {first['problem']}"
                         + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
        self.problems = problems


def _row(values: dict[str, str], home_prefix: str) -> RateRow:
    prefix = values.get("prefix", "").strip().lstrip("+")
    if not prefix.isdigit() or len(prefix) > 15:
        raise Invalid("prefix", f"{prefix!r} is not 1 to 15 digits")
    description = values.get("description", "").strip()
    if len(description) > 200:
        raise Invalid("description", "is longer than 200 characters")
    per_minute = money("per_minute", values.get("per_minute", "").strip(), minimum=Decimal(0))
    connection_fee = money("connection_fee", values.get("connection_fee", "").strip() or "0",
                           minimum=Decimal(0))
    try:
        increment = Increment.parse(values.get("increment", "").strip() or "1/1", "increment")
    except RatingError as error:
        raise Invalid("increment", str(error).split(": ", 1)[1]) from None
    dest_class = values.get("class", "").strip().lower()
    if not dest_class:
        dest_class = "domestic" if home_prefix and prefix.startswith(home_prefix) else "international"
    elif dest_class not in CLASSES:
        raise Invalid("class", f"must be one of {', '.join(CLASSES)}")
    return RateRow(prefix, description, per_minute, connection_fee, increment.first, increment.step, dest_class)


def parse_rate_csv(text: str, *, home_prefix: str = "") -> list[RateRow]:
    """Rows of a deck from CSV with a header line (prefix, description, per_minute or cost,
    connection_fee, increment as 1/1 or 30/6, class). Any bad line refuses the whole file."""
    if not isinstance(text, str) or not text.strip():
        raise Invalid("csv", "is empty")
    try:
        return _parse_rows(csv.reader(io.StringIO(text, newline="")), home_prefix)
    except csv.Error as error:
        # A field over the csv module's limit, a stray quote: the text is no CSV to read.
        raise Invalid("csv", f"is not CSV: {error}") from None


def _parse_rows(reader, home_prefix: str) -> list[RateRow]:
    header = [_COLUMNS.get(name.strip().lower()) for name in next(reader)]
    problems = []
    if "prefix" not in header or "per_minute" not in header:
        problems.append({"line": 1, "field": "header", "problem": "needs the columns prefix and per_minute (or cost)"})
        raise RateCsvError(problems)
    rows: list[RateRow] = []
    seen: dict[str, int] = {}
    for cells in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            problems.append({"line": line, "field": "columns",
                             "problem": f"has {len(cells)} columns, the header {len(header)}"})
        else:
            try:
                row = _row({name: cell for name, cell in zip(header, cells) if name}, home_prefix)
            except Invalid as error:
                problems.append({"line": line, "field": error.field, "problem": error.problem})
            else:
                if row.prefix in seen:
                    problems.append({"line": line, "field": "prefix",
                                     "problem": f"{row.prefix} is also on line {seen[row.prefix]}"})
                seen[row.prefix] = line
                rows.append(row)
        if len(problems) >= MAX_LINE_ERRORS:
            break
    if problems:
        raise RateCsvError(problems)
    if not rows:
        raise Invalid("csv", "holds no rate lines")
    return rows


def rate_of(row: dict) -> Rate:
    return Rate(row["prefix"], row["description"], row["per_minute"], row["connection_fee"],
                Increment(row["increment_first"], row["increment_step"]), row["dest_class"])


def to_row(rate: Rate) -> RateRow:
    return RateRow(rate.prefix, rate.description, rate.per_minute, rate.connection_fee,
                   rate.increment.first, rate.increment.step, rate.dest_class)


class DeckIndexes:
    """One per node: the version of each deck in force at a moment, and its index."""

    def __init__(self, max_versions: int = 64):
        self.in_force = InvalidatedCache(ratedecks.CHANNEL)
        self.max_versions = max_versions
        self._indexes: OrderedDict[int, tuple[int, RateDeck]] = OrderedDict()
        self.rules = InvalidatedCache(pricing.RULES_CHANNEL, limit=10_000)
        self._attached = False

    async def attach(self, notifier: Notifier) -> None:
        await self.in_force.attach(notifier)
        await self.rules.attach(notifier)
        self._attached = True

    async def _kept(self, key: str, read):
        """A value of `rules`, read with `read()` when missing; kept once the cache is attached."""
        value = self.rules.get(key)
        if value is None:
            read_at = self.rules.generation
            value = await read()
            if self._attached:
                self.rules.put(key, value, read_at=read_at)
        return value

    async def isp(self, tx: Tx, isp_id: int) -> Row:
        """The ISP's row (pricing mode, spend caps, call lock), kept once the cache is attached:
        migration 0075's trigger publishes every change of `isps`. Callers must not change it."""
        return await self._kept(f"isp:{isp_id}", lambda: get_isp(tx, isp_id))

    async def plan(self, tx: Tx, isp_id: int, plan_id: int) -> tuple[Row, PlanRules]:
        """A service plan and its pricing rules (area rates, free zones), kept like `isp`."""
        async def read():
            plan = await customers.get_service_plan(tx, isp_id, plan_id)
            return plan, PlanRules.from_rows(plan, await pricing.area_rates(tx, isp_id, plan_id),
                                             await pricing.free_zones(tx, isp_id, plan_id))
        cached = await self._kept(f"plan:{plan_id}", read)
        if cached[0]["isp_id"] != isp_id:
            return await read()
        return cached

    async def carrier_decks(self, tx: Tx, isp_id: int) -> list[Row]:
        """The ISP's enabled carriers with their cards, kept like `isp`: migration 0051's
        trigger publishes `decks:<isp>` when a carrier or a deck changes."""
        return await self._kept(f"decks:{isp_id}", lambda: ratedecks.carrier_decks(tx, isp_id))

    async def version_at(self, tx: Tx, isp_id: int, deck_id: int, at: datetime.datetime) -> int | None:
        """Entries remember their ISP, so another ISP's id finds nothing, cached or not."""
        key = str(deck_id)
        cached = self.in_force.get(key)
        if cached is None:
            rows = await ratedecks.published_versions(tx, isp_id, deck_id)
            if not rows:
                return None
            cached = (isp_id, [(row["effective_at"], row["id"]) for row in rows])
            self.in_force.put(key, cached)
        owner, versions = cached
        if owner != isp_id:
            return None
        return next((version for effective, version in versions if effective <= at), None)

    async def index(self, tx: Tx, isp_id: int, version_id: int) -> RateDeck:
        cached = self._indexes.get(version_id)
        if cached is None or cached[0] != isp_id:
            rows = await ratedecks.version_rates(tx, isp_id, version_id)
            cached = (isp_id, RateDeck(rate_of(row) for row in rows))
            if rows:
                self._indexes[version_id] = cached
            while len(self._indexes) > self.max_versions:
                self._indexes.popitem(last=False)
        else:
            self._indexes.move_to_end(version_id)
        return cached[1]

    async def deck_at(self, tx: Tx, isp_id: int, deck_id: int,
                      at: datetime.datetime) -> tuple[int, RateDeck] | None:
        version = await self.version_at(tx, isp_id, deck_id, at)
        if version is None:
            return None
        return version, await self.index(tx, isp_id, version)


async def upload_draft(tx: Tx, isp_id: int, deck_id: int, text: str, *, note: str = "") -> dict:
    """A draft from a CSV upload; any bad line refuses the upload whole."""
    isp = await get_isp(tx, isp_id)
    await ratedecks.get_deck(tx, isp_id, deck_id)
    return await ratedecks.create_draft(tx, isp_id, deck_id, parse_rate_csv(text, home_prefix=isp["home_prefix"]),
                                        note=note)


async def upload_more(tx: Tx, isp_id: int, version_id: int, text: str) -> dict:
    """The next part of a big upload, into the same draft (line numbers are the part's)."""
    isp = await get_isp(tx, isp_id)
    return await ratedecks.add_to_draft(tx, isp_id, version_id, parse_rate_csv(text, home_prefix=isp["home_prefix"]))


async def build_customer_card(tx: Tx, isp_id: int, deck_id: int, *, at: datetime.datetime,
                              indexes: DeckIndexes) -> dict:
    """A draft of a customer card from the carrier cards in force at `at` and its profit rules."""
    isp = await get_isp(tx, isp_id)
    setup = await ratedecks.profit_rules(tx, isp_id, deck_id)
    if not setup["sources"]:
        raise Invalid("sources", "the card has no carrier cards to be built from")
    carrier_decks = []
    for source in setup["sources"]:
        found = await indexes.deck_at(tx, isp_id, source, at)
        if found is not None:
            carrier_decks.append(found[1])
    if not carrier_decks:
        raise Invalid("sources", "none of the carrier cards has a published version in force")
    rules = [ProfitRule(row["prefix"], row["kind"], row["amount"], row["rounding"]) for row in setup["rules"]]
    try:
        deck = build_customer_deck(carrier_decks, rules, allow_loss=isp["allow_loss"])
    except RatingError as error:
        raise Invalid(error.field, str(error).split(": ", 1)[1]) from None
    if not len(deck):
        raise Invalid("rules", "no prefix of the carrier cards is covered by a profit rule")
    return await ratedecks.create_draft(tx, isp_id, deck_id, map(to_row, deck), note="built from carrier cards")
