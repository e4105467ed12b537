"""
Every data-access function that takes an ISP is called with another ISP's id against the
first ISP's objects: it must find nothing, change nothing and return nothing of theirs.
The list of cases is checked against the modules, so a new function cannot be forgotten.
"""

import datetime
import inspect
from decimal import Decimal

import pytest
import pytest_twisted

from tests.store.builders import build_tree
from tests.store.builders import BINDING
from wevoip.store import (admins, audit, calllog, calls, carriers, customers, dialplans, dids, domains, hostnames,
                          isps, ledger, outbox, ownership, pricing, ratedecks, recurring, registrations, reports,
                          routing, secrets, selfcare, siplocks, subscribers, tenants, webhooks, webusers)
from wevoip.store.errors import Invalid, NotFound

MODULES = (isps, customers, domains, tenants, subscribers, carriers, dids, admins, registrations, outbox,
           dialplans, ownership, webhooks, webusers, audit, selfcare, hostnames, ratedecks, pricing, ledger, calls,
           recurring, reports, calllog, routing, siplocks)


def _ids(rows):
    return {row["id"] for row in rows}


# Each case gets (tx, a, b): `a` is the victim's tree, `b` the other ISP's. It returns what
# the call gave, and the check says why that is no leak.
NOT_FOUND = "not found"
REFUSED = "refused by SQL"  # the composite foreign keys hold even where no code looks
CASES = {
    "isps.get_isp": (lambda tx, a, b: isps.get_isp(tx, b.isp["id"]),
                     lambda result, a, b: result["id"] == b.isp["id"]),
    "isps.update_isp": (lambda tx, a, b: isps.update_isp(tx, b.isp["id"], name="Renamed"),
                        lambda result, a, b: result["id"] == b.isp["id"]),
    "isps.set_isp_logo": (lambda tx, a, b: isps.set_isp_logo(tx, b.isp["id"], b"\x89PNG", "image/png"),
                          lambda result, a, b: result["id"] == b.isp["id"]),
    "customers.create_service_plan": (
        lambda tx, a, b: customers.create_service_plan(tx, b.isp["id"], name="Premium"),
        lambda result, a, b: result["isp_id"] == b.isp["id"]),
    "customers.get_service_plan": (lambda tx, a, b: customers.get_service_plan(tx, b.isp["id"], a.plan["id"]), NOT_FOUND),
    "customers.list_service_plans": (lambda tx, a, b: customers.list_service_plans(tx, b.isp["id"]),
                                     lambda result, a, b: a.plan["id"] not in _ids(result)),
    "customers.create_customer": (
        lambda tx, a, b: customers.create_customer(tx, b.isp["id"], name="x", service_plan_id=a.plan["id"]),
        NOT_FOUND),
    "customers.get_customer": (lambda tx, a, b: customers.get_customer(tx, b.isp["id"], a.customer["id"]), NOT_FOUND),
    "customers.list_customers": (lambda tx, a, b: customers.list_customers(tx, b.isp["id"]),
                                 lambda result, a, b: a.customer["id"] not in _ids(result)),
    "customers.update_customer": (
        lambda tx, a, b: customers.update_customer(tx, b.isp["id"], a.customer["id"], name="Hijacked"), NOT_FOUND),
    "customers.set_customer_status": (
        lambda tx, a, b: customers.set_customer_status(tx, b.isp["id"], a.customer["id"], "SUSPENDED"), NOT_FOUND),
    "domains.create_namespace_domain": (
        lambda tx, a, b: domains.create_namespace_domain(tx, b.isp["id"], "fresh"),
        lambda result, a, b: result["name"] == "fresh." + b.isp["namespace"]),
    "domains.add_verified_domain": (
        lambda tx, a, b: domains.add_verified_domain(tx, b.isp["id"], "pbx.elsewhere.org"),
        lambda result, a, b: result["isp_id"] == b.isp["id"]),
    "domains.mark_domain_verified": (
        lambda tx, a, b: domains.mark_domain_verified(tx, b.isp["id"], a.domain["id"]), NOT_FOUND),
    "domains.get_domain": (lambda tx, a, b: domains.get_domain(tx, b.isp["id"], a.domain["id"]), NOT_FOUND),
    "domains.list_domains": (lambda tx, a, b: domains.list_domains(tx, b.isp["id"]),
                             lambda result, a, b: a.domain["id"] not in _ids(result)),
    "tenants.create_tenant": (
        lambda tx, a, b: tenants.create_tenant(tx, b.isp["id"], b.customer["id"], name="x", domain_id=a.domain["id"]),
        NOT_FOUND),
    "tenants.get_tenant": (lambda tx, a, b: tenants.get_tenant(tx, b.isp["id"], a.tenant["id"]), NOT_FOUND),
    "tenants.list_tenants": (lambda tx, a, b: tenants.list_tenants(tx, b.isp["id"], a.customer["id"]),
                             lambda result, a, b: result == []),
    "tenants.rename_tenant": (lambda tx, a, b: tenants.rename_tenant(tx, b.isp["id"], a.tenant["id"], "x"), NOT_FOUND),
    "subscribers.create_subscriber": (
        lambda tx, a, b: subscribers.create_subscriber(tx, b.isp["id"], a.tenant["id"], username="mallory",
                                                       password="Sup3r-secret-00"), NOT_FOUND),
    "subscribers.get_subscriber": (
        lambda tx, a, b: subscribers.get_subscriber(tx, b.isp["id"], a.subscriber["id"]), NOT_FOUND),
    "subscribers.list_subscribers": (
        lambda tx, a, b: subscribers.list_subscribers(tx, b.isp["id"], a.tenant["id"]),
        lambda result, a, b: result == []),
    "subscribers.update_subscriber": (
        lambda tx, a, b: subscribers.update_subscriber(tx, b.isp["id"], a.subscriber["id"], display_name="x"),
        NOT_FOUND),
    "subscribers.set_sip_password": (
        lambda tx, a, b: subscribers.set_sip_password(tx, b.isp["id"], a.subscriber["id"], "Sup3r-secret-00"),
        NOT_FOUND),
    "subscribers.delete_subscriber": (
        lambda tx, a, b: subscribers.delete_subscriber(tx, b.isp["id"], a.subscriber["id"]), NOT_FOUND),
    "subscribers.held_number": (
        lambda tx, a, b: subscribers.held_number(tx, b.isp["id"], a.tenant["id"], a.subscriber["e164"]), REFUSED),
    "subscribers.count_subscribers": (
        lambda tx, a, b: subscribers.count_subscribers(tx, b.isp["id"], a.customer["id"]),
        lambda result, a, b: result == 0),
    "carriers.create_carrier": (lambda tx, a, b: carriers.create_carrier(tx, b.isp["id"], name="Other"),
                                lambda result, a, b: result["isp_id"] == b.isp["id"]),
    "carriers.get_carrier": (lambda tx, a, b: carriers.get_carrier(tx, b.isp["id"], a.carrier["id"]), NOT_FOUND),
    "carriers.list_carriers": (lambda tx, a, b: carriers.list_carriers(tx, b.isp["id"]),
                               lambda result, a, b: a.carrier["id"] not in _ids(result)),
    "carriers.update_carrier": (
        lambda tx, a, b: carriers.update_carrier(tx, b.isp["id"], a.carrier["id"], enabled=False), NOT_FOUND),
    "carriers.create_gateway": (
        lambda tx, a, b: carriers.create_gateway(tx, b.isp["id"], a.carrier["id"], host="198.51.100.1"), NOT_FOUND),
    "carriers.get_gateway": (lambda tx, a, b: carriers.get_gateway(tx, b.isp["id"], a.gateway["id"]), NOT_FOUND),
    "carriers.list_gateways": (lambda tx, a, b: carriers.list_gateways(tx, b.isp["id"], a.carrier["id"]),
                               NOT_FOUND),
    "carriers.update_gateway": (
        lambda tx, a, b: carriers.update_gateway(tx, b.isp["id"], a.gateway["id"], port=5080), NOT_FOUND),
    "dids.add_dids": (lambda tx, a, b: number_of_both(tx, a, b),
                      lambda result, a, b: [row["isp_id"] for row in result] == [b.isp["id"]]),
    "dids.get_did": (lambda tx, a, b: dids.get_did(tx, b.isp["id"], a.did["id"]), NOT_FOUND),
    "dids.list_dids": (lambda tx, a, b: dids.list_dids(tx, b.isp["id"], a.tenant["id"]),
                       lambda result, a, b: result == []),
    "dids.allocate_did": (lambda tx, a, b: dids.allocate_did(tx, b.isp["id"], b.did["id"], a.tenant["id"]), NOT_FOUND),
    "dids.route_did": (lambda tx, a, b: dids.route_did(tx, b.isp["id"], a.did["id"], None), NOT_FOUND),
    "dids.release_did": (lambda tx, a, b: dids.release_did(tx, b.isp["id"], a.did["id"]), NOT_FOUND),
    "admins.create_api_token": (
        lambda tx, a, b: admins.create_api_token(tx, "x" * 40, isp_id=b.isp["id"], customer_id=a.customer["id"]),
        NOT_FOUND),
    "registrations.save_binding": (
        lambda tx, a, b: registrations.save_binding(tx, b.isp["id"], a.tenant["id"], a.subscriber["id"],
                                                    BINDING, "n"), REFUSED),
    "registrations.delete_binding": (
        lambda tx, a, b: registrations.delete_binding(tx, b.isp["id"], a.subscriber["id"], BINDING.contact),
        lambda result, a, b: result == 0),
    "registrations.delete_bindings": (
        lambda tx, a, b: registrations.delete_bindings(tx, b.isp["id"], a.subscriber["id"]),
        lambda result, a, b: result == 0),
    "registrations.bindings_of": (
        lambda tx, a, b: registrations.bindings_of(tx, b.isp["id"], a.subscriber["id"]),
        lambda result, a, b: result == []),
    "registrations.tenant_registrations": (
        lambda tx, a, b: registrations.tenant_registrations(tx, b.isp["id"], a.tenant["id"]),
        lambda result, a, b: result == []),
    "outbox.enqueue_mail": (
        lambda tx, a, b: outbox.enqueue_mail(tx, b.isp["id"], to="x@example.org", subject="s", body="b"),
        lambda result, a, b: result["isp_id"] == b.isp["id"]),
    "outbox.enqueue_webhook": (
        lambda tx, a, b: outbox.enqueue_webhook(tx, b.isp["id"], event="call.ended", data={}),
        lambda result, a, b: result["isp_id"] == b.isp["id"]),
    "calls.admit_call": (
        lambda tx, a, b: calls.admit_call(tx, b.isp["id"], customer_id=a.customer["id"], tenant_id=a.tenant["id"],
                                          call_id="x", node="n", direction="outbound"), NOT_FOUND),
    "calls.end_call": (lambda tx, a, b: victim_call_then_end(tx, a, b), lambda result, a, b: result is False),
    "calls.move_to_carrier": (lambda tx, a, b: victim_call_then_move(tx, a, b), lambda result, a, b: result is None),
    "calls.lock_account": (lambda tx, a, b: calls.lock_account(tx, b.isp["id"], a.customer["id"]), NOT_FOUND),
    "calls.count_active_calls": (
        lambda tx, a, b: calls.count_active_calls(tx, b.isp["id"], customer_id=a.customer["id"]),
        lambda result, a, b: result == 0),
    "routing.subscriber_by_extension": (
        lambda tx, a, b: routing.subscriber_by_extension(tx, b.isp["id"], a.tenant["id"], "100"),
        lambda result, a, b: result is None),
    "routing.local_number": (lambda tx, a, b: routing.local_number(tx, b.isp["id"], a.subscriber["e164"]),
                             lambda result, a, b: result["subscriber_id"] == b.subscriber["id"]),
    "routing.outbound_gateways": (lambda tx, a, b: routing.outbound_gateways(tx, b.isp["id"]),
                                  lambda result, a, b: all(row["isp_id"] == b.isp["id"] for row in result)),
    "routing.caller_identity": (lambda tx, a, b: routing.caller_identity(tx, b.isp["id"], a.subscriber["id"]),
                                lambda result, a, b: result is None),
    "calllog.search_calls": (
        lambda tx, a, b: victim_call_then_search(tx, a, b),
        lambda result, a, b: result == []),
    "webusers.create_isp_admin": (
        lambda tx, a, b: webusers.create_isp_admin(tx, b.isp["id"], email="x@b.example", full_name="X",
                                                   password_hash="h"),
        lambda result, a, b: result["isp_id"] == b.isp["id"]),
    "webusers.get_isp_admin": (lambda tx, a, b: victim_admin_then(tx, a, lambda admin: webusers.get_isp_admin(
        tx, b.isp["id"], admin["id"])), NOT_FOUND),
    "webusers.list_isp_admins": (lambda tx, a, b: victim_admin_then(tx, a, lambda admin: webusers.list_isp_admins(
        tx, b.isp["id"])), lambda result, a, b: all(row["isp_id"] == b.isp["id"] for row in result)),
    "webusers.isp_admin_for_login": (
        lambda tx, a, b: victim_admin_then(tx, a, lambda admin: webusers.isp_admin_for_login(
            tx, b.isp["id"], admin["email"])), lambda result, a, b: result is None),
    "webusers.create_customer_admin": (
        lambda tx, a, b: webusers.create_customer_admin(tx, b.isp["id"], a.customer["id"], email="m@x.example",
                                                        password_hash="h"), NOT_FOUND),
    "webusers.list_customer_admins": (
        lambda tx, a, b: victim_customer_admin_then(tx, a, lambda admin: webusers.list_customer_admins(
            tx, b.isp["id"], a.customer["id"])), lambda result, a, b: result == []),
    "webusers.customer_admin_for_login": (
        lambda tx, a, b: victim_customer_admin_then(tx, a, lambda admin: webusers.customer_admin_for_login(
            tx, b.isp["id"], admin["email"])), lambda result, a, b: result is None),
    "audit.record": (lambda tx, a, b: audit.record(tx, b.isp["id"], actor="x", action="login"),
                     lambda result, a, b: result["isp_id"] == b.isp["id"]),
    "audit.list_audit": (lambda tx, a, b: victim_audit_then_list(tx, a, b),
                         lambda result, a, b: all(row["isp_id"] == b.isp["id"] for row in result)),
    "selfcare.set_web_password": (
        lambda tx, a, b: selfcare.set_web_password(tx, b.isp["id"], a.subscriber["id"], "h"), REFUSED),
    "selfcare.set_web_login": (
        lambda tx, a, b: selfcare.set_web_login(tx, b.isp["id"], a.subscriber["id"], "mallory", "h"), NOT_FOUND),
    "selfcare.web_password_hash": (
        lambda tx, a, b: selfcare.web_password_hash(tx, b.isp["id"], a.subscriber["id"]), NOT_FOUND),
    "hostnames.isp_brand": (lambda tx, a, b: hostnames.isp_brand(tx, b.isp["id"]),
                            lambda result, a, b: result["id"] == b.isp["id"]),
    "hostnames.isp_logo": (lambda tx, a, b: victim_logo_then(tx, a, b),
                           lambda result, a, b: result is None or bytes(result["brand_logo"]) != VICTIM_LOGO),
    "hostnames.set_isp_hostname": (
        lambda tx, a, b: hostnames.set_isp_hostname(tx, b.isp["id"], "console.other.example"),
        lambda result, a, b: result["id"] == b.isp["id"]),
    "outbox.list_outbox": (
        lambda tx, a, b: victim_mail_then_list(tx, a, b),
        lambda result, a, b: all(row["isp_id"] == b.isp["id"] for row in result)),
}
# Issue 5's API: dialplan rules, tokens, webhooks (set_webhook after the webhook look-ups,
# which expect the other ISP to have none yet).
CASES.update({
    "dialplans.list_rules": (lambda tx, a, b: dialplans.list_rules(tx, b.isp["id"]),
                             lambda result, a, b: a.rule["id"] not in _ids(result)),
    "dialplans.get_rule": (lambda tx, a, b: dialplans.get_rule(tx, b.isp["id"], a.rule["id"]), NOT_FOUND),
    "dialplans.create_rule": (
        lambda tx, a, b: dialplans.create_rule(tx, b.isp["id"], match="1", subs="1", replacement="+1"),
        lambda result, a, b: result["isp_id"] == b.isp["id"] and result["position"] == 1),
    "dialplans.update_rule": (
        lambda tx, a, b: dialplans.update_rule(tx, b.isp["id"], a.rule["id"], description="x"), NOT_FOUND),
    "dialplans.delete_rule": (lambda tx, a, b: dialplans.delete_rule(tx, b.isp["id"], a.rule["id"]), NOT_FOUND),
    "dialplans.reorder_rules": (lambda tx, a, b: dialplans.reorder_rules(tx, b.isp["id"], [a.rule["id"]]), REFUSED),
    "admins.list_api_tokens": (lambda tx, a, b: tokens_of_both(tx, a, b),
                                lambda result, a, b: {row["isp_id"] for row in result} == {b.isp["id"]}),
    "admins.get_api_token": (lambda tx, a, b: victim_token(tx, a, lambda token_id: admins.get_api_token(
        tx, b.isp["id"], token_id)), NOT_FOUND),
    "admins.revoke_api_token": (lambda tx, a, b: victim_token(tx, a, lambda token_id: admins.revoke_api_token(
        tx, b.isp["id"], token_id)), NOT_FOUND),
    "ownership.customer_of": (
        lambda tx, a, b: ownership.customer_of(tx, b.isp["id"], "subscriber_id", a.subscriber["id"]), NOT_FOUND),
    "webhooks.get_webhook": (lambda tx, a, b: victim_webhook(tx, a, webhooks.get_webhook(tx, b.isp["id"])),
                             NOT_FOUND),
    "webhooks.webhook_target": (lambda tx, a, b: victim_webhook(tx, a, webhooks.webhook_target(tx, b.isp["id"])),
                                lambda result, a, b: result is None),
    "webhooks.delete_webhook": (lambda tx, a, b: victim_webhook(tx, a, webhooks.delete_webhook(tx, b.isp["id"])),
                                NOT_FOUND),
    "webhooks.ping": (lambda tx, a, b: victim_webhook(tx, a, webhooks.ping(tx, b.isp["id"])), NOT_FOUND),
    "webhooks.list_deliveries": (
        lambda tx, a, b: victim_webhook(tx, a, webhooks.list_deliveries(tx, b.isp["id"]), event=True),
        lambda result, a, b: "webhook.ping" not in {row["event"] for row in result}),
    "webhooks.call_ended": (
        lambda tx, a, b: webhooks.call_ended(
            tx, b.isp["id"], call_id="x", customer_id=None, tenant_id=None, caller="", callee="",
            direction="inbound", started_at=datetime.datetime.now(datetime.timezone.utc), answered_at=None,
            ended_at=datetime.datetime.now(datetime.timezone.utc), duration_ms=0, end_reason=""),
        lambda result, a, b: result["isp_id"] == b.isp["id"]),
    "webhooks.balance_low": (
        lambda tx, a, b: webhooks.balance_low(tx, b.isp["id"], customer_id=b.customer["id"], balance=Decimal(1),
                                              threshold=Decimal(5), currency="USD"),
        lambda result, a, b: result["isp_id"] == b.isp["id"]),
    "webhooks.account_locked": (
        lambda tx, a, b: webhooks.account_locked(tx, b.isp["id"], customer_id=b.customer["id"], reason="HARD"),
        lambda result, a, b: result["isp_id"] == b.isp["id"]),
    "webhooks.signup_waiting": (
        lambda tx, a, b: webhooks.signup_waiting(tx, b.isp["id"], customer_id=b.customer["id"], name="n", email=""),
        lambda result, a, b: result["isp_id"] == b.isp["id"]),
    "webhooks.sip_user_locked": (
        lambda tx, a, b: webhooks.sip_user_locked(
            tx, b.isp["id"], subscriber_id=b.subscriber["id"], tenant_id=b.tenant["id"], username="alice",
            domain="x", locked_until=datetime.datetime.now(datetime.timezone.utc), failures=20, sources=[]),
        lambda result, a, b: result["isp_id"] == b.isp["id"]),
    "siplocks.lock_user": (
        lambda tx, a, b: siplocks.lock_user(tx, isp_id=b.isp["id"], tenant_id=a.tenant["id"],
                                            subscriber_id=a.subscriber["id"], username="alice", domain="x",
                                            now=2e9, seconds=60, failures=20, sources=[]), NOT_FOUND),
    "siplocks.unlock_user": (lambda tx, a, b: victim_locked_then(tx, a, siplocks.unlock_user(
        tx, a.subscriber["id"], b.isp["id"])), lambda result, a, b: result is False),
    "siplocks.list_locks": (lambda tx, a, b: victim_locked_then(tx, a, siplocks.list_locks(tx, b.isp["id"])),
                            lambda result, a, b: a.subscriber["id"] not in {r["subscriber_id"] for r in result}),
    "siplocks.active_locks": (lambda tx, a, b: victim_locked_then(tx, a, siplocks.active_locks(tx, 2e9, b.isp["id"])),
                              lambda result, a, b: a.subscriber["id"] not in {r["subscriber_id"] for r in result}),
    "webhooks.set_webhook": (lambda tx, a, b: webhooks.set_webhook(tx, b.isp["id"], "https://b.example.org/h"),
                             lambda result, a, b: result["isp_id"] == b.isp["id"]),
    "dialplans.replace_rules": (
        lambda tx, a, b: dialplans.replace_rules(tx, b.isp["id"], []), lambda result, a, b: result == []),
})


