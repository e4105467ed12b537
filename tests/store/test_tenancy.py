from decimal import Decimal
from ipaddress import ip_network

import pytest
import pytest_twisted
from twisted.internet import defer

from tests.store.builders import build_tree, held
from wevoip.credentials import ha1
from wevoip.store import carriers, customers, dids, domains, subscribers, tenants
from wevoip.store.errors import Conflict, Invalid, LimitReached, NotFound
from wevoip.store.isps import create_isp, get_isp, update_isp


@pytest_twisted.ensureDeferred
async def test_a_whole_isp_tree_is_stored(database):
    tree = await build_tree(database, "kages.example.net")
    assert tree.tenant["sip_domain"] == "acme.kages.example.net"
    assert tree.customer["status"] == "ACTIVE"
    assert tree.customer["credit_limit"] == Decimal("0")
    assert tree.gateway["source_ips"] == [ip_network("192.0.2.10/32")]
    assert tree.did["tenant_id"] == tree.tenant["id"]
    assert tree.did["customer_id"] == tree.customer["id"]
    assert tree.subscriber["is_pilot"] and tree.subscriber["e164"] == "+15550100100"


@pytest_twisted.ensureDeferred
async def test_only_digest_ha1s_are_kept_never_the_sip_password(database):
    await build_tree(database, "kages.example.net")
    row = await database.transact(subscribers.sip_credentials, "ACME.kages.example.net.", "alice")
    assert row["ha1_md5"] == ha1("alice", "acme.kages.example.net", "correct-horse-9", "MD5")
    assert row["ha1_sha256"] == ha1("alice", "acme.kages.example.net", "correct-horse-9", "SHA-256")
    dump = await database.fetch("select * from subscribers")
    assert "correct-horse-9" not in repr(dump)


@pytest_twisted.ensureDeferred
async def test_public_rows_hide_secrets(database):
    tree = await build_tree(database, "kages.example.net")
    for column in subscribers.SECRET_COLUMNS:
        assert column not in tree.subscriber
    listed = await database.transact(subscribers.list_subscribers, tree.isp["id"], tree.tenant["id"])
    assert [row["username"] for row in listed] == ["alice"]
    assert all("ha1_md5" not in row for row in listed)


async def add_subscriber(database, tree, name):
    return await database.transact(subscribers.create_subscriber, tree.isp["id"], tree.tenant["id"],
                                   username=name, password="Tr0ub4dor-and-3")


@pytest_twisted.ensureDeferred
async def test_max_subscribers_holds_when_inserts_race(database):
    tree = await build_tree(database, "kages.example.net", max_subscribers=3)  # alice is one
    attempts = [defer.Deferred.fromCoroutine(add_subscriber(database, tree, f"user{i}")) for i in range(8)]
    results = await defer.DeferredList(attempts, consumeErrors=True)
    made = [value for ok, value in results if ok]
    refused = [value for ok, value in results if not ok]
    assert len(made) == 2
    assert len(refused) == 6
    for failure in refused:
        assert failure.check(LimitReached)
        assert failure.value.limit == "max_subscribers" and failure.value.value == 3
    assert await database.transact(subscribers.count_subscribers, tree.isp["id"], tree.customer["id"]) == 3


@pytest_twisted.ensureDeferred
async def test_the_limit_counts_every_tenant_of_the_customer(database):
    tree = await build_tree(database, "kages.example.net", max_subscribers=2)
    second = await database.transact(tenants.create_tenant, tree.isp["id"], tree.customer["id"],
                                     name="Branch", label="branch")
    await database.transact(subscribers.create_subscriber, tree.isp["id"], second["id"],
                            username="bob", password="Sup3r-secret-77")
    with pytest.raises(LimitReached):
        await database.transact(subscribers.create_subscriber, tree.isp["id"], second["id"],
                                username="carol", password="Sup3r-secret-88")


@pytest_twisted.ensureDeferred
async def test_sip_usernames_are_unique_per_domain_only(database):
    tree = await build_tree(database, "kages.example.net")
    with pytest.raises(Conflict) as caught:
        await add_subscriber(database, tree, "alice")
    assert caught.value.field == "username"
    other = await database.transact(tenants.create_tenant, tree.isp["id"], tree.customer["id"],
                                    name="Other", label="other")
    made = await database.transact(subscribers.create_subscriber, tree.isp["id"], other["id"],
                                   username="alice", password="another-secret-1")
    assert made["tenant_id"] == other["id"]


