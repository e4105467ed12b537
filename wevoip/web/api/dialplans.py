"""An ISP's dialplan rules, the country presets, and what a dialled number becomes."""

from __future__ import annotations

from wevoip.routing.dialplan import Caller, DialplanError, Rule, translate
from wevoip.routing.numbering import caller_of
from wevoip.store import dialplans, routing
from wevoip.store.errors import NotFound
from wevoip.web.api.errors import ApiError
from wevoip.web.api.routes import (BOOLEAN, ID, ID_IN, Call, api_route, items_of, nullable, obj, record, shaped,
                                   text)

_PATTERN = text(200, minLength=1)
RULE_CREATE = obj({"match": _PATTERN, "subs": _PATTERN, "replacement": _PATTERN, "description": text(200),
                   "position": {"type": "integer", "minimum": 0, "maximum": dialplans.MAX_RULES}},
                  ("match", "subs", "replacement"))
RULE_UPDATE = obj({"match": _PATTERN, "subs": _PATTERN, "replacement": _PATTERN, "description": text(200)})
ORDER = obj({"rule_ids": {"type": "array", "items": ID_IN,
                          "maxItems": dialplans.MAX_RULES}}, ("rule_ids",))
PRESET_LOAD = obj({"preset": text(32, minLength=1), "append": BOOLEAN}, ("preset",))
TRANSLATE = obj({"dialled": shaped(r"^\s*[0-9*#+]{1,32}\s*$", 40, "what a phone dials: digits, *, # and +"),
                 "subscriber_id": ID_IN,
                 "country_code": shaped("^([1-9][0-9]{0,2})?$", 3, "1 to 3 digits, not from 0, or empty"),
                 "area_code": shaped("^[0-9]{0,6}$", 6, "up to 6 digits")}, ("dialled",))

RULE = record({"id": ID, "isp_id": ID, "position": {"type": "integer"}, "match": {"type": "string"},
               "subs": {"type": "string"}, "replacement": {"type": "string"}, "description": {"type": "string"}})
_PRESET_RULE = record({"match": {"type": "string"}, "subs": {"type": "string"},
                       "replacement": {"type": "string"}, "description": {"type": "string"}})
PRESET = record({"name": {"type": "string"}, "country": {"type": "string"}, "description": {"type": "string"},
                 "rules": {"type": "array", "items": _PRESET_RULE}})
TRANSLATION = record({"dialled": {"type": "string"}, "e164": nullable({"type": "string"}),
                      "caller_e164": nullable({"type": "string"}),
                      "rule_id": nullable(ID), "position": nullable({"type": "integer"}),
                      "country_code": {"type": "string"}, "area_code": {"type": "string"}})


def checked_rule(values: dict) -> Rule:
    """The routing layer's checks (compiles, short, no nested repetition) as a 422 naming the field."""
    try:
        return Rule(values["match"], values["subs"], values["replacement"], values.get("description", "")).check()
    except DialplanError as error:
        raise ApiError(422, "invalid", str(error), field=error.field) from None


def _rule_of(row) -> Rule:
    return Rule(row["match"], row["subs"], row["replacement"], row["description"])


@api_route("GET", "/isps/{isp_id}/dialplan-rules", scope="read", summary="List the dialplan rules in order",
           tag="dialplan", returns=RULE, listing=True)
async def list_rules(call: Call):
    limit, offset = call.page()
    return await call.tx(dialplans.list_rules, call.params["isp_id"], limit=limit, offset=offset)


@api_route("POST", "/isps/{isp_id}/dialplan-rules", scope="write", tag="dialplan", body=RULE_CREATE,
           returns=RULE, status=201, summary="Add a rule (at the end, or at 'position', 0 being first)")
async def create_rule(call: Call):
    checked_rule(call.body)
    return await call.tx(lambda tx: dialplans.create_rule(tx, call.params["isp_id"], **call.body))


@api_route("GET", "/isps/{isp_id}/dialplan-rules/{rule_id}", scope="read", summary="Show a dialplan rule",
           tag="dialplan", returns=RULE)