async def victim_webhook(tx, a, then, *, event: bool = False):
    """The victim has a webhook (and, with `event`, an event queued) before the other ISP asks."""
    await webhooks.set_webhook(tx, a.isp["id"], "https://victim.example.org/hook")
    if event:
        await webhooks.ping(tx, a.isp["id"])
    return await then


async def victim_token(tx, a, then):
    row = await admins.create_api_token(tx, f"victim-{a.isp['id']}-" + "v" * 30, isp_id=a.isp["id"])
    return await then(row["id"])


async def tokens_of_both(tx, a, b):
    await admins.create_api_token(tx, "a" * 40, isp_id=a.isp["id"], customer_id=a.customer["id"])
    await admins.create_api_token(tx, "b" * 40, isp_id=b.isp["id"])
    return await admins.list_api_tokens(tx, b.isp["id"])

# Billing: `a` also has a carrier card with a published version, a call in progress and a CDR.
CASES.update({
    "ratedecks.create_deck": (
        lambda tx, a, b: ratedecks.create_deck(tx, b.isp["id"], name="x", kind="carrier", carrier_id=a.carrier["id"]),
        NOT_FOUND),
    "ratedecks.get_deck": (lambda tx, a, b: ratedecks.get_deck(tx, b.isp["id"], a.deck["id"]), NOT_FOUND),
    "ratedecks.list_decks": (lambda tx, a, b: ratedecks.list_decks(tx, b.isp["id"]),
                             lambda result, a, b: a.deck["id"] not in _ids(result)),
    "ratedecks.create_draft": (lambda tx, a, b: ratedecks.create_draft(tx, b.isp["id"], a.deck["id"], []), NOT_FOUND),
    "ratedecks.add_to_draft": (lambda tx, a, b: ratedecks.add_to_draft(tx, b.isp["id"], a.draft["id"], []),
                               NOT_FOUND),
    "ratedecks.get_version": (lambda tx, a, b: ratedecks.get_version(tx, b.isp["id"], a.version["id"]), NOT_FOUND),
    "ratedecks.list_versions": (lambda tx, a, b: ratedecks.list_versions(tx, b.isp["id"], a.deck["id"]),
                                lambda result, a, b: result == []),
    "ratedecks.publish_version": (
        lambda tx, a, b: ratedecks.publish_version(tx, b.isp["id"], a.draft["id"], a.version["effective_at"]),
        NOT_FOUND),
    "ratedecks.published_versions": (lambda tx, a, b: ratedecks.published_versions(tx, b.isp["id"], a.deck["id"]),
                                     lambda result, a, b: result == []),
    "ratedecks.version_rates": (lambda tx, a, b: ratedecks.version_rates(tx, b.isp["id"], a.version["id"]),
                                lambda result, a, b: result == []),
    "ratedecks.carrier_decks": (lambda tx, a, b: ratedecks.carrier_decks(tx, b.isp["id"]),
                                lambda result, a, b: a.deck["id"] not in {r["deck_id"] for r in result}),
    "ratedecks.set_profit_rules": (
        lambda tx, a, b: ratedecks.set_profit_rules(tx, b.isp["id"], a.deck["id"], rules=[], sources=[]), NOT_FOUND),
    "ratedecks.profit_rules": (lambda tx, a, b: ratedecks.profit_rules(tx, b.isp["id"], a.deck["id"]), NOT_FOUND),
    "pricing.set_plan_pricing": (
        lambda tx, a, b: pricing.set_plan_pricing(tx, b.isp["id"], a.plan["id"], monthly_fee="1"), NOT_FOUND),
    "pricing.set_area_rates": (lambda tx, a, b: pricing.set_area_rates(tx, b.isp["id"], a.plan["id"], []), NOT_FOUND),
    "pricing.area_rates": (lambda tx, a, b: pricing.area_rates(tx, b.isp["id"], a.plan["id"]),
                           lambda result, a, b: result == []),
    "pricing.set_free_zones": (lambda tx, a, b: pricing.set_free_zones(tx, b.isp["id"], a.plan["id"], []), NOT_FOUND),
    "pricing.free_zones": (lambda tx, a, b: pricing.free_zones(tx, b.isp["id"], a.plan["id"]),
                           lambda result, a, b: result == []),
    "pricing.set_did_billing": (lambda tx, a, b: pricing.set_did_billing(tx, b.isp["id"], a.did["id"], e911=True),
                                NOT_FOUND),
    "pricing.did_charges": (lambda tx, a, b: pricing.did_charges(tx, b.isp["id"], a.did["id"]), NOT_FOUND),
    "ledger.post": (lambda tx, a, b: ledger.post(tx, b.isp["id"], a.customer["id"], kind="charge", amount="1",
                                                 description="x"), NOT_FOUND),
    "ledger.add_payment": (lambda tx, a, b: ledger.add_payment(tx, b.isp["id"], a.customer["id"], amount="1",
                                                               description="x"), NOT_FOUND),
    "ledger.add_charge": (lambda tx, a, b: ledger.add_charge(tx, b.isp["id"], a.customer["id"], amount="1",
                                                             description="x"), NOT_FOUND),
    "ledger.list_ledger": (lambda tx, a, b: ledger.list_ledger(tx, b.isp["id"], a.customer["id"]), NOT_FOUND),
    "ledger.set_customer_billing": (
        lambda tx, a, b: ledger.set_customer_billing(tx, b.isp["id"], a.customer["id"], billing_day=3), NOT_FOUND),
    "ledger.set_isp_billing": (lambda tx, a, b: ledger.set_isp_billing(tx, b.isp["id"], allow_loss=True),
                               lambda result, a, b: result["id"] == b.isp["id"]),
    "calls.reserve": (
        lambda tx, a, b: calls.reserve(tx, b.isp["id"], a.customer["id"], subscriber_id=None, node="n", call_id="x",
                                       direction="outbound", destination="+442071838750", amount=0,
                                       max_duration_ms=None, free_minutes=0, rating={},
                                       started_at=a.version["effective_at"]), REFUSED),
    "calls.held": (lambda tx, a, b: calls.held(tx, b.isp["id"], a.customer["id"]),
                   lambda result, a, b: result == (0, 0)),
    "calls.take_reservation": (lambda tx, a, b: calls.take_reservation(tx, b.isp["id"], a.reservation["id"]),
                               NOT_FOUND),
    "calls.mark_answered": (
        lambda tx, a, b: calls.mark_answered(tx, b.isp["id"], active_call_id=a.active_call["id"],
                                             reservation_id=a.reservation["id"], at=a.version["effective_at"]),
        lambda result, a, b: result == 0),
    "calls.free_minutes_used": (lambda tx, a, b: calls.free_minutes_used(tx, b.isp["id"], a.customer["id"], None),
                                lambda result, a, b: result == 0),
    "calls.insert_cdr": (lambda tx, a, b: calls.insert_cdr(tx, b.isp["id"], {**CDR, "customer_id": a.customer["id"]}),
                         REFUSED),
    "calls.insert_free_cdr": (lambda tx, a, b: calls.insert_free_cdr(tx, b.isp["id"],
                                                                     {**CDR, "customer_id": a.customer["id"]}),
                              REFUSED),
    "calls.insert_refusal": (lambda tx, a, b: calls.insert_refusal(
        tx, b.isp["id"], call_id="x", node="n", direction="outbound", sip_code=403, reason="Forbidden",
        at=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc), customer_id=a.customer["id"]), REFUSED),
    "calls.link_cdr": (lambda tx, a, b: calls.link_cdr(tx, b.isp["id"], a.cdr["id"], 1),
                       lambda result, a, b: result is None),
    "calls.get_cdr": (lambda tx, a, b: calls.get_cdr(tx, b.isp["id"], a.cdr["id"]), NOT_FOUND),
    "calls.list_cdrs": (lambda tx, a, b: calls.list_cdrs(tx, b.isp["id"]),
                        lambda result, a, b: a.cdr["id"] not in _ids(result)),
    "calls.spend": (lambda tx, a, b: calls.spend(tx, b.isp["id"], "customer", a.customer["id"],
                                                 a.version["effective_at"]),
                    lambda result, a, b: result == 0),
    "calls.lock_calls": (lambda tx, a, b: calls.lock_calls(tx, b.isp["id"], "customer", a.customer["id"], "x"),
                         lambda result, a, b: result is None),
    "calls.unlock_calls": (lambda tx, a, b: calls.unlock_calls(tx, b.isp["id"], "customer", a.customer["id"]),
                           NOT_FOUND),
    "recurring.charge_once": (
        lambda tx, a, b: recurring.charge_once(tx, b.isp["id"], a.customer["id"], kind="monthly", item_id=0,
                                               period="2026-01", amount=1, description="x"), REFUSED),
    "recurring.bill_customer": (
        lambda tx, a, b: recurring.bill_customer(tx, b.isp["id"], a.customer["id"], BINDING.expires_at.date()),
        NOT_FOUND),
    "recurring.list_charges": (lambda tx, a, b: recurring.list_charges(tx, b.isp["id"], a.customer["id"]),
                               lambda result, a, b: result == []),
})

