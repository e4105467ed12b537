"""
An ISP's dialplan rules, kept in the order they are tried.

Writers lock the ISP's row first, so two consoles reordering at once take turns instead of
interleaving positions. The patterns are checked above the store (the routing layer's
`Rule.check()`); here only their lengths are held, as the schema holds them too.
"""

from __future__ import annotations

from typing import Any

from wevoip.store import fields
from wevoip.store.database import Row, Tx
from wevoip.store.errors import Invalid, LimitReached, NotFound
from wevoip.store.rows import fetch_row, update_row

MAX_RULES = 500


def _pattern(field: str, value: Any) -> str:
    value = fields.text(field, value, max_length=200)
    if value != value.strip() or "\n" in value:
        raise Invalid(field, "must not start or end with spaces or hold line breaks")
    return value


_CHECKS = {
    "match": _pattern,
    "subs": _pattern,
    "replacement": _pattern,
    "description": lambda field, value: fields.text(field, value, max_length=200, required=False),
}


async def _lock_isp(tx: Tx, isp_id: int) -> int:
    """Lock the ISP (so rule writers take turns) and count its rules."""
    if await tx.fetch_one("select id from isps where id = %s for no key update", (isp_id,)) is None:
        raise NotFound("isp")
    return await tx.fetch_value("select count(*) from dialplan_rules where isp_id = %s", (isp_id,))


async def list_rules(tx: Tx, isp_id: int, *, limit: int = MAX_RULES, offset: int = 0) -> list[Row]:
    return await tx.fetch("select * from dialplan_rules where isp_id = %s order by position limit %s offset %s",
                          (isp_id, limit, offset))


async def get_rule(tx: Tx, isp_id: int, rule_id: int) -> Row:
    return await fetch_row(tx, "dialplan_rules", {"isp_id": isp_id, "id": rule_id}, "dialplan rule")


async def create_rule(tx: Tx, isp_id: int, *, match: str, subs: str, replacement: str, description: str = "",
                      position: int | None = None) -> Row:
    """Appended, or put at `position` (0 is first) with the rules from there moved down."""
    values = {name: _CHECKS[name](name, value) for name, value in
              (("match", match), ("subs", subs), ("replacement", replacement), ("description", description))}
    count = await _lock_isp(tx, isp_id)
    if count >= MAX_RULES:
        raise LimitReached("dialplan_rules", MAX_RULES)
    if position is None or position > count:
        position = count
    position = fields.count("position", position, maximum=MAX_RULES)
    await tx.execute("update dialplan_rules set position = position + 1 where isp_id = %s and position >= %s",
                     (isp_id, position))
    return await tx.fetch_one(
        "insert into dialplan_rules (isp_id, position, match, subs, replacement, description)"
        " values (%s, %s, %s, %s, %s, %s) returning *",
        (isp_id, position, values["match"], values["subs"], values["replacement"], values["description"]))


async def update_rule(tx: Tx, isp_id: int, rule_id: int, **changes: Any) -> Row:
    return await update_row(tx, "dialplan_rules", {"isp_id": isp_id, "id": rule_id}, "dialplan rule",
                            changes, _CHECKS)


async def delete_rule(tx: Tx, isp_id: int, rule_id: int) -> None:
    await _lock_isp(tx, isp_id)
    position = await tx.fetch_value("delete from dialplan_rules where isp_id = %s and id = %s returning position",
                                    (isp_id, rule_id))
    if position is None:
        raise NotFound("dialplan rule")
    await tx.execute("update dialplan_rules set position = position - 1 where isp_id = %s and position > %s",
                     (isp_id, position))


async def reorder_rules(tx: Tx, isp_id: int, rule_ids: list[int]) -> list[Row]:
    """`rule_ids` is every rule of the ISP, once, in the new order."""
    await _lock_isp(tx, isp_id)
    present = {row["id"] for row in await tx.fetch("select id from dialplan_rules where isp_id = %s", (isp_id,))}
    if len(set(rule_ids)) != len(rule_ids) or set(rule_ids) != present:
        raise Invalid("rule_ids", "must list every rule of the dialplan exactly once")
    await tx.execute(
        "update dialplan_rules r set position = n.ordinality - 1"
        " from unnest(%s::bigint[]) with ordinality n(id, ordinality) where r.isp_id = %s and r.id = n.id",
        (rule_ids, isp_id))
    return await list_rules(tx, isp_id)


async def replace_rules(tx: Tx, isp_id: int, rules: list[dict[str, str]], *, append: bool = False) -> list[Row]:
    """A preset loaded in one step: it takes the dialplan's place, or goes after its rules."""
    count = await _lock_isp(tx, isp_id)
    if not append:
        await tx.execute("delete from dialplan_rules where isp_id = %s", (isp_id,))
        count = 0
    if count + len(rules) > MAX_RULES:
        raise LimitReached("dialplan_rules", MAX_RULES)
    for index, rule in enumerate(rules):
        values = {name: _CHECKS[name](name, rule.get(name, "")) for name in _CHECKS}
        await tx.execute(
            "insert into dialplan_rules (isp_id, position, match, subs, replacement, description)"
            " values (%s, %s, %s, %s, %s, %s)",
            (isp_id, count + index, values["match"], values["subs"], values["replacement"], values["description"]))
    return await list_rules(tx, isp_id)