@pytest_twisted.ensureDeferred
async def test_a_tenant_has_one_pilot(database):
    tree = await build_tree(database, "kages.example.net")
    await database.transact(held, tree.isp["id"], tree.tenant["id"], "+15550100200")
    with pytest.raises(Conflict):
        await database.transact(subscribers.create_subscriber, tree.isp["id"], tree.tenant["id"],
                                username="second", password="Sup3r-secret-99", is_pilot=True,
                                e164="+15550100200")
    with pytest.raises(Invalid) as caught:
        await database.transact(subscribers.create_subscriber, tree.isp["id"], tree.tenant["id"],
                                username="third", password="Sup3r-secret-11", is_pilot=True)
    assert caught.value.field == "e164"


@pytest.mark.parametrize("details, field", [
    ({"username": "bad name"}, "username"),
    ({"password": "short"}, "password"),
    ({"password": "1234567890123"}, "password"),
    ({"password": "xxbob-and-more"}, "password"),
    ({"extension": "1"}, "extension"),
    ({"e164": "5550100"}, "e164"),
    ({"e164": "+0123"}, "e164"),
    ({"colour": "red"}, "colour"),
    ({"web_username": "w@example.net"}, "web_password"),
])
@pytest_twisted.ensureDeferred
async def test_bad_subscriber_input_names_the_field_and_writes_nothing(database, details, field):
    tree = await build_tree(database, "kages.example.net")
    values = {"username": "bob", "password": "a-good-secret-1", **details}
    username = values.pop("username")
    with pytest.raises(Invalid) as caught:
        await database.transact(subscribers.create_subscriber, tree.isp["id"], tree.tenant["id"],
                                username=username, **values)
    assert caught.value.field == field
    count = await database.transact(subscribers.count_subscribers, tree.isp["id"], tree.customer["id"])
    assert count == 1


@pytest.mark.parametrize("details, field", [
    ({"namespace": "Not A Domain"}, "namespace"),
    ({"namespace": "single"}, "namespace"),
    ({"currency": "XYZ"}, "currency"),
    ({"country": "ZZ"}, "country"),
    ({"contact_phone": "555"}, "contact_phone"),
    ({"brand_primary": "blue"}, "brand_primary"),
    ({"favourite": "x"}, "favourite"),
])
@pytest_twisted.ensureDeferred
async def test_bad_isp_input_names_the_field(database, details, field):
    values = {"name": "Kages", "namespace": "kages.example.net", "currency": "EUR", **details}
    with pytest.raises(Invalid) as caught:
        await database.transact(lambda tx: create_isp(tx, **values))
    assert caught.value.field == field
    assert await database.fetch("select * from isps") == []


@pytest_twisted.ensureDeferred
async def test_namespaces_are_unique_and_isps_update_themselves(database):
    tree = await build_tree(database, "kages.example.net")
    with pytest.raises(Conflict) as caught:
        await database.transact(lambda tx: create_isp(tx, name="Copy", namespace="KAGES.example.net",
                                                      currency="EUR"))
    assert caught.value.field == "namespace"
    updated = await database.transact(update_isp, tree.isp["id"], currency="eur", brand_primary="#AABBCC")
    assert (updated["currency"], updated["brand_primary"]) == ("EUR", "#aabbcc")
    with pytest.raises(Invalid):
        await database.transact(update_isp, tree.isp["id"], namespace="other.example.net")
    assert (await database.transact(get_isp, tree.isp["id"]))["namespace"] == "kages.example.net"


@pytest_twisted.ensureDeferred
async def test_a_verified_domain_is_usable_only_after_verification(database):
    tree = await build_tree(database, "kages.example.net")
    isp_id = tree.isp["id"]
    domain = await database.transact(domains.add_verified_domain, isp_id, "pbx.acme-corp.com")
    assert domain["verification_token"].startswith("wevoip-verify=")
    with pytest.raises(Invalid) as caught:
        await database.transact(tenants.create_tenant, isp_id, tree.customer["id"], name="Own",
                                domain_id=domain["id"])
    assert caught.value.field == "domain_id"
    await database.transact(domains.mark_domain_verified, isp_id, domain["id"])
    tenant = await database.transact(tenants.create_tenant, isp_id, tree.customer["id"], name="Own",
                                     domain_id=domain["id"])
    assert tenant["sip_domain"] == "pbx.acme-corp.com"
    found = await database.transact(tenants.tenant_by_sip_domain, "PBX.acme-corp.com")
    assert found["id"] == tenant["id"] and found["isp_id"] == isp_id
    with pytest.raises(Invalid, match="namespace"):
        await database.transact(domains.add_verified_domain, isp_id, "x.kages.example.net")