_EVERYTHING = {"since": BINDING.expires_at.replace(year=1990), "until": BINDING.expires_at.replace(year=2200)}
CASES.update({
    f"reports.{name}": (lambda tx, a, b, name=name: getattr(reports, name)(tx, b.isp["id"], **_EVERYTHING),
                        lambda result, a, b: not any(row.get("price") == 7 for row in result)
                        and not any(row.get("customer_id") == a.customer["id"] for row in result)
                        and not any(row.get("deposits") for row in result))
    for name in ("calls_report", "financial_report", "dids_report", "subscribers_report", "daily_report")})

CDR = {"direction": "outbound", "started_at": BINDING.expires_at, "ended_at": BINDING.expires_at,
       "duration_ms": 0, "talk_ms": 0, "disposition": "failed", "a_call_id": "x", "price": 7}


async def add_billing(database, tree):
    """A carrier card (a published version and a draft), a call in progress and a CDR."""
    isp_id = tree.isp["id"]

    async def work(tx):
        tree.deck = await ratedecks.create_deck(tx, isp_id, name="Card", kind="carrier", carrier_id=tree.carrier["id"])
        row = ratedecks.RateRow("44", "UK", 1, 0, 1, 1, "international")
        version = await ratedecks.create_draft(tx, isp_id, tree.deck["id"], [row])
        tree.version = await ratedecks.publish_version(tx, isp_id, version["id"], BINDING.expires_at)
        tree.draft = await ratedecks.create_draft(tx, isp_id, tree.deck["id"], [row])
        await ledger.add_payment(tx, isp_id, tree.customer["id"], amount="5", description="x")
        tree.reservation = await calls.reserve(
            tx, isp_id, tree.customer["id"], subscriber_id=None, node="n", call_id="x", direction="outbound",
            destination="+442071838750", amount=1, max_duration_ms=60000, free_minutes=0, rating={},
            started_at=BINDING.expires_at)
        tree.active_call = await calls.admit_call(tx, isp_id, customer_id=tree.customer["id"],
                                                  tenant_id=tree.tenant["id"], call_id="x", node="n",
                                                  direction="outbound")
        tree.cdr = await calls.insert_cdr(tx, isp_id, {**CDR, "customer_id": tree.customer["id"]})
        await recurring.charge_once(tx, isp_id, tree.customer["id"], kind="monthly", item_id=0, period="once",
                                    amount=1, description="x")
    await database.transact(work)


