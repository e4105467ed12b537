"""
Every data-access function that takes an ISP is called with another ISP's id against the
first ISP's objects: it must find nothing, change nothing and return nothing of theirs.
The list of cases is checked against the modules, so a new function cannot be forgotten.
"""

import inspect

import pytest
import pytest_twisted

from tests.store.builders import build_tree
from tests.store.builders import BINDING
from wevoip.store import (admins, calls, carriers, customers, dids, domains, isps, outbox, registrations,
                          routing, secrets, subscribers, tenants)
from wevoip.store.errors import Invalid, NotFound

MODULES = (isps, customers, domains, tenants, subscribers, carriers, dids, admins, registrations, outbox,
           calls, routing)


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
                               lambda result, a, b: result == []),
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
    "outbox.list_outbox": (
        lambda tx, a, b: victim_mail_then_list(tx, a, b),
        lambda result, a, b: all(row["isp_id"] == b.isp["id"] for row in result)),
}


async def victim_call_then_end(tx, a, b):
    call = await calls.admit_call(tx, a.isp["id"], customer_id=a.customer["id"], tenant_id=a.tenant["id"],
                                  call_id="victim", node="n", direction="outbound")
    crossed = await calls.end_call(tx, b.isp["id"], call["id"])
    assert await calls.end_call(tx, a.isp["id"], call["id"]), "the victim's call was still there"
    return crossed


async def victim_mail_then_list(tx, a, b):
    await outbox.enqueue_mail(tx, a.isp["id"], to="victim@example.org", subject="private", body="b")
    return await outbox.list_outbox(tx, b.isp["id"])


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
              "service_plans", "registrations", "active_calls"]
    result = {}
    for table in tables:
        column = "id" if table == "isps" else "isp_id"
        result[table] = await database.fetch(f"select * from {table} where {column} = %s order by id",
                                             (tree.isp["id"],))
    result["dids"] = await database.fetch("select * from dids where id = %s", (tree.did["id"],))
    return result


@pytest.mark.parametrize("function", ["tenants.tenant_by_sip_domain", "subscribers.sip_credentials",
                                      "carriers.gateways_for_source", "dids.did_by_number",
                                      "isps.isp_by_namespace", "isps.list_isps",
                                      "registrations.live_bindings", "registrations.delete_expired",
                                      "calls.end_calls_of_node",
                                      "registrations.write_bindings", "registrations.live_bindings_of",
                                      "secrets.shared_secret", "subscribers.realm_for_username"])
def test_the_unscoped_look_ups_are_the_known_few(function):
    """These answer the SIP stack and platform admins, who start from a domain or address."""
    module, name = function.split(".")
    parameters = inspect.signature(getattr(globals()[module], name)).parameters
    assert "isp_id" not in parameters
