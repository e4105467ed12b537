"""
The ISP console's dialplan: the ordered rules, country presets loaded in one step, and a
box that shows what a dialled number becomes with the rules as they are.
"""

from __future__ import annotations

from wevoip.routing.dialplan import Caller, DialplanError, Rule, translate
from wevoip.store import dialplans
from wevoip.web.console.context import Ctx, FormError, Redirect
from wevoip.web.console.routes import page
from wevoip.web.console.widgets import Button, Facts, Field, Form, Table, Text

ISP = ("isp",)


async def dialplan_form(ctx: Ctx, result: Facts | None = None):
    rules = await ctx.tx(dialplans.list_rules, ctx.isp_id)
    for row in rules:
        row["order"] = row["position"] + 1
        row["_buttons"] = [Button("Delete", f"/isp/dialplan/{row['id']}/delete", danger=True)]
    presets = sorted(ctx.console.services.dialplan_presets.values(), key=lambda preset: preset.name)
    v = ctx.value
    sections = [Text("Every number is turned into E.164 by the first rule whose match fits what was dialled: "
                     "subs cuts it into groups, the replacement rebuilds it, with _CC and _AC for the caller's "
                     "country and area code.")]
    sections.append(Form("/isp/dialplan/translate", "Show", [
        Field("dialled", "Dialled number", value=v("dialled"), required=True),
        Field("country_code", "Caller's country code (_CC)", value=v("country_code", "1")),
        Field("area_code", "Caller's area code (_AC)", value=v("area_code"))],
        title="What does a dialled number become?"))
    if result is not None:
        sections.append(result)
    sections += [
        Table([("order", "#"), ("match", "Match"), ("subs", "Subs"), ("replacement", "Replacement"),
               ("description", "Description")], rules, buttons="_buttons", title="Rules",
              empty="No rules: numbers are only accepted already in E.164. Load a preset below."),
        Form("/isp/dialplan/preset", "Load preset", [
            Field("preset", "Country preset", "select", v("preset"),
                  [(preset.name, f"{preset.country}: {preset.description}") for preset in presets]),
            Field("append", "Add after the current rules instead of replacing them", "checkbox",
                  ctx.checked("append"))], title="Country presets"),
        Form("/isp/dialplan", "Add rule", [
            Field("match", "Match", value=v("match"), required=True, help="A regular expression, such as 0[1-9]\\d{9}."),
            Field("subs", "Subs", value=v("subs"), required=True, help="Such as ^0(\\d+)$."),
            Field("replacement", "Replacement", value=v("replacement"), required=True, help="Such as +44\\1."),
            Field("description", "Description", value=v("description"))], title="New rule")]
    return ctx.render("Dialplan", *sections)


@page("/isp/dialplan", roles=ISP)
async def dialplan_page(ctx: Ctx):
    return await dialplan_form(ctx)


def _checked(match: str, subs: str, replacement: str, description: str = "") -> Rule:
    try:
        return Rule(match, subs, replacement, description).check()
    except DialplanError as error:
        raise FormError(error.field, error.problem) from None


@page("/isp/dialplan", roles=ISP, method="POST", form_of=dialplan_form)
async def rule_create(ctx: Ctx):
    rule = _checked(ctx.value("match"), ctx.value("subs"), ctx.value("replacement"), ctx.value("description"))
    await ctx.tx(lambda tx: dialplans.create_rule(tx, ctx.isp_id, match=rule.match, subs=rule.subs,
                                                  replacement=rule.replacement, description=rule.description))
    return Redirect("/isp/dialplan")


@page("/isp/dialplan/<int:rule_id>/delete", roles=ISP, method="POST")
async def rule_delete(ctx: Ctx):
    await ctx.tx(dialplans.delete_rule, ctx.isp_id, ctx.params["rule_id"])
    return Redirect("/isp/dialplan")


@page("/isp/dialplan/preset", roles=ISP, method="POST", form_of=dialplan_form)
async def preset_load(ctx: Ctx):
    preset = ctx.console.services.dialplan_presets.get(ctx.value("preset"))
    if preset is None:
        raise FormError("preset", "is not a preset this node has")
    rules = [{"match": rule.match, "subs": rule.subs, "replacement": rule.replacement,
              "description": rule.description} for rule in preset.rules()]
    for rule in rules:
        _checked(**rule)
    await ctx.tx(dialplans.replace_rules, ctx.isp_id, rules, append=ctx.checked("append"))
    return Redirect("/isp/dialplan")


@page("/isp/dialplan/translate", roles=ISP, method="POST", form_of=dialplan_form)
async def translate_box(ctx: Ctx):
    country_code, area_code = ctx.value("country_code"), ctx.value("area_code")
    if country_code and not (country_code.isdigit() and len(country_code) <= 3 and country_code[0] != "0"):
        raise FormError("country_code", "must be 1 to 3 digits, not starting with 0")
    if area_code and not (area_code.isdigit() and len(area_code) <= 6):
        raise FormError("area_code", "must be up to 6 digits")
    rows = await ctx.tx(dialplans.list_rules, ctx.isp_id)
    rules = [Rule(row["match"], row["subs"], row["replacement"], row["description"]) for row in rows]
    found = translate(ctx.value("dialled"), rules, Caller(country_code, area_code))
    if found is None:
        result = Facts([("Dialled", ctx.value("dialled")), ("Becomes", "no rule matches: the call is refused")],
                       title="Result")
    else:
        index, e164 = found
        result = Facts([("Dialled", ctx.value("dialled")), ("Becomes", e164),
                        ("By rule", f"#{index + 1} {rows[index]['description']}".strip())], title="Result")
    return await dialplan_form(ctx, result)