async def victim_call_then_end(tx, a, b):
    call = await calls.admit_call(tx, a.isp["id"], customer_id=a.customer["id"], tenant_id=a.tenant["id"],
                                  call_id="victim", node="n", direction="outbound")
    crossed = await calls.end_call(tx, b.isp["id"], call["id"])
    assert await calls.end_call(tx, a.isp["id"], call["id"]), "the victim's call was still there"
    return crossed


async def victim_call_then_move(tx, a, b):
    """Another ISP can move the victim's call to no carrier, nor the victim's call be moved to its gateway."""
    call = await calls.admit_call(tx, a.isp["id"], customer_id=a.customer["id"], tenant_id=a.tenant["id"],
                                  call_id="victim", node="n", direction="outbound")
    for isp, tree in ((b.isp, b), (b.isp, a), (a.isp, b)):
        with pytest.raises(NotFound):
            await calls.move_to_carrier(tx, isp["id"], call["id"], tree.carrier["id"], tree.gateway["id"])
    still = await tx.fetch_value("select carrier_id from active_calls where id = %s", (call["id"],))
    await calls.end_call(tx, a.isp["id"], call["id"])
    return still


async def victim_mail_then_list(tx, a, b):
    await outbox.enqueue_mail(tx, a.isp["id"], to="victim@example.org", subject="private", body="b")
    return await outbox.list_outbox(tx, b.isp["id"])


