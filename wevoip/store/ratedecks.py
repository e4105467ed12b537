"""
Rate decks: carrier cards (what a call costs) and customer cards (what it sells for).

A deck's rows live in versions. A draft is written whole (an upload or a build from carrier
cards) and never edited after it is published; publishing gives it the moment it takes
effect, and the version in force at a call's start is the latest published one whose
moment has come. Publishing announces the deck on the `rate_decks` channel so every node's
index of versions in force forgets it.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterable

from wevoip.store import fields
from wevoip.store.carriers import get_carrier
from wevoip.store.database import Row, Tx
from wevoip.store.errors import Invalid
from wevoip.store.notify import publish
from wevoip.store.rows import fetch_page, fetch_row, insert_row

CHANNEL = "rate_decks"
CLASSES = ("domestic", "international", "premium", "satellite")
MAX_ROWS = 500_000


@dataclass(frozen=True)
class RateRow:
    prefix: str
    description: str
    per_minute: Decimal
    connection_fee: Decimal
    increment_first: int
    increment_step: int
    dest_class: str


async def create_deck(tx: Tx, isp_id: int, *, name: str, kind: str, carrier_id: int | None = None) -> Row:
    name = fields.text("name", name, max_length=100)
    kind = fields.one_of("kind", kind, ("carrier", "customer"))
    if kind == "carrier":
        if carrier_id is None:
            raise Invalid("carrier_id", "a carrier card belongs to a carrier")
        await get_carrier(tx, isp_id, carrier_id)
    elif carrier_id is not None:
        raise Invalid("carrier_id", "a customer card belongs to no carrier")
    return await insert_row(tx, "rate_decks", {"isp_id": isp_id, "name": name, "kind": kind,
                                               "carrier_id": carrier_id})


async def get_deck(tx: Tx, isp_id: int, deck_id: int) -> Row:
    return await fetch_row(tx, "rate_decks", {"isp_id": isp_id, "id": deck_id}, "rate deck")


async def list_decks(tx: Tx, isp_id: int, *, limit: int = 100, offset: int = 0) -> list[Row]:
    return await fetch_page(tx, "rate_decks", {"isp_id": isp_id}, limit, offset)


async def create_draft(tx: Tx, isp_id: int, deck_id: int, rows: Iterable[RateRow], *, note: str = "") -> Row:
    """A new draft holding `rows` (already checked by the caller, prefixes unique)."""
    await get_deck(tx, isp_id, deck_id)
    version = await insert_row(tx, "rate_deck_versions", {
        "isp_id": isp_id, "deck_id": deck_id,
        "note": fields.text("note", note, max_length=200, required=False)})
    return await add_to_draft(tx, isp_id, version["id"], rows)


async def add_to_draft(tx: Tx, isp_id: int, version_id: int, rows: Iterable[RateRow]) -> Row:
    """More rows for a draft (a big deck arrives in parts); a prefix it holds is refused."""
    version = await fetch_row(tx, "rate_deck_versions", {"isp_id": isp_id, "id": version_id},
                              "rate deck version", lock=True)
    if version["status"] != "draft":
        raise Invalid("version_id", "is published; rows go into a new draft")
    rows = list(rows)
    if version["row_count"] + len(rows) > MAX_ROWS:
        raise Invalid("rows", f"a deck holds at most {MAX_ROWS} rows")
    prefixes = [row.prefix for row in rows]
    taken = await tx.fetch_value("select min(prefix) from rates where version_id = %s and prefix = any(%s)",
                                 (version_id, prefixes))
    if taken is not None:
        raise Invalid("prefix", f"{taken} is already in the draft")
    columns = list(zip(*[(r.prefix, r.description, r.per_minute, r.connection_fee, r.increment_first,
                          r.increment_step, r.dest_class) for r in rows])) or [()] * 7
    await tx.execute(
        "insert into rates (isp_id, version_id, prefix, description, per_minute, connection_fee,"
        " increment_first, increment_step, dest_class)"
        " select %s, %s, * from unnest(%s::text[], %s::text[], %s::numeric[], %s::numeric[],"
        " %s::int[], %s::int[], %s::text[])",
        (isp_id, version_id, *map(list, columns)))
    return await tx.fetch_one("update rate_deck_versions set row_count = row_count + %s where id = %s returning *",
                              (len(rows), version_id))


async def get_version(tx: Tx, isp_id: int, version_id: int) -> Row:
    return await fetch_row(tx, "rate_deck_versions", {"isp_id": isp_id, "id": version_id}, "rate deck version")


async def list_versions(tx: Tx, isp_id: int, deck_id: int, *, limit: int = 100, offset: int = 0) -> list[Row]:
    return await tx.fetch("select * from rate_deck_versions where isp_id = %s and deck_id = %s"
                          " order by id desc limit %s offset %s", (isp_id, deck_id, limit, offset))


async def publish_version(tx: Tx, isp_id: int, version_id: int, effective_at: datetime.datetime) -> Row:
    if not isinstance(effective_at, datetime.datetime) or effective_at.tzinfo is None:
        raise Invalid("effective_at", "must be a date and time with its time zone")
    version = await fetch_row(tx, "rate_deck_versions", {"isp_id": isp_id, "id": version_id},
                              "rate deck version", lock=True)
    if version["status"] != "draft":
        raise Invalid("version_id", "is already published")
    row = await tx.fetch_one(
        "update rate_deck_versions set status = 'published', effective_at = %s, published_at = now()"
        " where id = %s returning *", (effective_at, version_id))
    await publish(tx, CHANNEL, str(version["deck_id"]))
    return row


async def published_versions(tx: Tx, isp_id: int, deck_id: int) -> list[Row]:
    """(id, effective_at) of a deck's published versions, newest moment first."""
    return await tx.fetch(
        "select id, effective_at from rate_deck_versions where isp_id = %s and deck_id = %s"
        " and status = 'published' order by effective_at desc, id desc", (isp_id, deck_id))