async def get_rule(call: Call):
    return await call.tx(dialplans.get_rule, call.params["isp_id"], call.params["rule_id"])


@api_route("PATCH", "/isps/{isp_id}/dialplan-rules/{rule_id}", scope="write", summary="Change a dialplan rule",
           tag="dialplan", body=RULE_UPDATE, returns=RULE)
async def update_rule(call: Call):
    async def work(tx):
        current = await dialplans.get_rule(tx, call.params["isp_id"], call.params["rule_id"])
        checked_rule({**current, **call.body})
        return await dialplans.update_rule(tx, call.params["isp_id"], call.params["rule_id"], **call.body)
    return await call.tx(work)


@api_route("DELETE", "/isps/{isp_id}/dialplan-rules/{rule_id}", scope="write", summary="Delete a dialplan rule",
           tag="dialplan", status=204)
async def delete_rule(call: Call):
    await call.tx(dialplans.delete_rule, call.params["isp_id"], call.params["rule_id"])


@api_route("PUT", "/isps/{isp_id}/dialplan-rules/order", scope="write", tag="dialplan", body=ORDER,
           returns=items_of(RULE), summary="Put the rules in a new order (every rule id, once)")
async def reorder_rules(call: Call):
    return {"items": await call.tx(dialplans.reorder_rules, call.params["isp_id"], call.body["rule_ids"])}


def _preset_json(preset) -> dict:
    return {"name": preset.name, "country": preset.country, "description": preset.description,
            "rules": [{"match": rule.match, "subs": rule.subs, "replacement": rule.replacement,
                       "description": rule.description} for rule in preset.rules()]}


@api_route("GET", "/isps/{isp_id}/dialplan-presets", scope="read", tag="dialplan", returns=PRESET,
           listing=True, summary="List the country presets this node has (dialplan preset plugins)")
async def list_presets(call: Call):
    limit, offset = call.page()
    presets = sorted(call.services.dialplan_presets.values(), key=lambda preset: preset.name)
    return [_preset_json(preset) for preset in presets[offset:offset + limit]]


@api_route("POST", "/isps/{isp_id}/dialplan-rules/preset", scope="write", tag="dialplan", body=PRESET_LOAD,
           returns=items_of(RULE),
           summary="Load a country preset in one step: it replaces the rules, or goes after them with append")
async def load_preset(call: Call):
    preset = call.services.dialplan_presets.get(call.body["preset"])
    if preset is None:
        known = ", ".join(sorted(call.services.dialplan_presets)) or "none"
        raise ApiError(422, "invalid", f"preset: no preset of that name (this node has: {known})", field="preset")
    rules = _preset_json(preset)["rules"]
    for rule in rules:
        checked_rule(rule)
    return {"items": await call.tx(dialplans.replace_rules, call.params["isp_id"], rules,
                                   append=call.body.get("append", False))}


@api_route("POST", "/isps/{isp_id}/dialplan/translate", scope="read", tag="dialplan", body=TRANSLATE,
           returns=TRANSLATION,
           summary="What a dialled number becomes: _CC and _AC from a subscriber's number (as calls use them),"
                   " or given")
async def translate_number(call: Call):
    isp_id = call.params["isp_id"]

    async def work(tx):
        rows = await dialplans.list_rules(tx, isp_id)
        if "subscriber_id" not in call.body:
            return rows, None
        identity = await routing.caller_identity(tx, isp_id, call.body["subscriber_id"])
        if identity is None:
            raise NotFound("subscriber")
        return rows, identity["e164"]
    rows, caller_e164 = await call.tx(work)
    caller = caller_of(caller_e164)
    caller = Caller(call.body.get("country_code", caller.country_code), call.body.get("area_code", caller.area_code))
    found = translate(call.body["dialled"], [_rule_of(row) for row in rows], caller)
    index, e164 = found if found is not None else (None, None)
    return {"dialled": call.body["dialled"], "e164": e164, "caller_e164": caller_e164,
            "rule_id": None if index is None else rows[index]["id"], "position": index,
            "country_code": caller.country_code, "area_code": caller.area_code}