async def victim_call_then_search(tx, a, b):
    cdr = await calls.insert_cdr(tx, a.isp["id"], {**CDR, "a_call_id": "search", "customer_id": a.customer["id"],
                                                   "tenant_id": a.tenant["id"], "subscriber_id": a.subscriber["id"]})
    assert await calllog.search_calls(tx, a.isp["id"], tenant_id=a.tenant["id"])
    found = (await calllog.search_calls(tx, b.isp["id"], tenant_id=a.tenant["id"]) +
             await calllog.search_calls(tx, b.isp["id"], subscriber_id=a.subscriber["id"]))
    await tx.execute("delete from cdrs where id = %s", (cdr["id"],))
    return found


VICTIM_LOGO = b"\x89PNG victim's own"


async def victim_logo_then(tx, a, b):
    await isps.set_isp_logo(tx, a.isp["id"], VICTIM_LOGO, "image/png")
    assert await hostnames.isp_logo(tx, a.isp["id"])
    found = await hostnames.isp_logo(tx, b.isp["id"])
    await tx.execute("update isps set brand_logo = null, brand_logo_type = null where id = %s", (a.isp["id"],))
    return found


async def victim_locked_then(tx, a, then):
    await siplocks.lock_user(tx, isp_id=a.isp["id"], tenant_id=a.tenant["id"], subscriber_id=a.subscriber["id"],
                             username="alice", domain="x", now=2e9, seconds=600, failures=20, sources=[])
    return await then