@pytest_twisted.ensureDeferred
async def test_did_ranges_are_added_whole_or_not_at_all(database):
    tree = await build_tree(database, "kages.example.net")
    isp_id = tree.isp["id"]
    added = await database.transact(dids.add_dids, isp_id, "+15550198990", "+15550198999")
    assert [row["e164"] for row in added][:2] == ["+15550198990", "+15550198991"]
    assert len(added) == 10
    with pytest.raises(Conflict):
        await database.transact(dids.add_dids, isp_id, "+15550198999", "+15550199001")
    assert len(await database.transact(dids.list_dids, isp_id, limit=1000)) == 12
    with pytest.raises(Invalid):
        await database.transact(dids.add_dids, isp_id, "+15550199100", "+1555019909")


@pytest_twisted.ensureDeferred
async def test_dids_are_allocated_once_and_routed_within_their_tenant(database):
    tree = await build_tree(database, "kages.example.net")
    isp_id = tree.isp["id"]
    with pytest.raises(Conflict):
        await database.transact(dids.allocate_did, isp_id, tree.did["id"], tree.tenant["id"])
    routed = await database.transact(dids.route_did, isp_id, tree.did["id"], tree.subscriber["id"])
    assert routed["subscriber_id"] == tree.subscriber["id"]
    other = await database.transact(tenants.create_tenant, isp_id, tree.customer["id"], name="B", label="b")
    bob = await database.transact(subscribers.create_subscriber, isp_id, other["id"], username="bob",
                                  password="Sup3r-secret-77")
    with pytest.raises(Invalid):
        await database.transact(dids.route_did, isp_id, tree.did["id"], bob["id"])
    released = await database.transact(dids.release_did, isp_id, tree.did["id"])
    assert released["tenant_id"] is None and released["subscriber_id"] is None


@pytest_twisted.ensureDeferred
async def test_money_is_decimal_and_floats_are_refused(database):
    tree = await build_tree(database, "kages.example.net")
    updated = await database.transact(customers.update_customer, tree.isp["id"], tree.customer["id"],
                                      credit_limit="12.345678", billing_mode="postpaid")
    assert updated["credit_limit"] == Decimal("12.345678")
    with pytest.raises(Invalid):
        await database.transact(customers.update_customer, tree.isp["id"], tree.customer["id"],
                                credit_limit=1.5)
    with pytest.raises(Invalid):
        await database.transact(customers.update_customer, tree.isp["id"], tree.customer["id"],
                                credit_limit="-1")


@pytest_twisted.ensureDeferred
async def test_trunk_sources_find_their_gateway(database):
    tree = await build_tree(database, "kages.example.net")
    found = await database.transact(carriers.gateways_for_source, "192.0.2.10")
    assert [row["id"] for row in found] == [tree.gateway["id"]]
    assert await database.transact(carriers.gateways_for_source, "192.0.2.11") == []
    await database.transact(carriers.update_carrier, tree.isp["id"], tree.carrier["id"], enabled=False)
    assert await database.transact(carriers.gateways_for_source, "192.0.2.10") == []


@pytest_twisted.ensureDeferred
async def test_sql_refuses_cross_isp_references_even_when_code_does_not_check(database):
    first = await build_tree(database, "one.example.net")
    second = await build_tree(database, "two.example.net")
    with pytest.raises(Invalid):
        await database.transact(lambda tx: tx.execute(
            "insert into tenants (isp_id, customer_id, name, domain_id) values (%s, %s, 'x', %s)",
            (second.isp["id"], first.customer["id"], second.domain["id"])))
    with pytest.raises(NotFound):
        await database.transact(tenants.create_tenant, second.isp["id"], first.customer["id"],
                                name="x", label="x")