async def version_rates(tx: Tx, isp_id: int, version_id: int, *, limit: int | None = None,
                        offset: int = 0) -> list[Row]:
    return await tx.fetch(
        "select prefix, description, per_minute, connection_fee, increment_first, increment_step,"
        " dest_class from rates where isp_id = %s and version_id = %s order by prefix"
        " limit %s offset %s", (isp_id, version_id, limit, offset))


async def carrier_decks(tx: Tx, isp_id: int) -> list[Row]:
    """Enabled carriers with their cards, in LCR priority order."""
    return await tx.fetch(
        "select d.id as deck_id, d.carrier_id, c.name as carrier_name, c.lcr_priority"
        " from rate_decks d join carriers c on c.id = d.carrier_id and c.isp_id = d.isp_id"
        " where d.isp_id = %s and d.kind = 'carrier' and c.enabled order by c.lcr_priority, c.id",
        (isp_id,))


def _rule(index: int, rule: Any) -> tuple:
    where = f"rules[{index}]"
    if not isinstance(rule, dict):
        raise Invalid(where, "must be an object with prefix, kind, amount and rounding")
    prefix = rule.get("prefix", "")
    if not isinstance(prefix, str) or not prefix.isdigit() and prefix != "" or len(prefix) > 15:
        raise Invalid(f"{where}.prefix", "must be up to 15 digits (empty for every prefix)")
    kind = fields.one_of(f"{where}.kind", rule.get("kind"), ("absolute", "percent"))
    amount = fields.money(f"{where}.amount", rule.get("amount"))
    rounding = fields.money(f"{where}.rounding", rule.get("rounding", "0.000001"), minimum=Decimal("0.000001"))
    return prefix, kind, amount, rounding


async def set_profit_rules(tx: Tx, isp_id: int, deck_id: int, *, rules: list[dict],
                           sources: list[int]) -> dict:
    """Replace a customer card's profit rules and the carrier cards it is built from."""
    deck = await get_deck(tx, isp_id, deck_id)
    if deck["kind"] != "customer":
        raise Invalid("deck_id", "profit rules belong to a customer card")
    checked = [_rule(i, rule) for i, rule in enumerate(rules)]
    if len({rule[0] for rule in checked}) != len(checked):
        raise Invalid("rules", "a prefix has more than one rule")
    for index, source in enumerate(sources):
        source_deck = await get_deck(tx, isp_id, source)
        if source_deck["kind"] != "carrier":
            raise Invalid(f"sources[{index}]", "is not a carrier card")
    await tx.execute("delete from profit_rules where isp_id = %s and deck_id = %s", (isp_id, deck_id))
    await tx.execute("delete from deck_sources where isp_id = %s and deck_id = %s", (isp_id, deck_id))
    for prefix, kind, amount, rounding in checked:
        await tx.execute("insert into profit_rules (isp_id, deck_id, prefix, kind, amount, rounding)"
                         " values (%s, %s, %s, %s, %s, %s)", (isp_id, deck_id, prefix, kind, amount, rounding))
    for source in dict.fromkeys(sources):
        await tx.execute("insert into deck_sources (isp_id, deck_id, source_deck_id) values (%s, %s, %s)",
                         (isp_id, deck_id, source))
    return await profit_rules(tx, isp_id, deck_id)


async def profit_rules(tx: Tx, isp_id: int, deck_id: int) -> dict:
    await get_deck(tx, isp_id, deck_id)
    rules = await tx.fetch("select prefix, kind, amount, rounding from profit_rules"
                           " where isp_id = %s and deck_id = %s order by prefix", (isp_id, deck_id))
    sources = await tx.fetch("select source_deck_id from deck_sources where isp_id = %s and deck_id = %s"
                             " order by source_deck_id", (isp_id, deck_id))
    return {"rules": rules, "sources": [row["source_deck_id"] for row in sources]}