async def victim_admin_then(tx, a, then):
    email = f"boss{await tx.fetch_value('select count(*) from isp_admins')}@victim.example"
    admin = await webusers.create_isp_admin(tx, a.isp["id"], email=email, full_name="Boss",
                                            password_hash="h")
    return await then(admin)


async def victim_customer_admin_then(tx, a, then):
    email = f"it{await tx.fetch_value('select count(*) from customer_admins')}@victim.example"
    admin = await webusers.create_customer_admin(tx, a.isp["id"], a.customer["id"], email=email,
                                                 password_hash="h")
    return await then(admin)


async def victim_audit_then_list(tx, a, b):
    await audit.record(tx, a.isp["id"], actor="boss", action="customer.login_as", target="secret")
    return await audit.list_audit(tx, b.isp["id"])


async def number_of_both(tx, a, b):
    """One number in two ISPs' inventories: each has its own row, neither sees the other's."""
    await dids.add_dids(tx, a.isp["id"], "+15550177777")
    return await dids.add_dids(tx, b.isp["id"], "+15550177777")


def scoped_functions():
    for module in MODULES:
        for name, function in inspect.getmembers(module, inspect.iscoroutinefunction):
            if function.__module__ == module.__name__ and not name.startswith("_") \
                    and "isp_id" in inspect.signature(function).parameters:
                yield f"{module.__name__.rsplit('.', 1)[1]}.{name}"


def test_every_function_that_takes_an_isp_has_a_case():
    assert set(scoped_functions()) == set(CASES)


@pytest_twisted.ensureDeferred
async def test_no_function_crosses_from_one_isp_to_another(database):
    a = await build_tree(database, "victim.example.net")
    b = await build_tree(database, "other.example.net")
    await add_billing(database, a)
    before = await snapshot(database, a)
    for name, (call, check) in CASES.items():
        if check == NOT_FOUND:
            with pytest.raises(NotFound):
                await database.transact(call, a, b)
        elif check == REFUSED:
            with pytest.raises(Invalid):
                await database.transact(call, a, b)
        else:
            result = await database.transact(call, a, b)
            assert check(result, a, b), name
    assert await snapshot(database, a) == before


async def snapshot(database, tree):
    tables = ["isps", "customers", "tenants", "subscribers", "domains", "carriers", "gateways",
              "service_plans", "registrations", "active_calls", "rate_decks", "rate_deck_versions", "rates",
              "ledger", "call_reservations", "cdrs", "profit_rules", "plan_area_rates", "plan_free_zones",
              "did_billing", "recurring_charges", "dialplan_rules"]
    result = {}
    for table in tables:
        column = "id" if table == "isps" else "isp_id"
        result[table] = await database.fetch(f"select * from {table} where {column} = %s order by 1, 2, 3",
                                             (tree.isp["id"],))
    result["dids"] = await database.fetch("select * from dids where id = %s", (tree.did["id"],))
    return result


@pytest.mark.parametrize("function", ["tenants.tenant_by_sip_domain", "subscribers.sip_credentials",
                                      "carriers.gateways_for_source", "dids.did_by_number",
                                      "isps.isp_by_namespace", "isps.list_isps",
                                      "registrations.live_bindings", "registrations.delete_expired",
                                      "registrations.write_bindings", "registrations.live_bindings_of",
                                      "secrets.shared_secret", "subscribers.realm_for_username",
                                      "calls.take_calls_of_node", "calls.take_stale_calls",
                                      "calls.touch_calls", "calls.left_by_node", "calls.stale_reservations",
                                      "hostnames.isp_for_host", "selfcare.subscriber_for_login"])
def test_the_unscoped_look_ups_are_the_known_few(function):
    """These answer the SIP stack and platform admins, who start from a domain or address."""
    module, name = function.split(".")
    parameters = inspect.signature(getattr(globals()[module], name)).parameters
    assert "isp_id" not in parameters
