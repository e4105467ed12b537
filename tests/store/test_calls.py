"""Concurrent-call limits counted in PostgreSQL, so they hold across nodes and races."""

import pytest
import pytest_twisted
from twisted.internet import defer

from tests.store.builders import build_tree
from wevoip.store import calls, carriers, customers
from wevoip.store.database import Database
from wevoip.store.errors import LimitReached, NotAllowed, NotFound


def _admit(tree, call_id, node="n1", carrier=False):
    return lambda tx: calls.admit_call(tx, tree.isp["id"], customer_id=tree.customer["id"],
                                       tenant_id=tree.tenant["id"], call_id=call_id, node=node,
                                       direction="outbound",
                                       carrier_id=tree.carrier["id"] if carrier else None)


@pytest_twisted.ensureDeferred
async def test_the_customer_limit_refuses_the_call_over_it_and_frees_on_end(database):
    tree = await build_tree(database, "limits.example.net")  # max_concurrent_calls defaults to 2
    first = await database.transact(_admit(tree, "a"))
    await database.transact(_admit(tree, "b"))
    with pytest.raises(LimitReached) as refused:
        await database.transact(_admit(tree, "c"))
    assert refused.value.limit == "customer max_concurrent_calls" and refused.value.value == 2
    assert await database.transact(calls.end_call, tree.isp["id"], first["id"]) is True
    assert await database.transact(calls.end_call, tree.isp["id"], first["id"]) is False
    await database.transact(_admit(tree, "c"))


@pytest_twisted.ensureDeferred
async def test_tenant_and_carrier_limits_hold_too(database):
    tree = await build_tree(database, "tenantlimit.example.net")
    await database.transact(lambda tx: tx.execute("update customers set max_concurrent_calls = 10"))
    await database.transact(lambda tx: tx.execute("update tenants set max_concurrent_calls = 1"))
    await database.transact(_admit(tree, "a"))
    with pytest.raises(LimitReached, match="tenant"):
        await database.transact(_admit(tree, "b"))
    await database.transact(lambda tx: tx.execute("update tenants set max_concurrent_calls = null"))
    await database.transact(lambda tx: tx.execute("update carriers set max_concurrent_calls = 1"))
    await database.transact(_admit(tree, "c", carrier=True))
    with pytest.raises(LimitReached, match="carrier"):
        await database.transact(_admit(tree, "d", carrier=True))


@pytest_twisted.ensureDeferred
async def test_suspended_and_waiting_customers_cannot_call(database):
    tree = await build_tree(database, "suspended.example.net")
    for status, reason in (("SUSPENDED", "customer suspended"), ("WAIT", "customer not yet activated")):
        await database.transact(customers.set_customer_status, tree.isp["id"], tree.customer["id"], status)
        with pytest.raises(NotAllowed, match=reason):
            await database.transact(_admit(tree, status))
    assert await database.transact(calls.count_active_calls, tree.isp["id"]) == 0


@pytest_twisted.ensureDeferred
async def test_two_nodes_admitting_at_once_cannot_pass_the_limit(database, dsn):
    tree = await build_tree(database, "race.example.net")
    await database.transact(lambda tx: tx.execute("update customers set max_concurrent_calls = 3"))
    other = Database(database.reactor, dsn, size=4)
    await other.connect()
    try:
        attempts = [defer.Deferred.fromCoroutine(
            (database if n % 2 else other).transact(_admit(tree, f"call-{n}", node=f"n{n % 2}")))
                    for n in range(10)]
        results = await defer.DeferredList(attempts, consumeErrors=True)
    finally:
        await other.close()
    admitted = [result for ok, result in results if ok]
    refused = [result for ok, result in results if not ok]
    assert len(admitted) == 3 and len(refused) == 7
    assert all(failure.check(LimitReached) for failure in refused)
    assert await database.transact(calls.count_active_calls, tree.isp["id"],
                                   customer_id=tree.customer["id"]) == 3


@pytest_twisted.ensureDeferred
async def test_a_dead_nodes_calls_are_handed_back_for_closing(database):
    tree = await build_tree(database, "crash.example.net")
    await database.transact(_admit(tree, "x", node="dead"))
    await database.transact(_admit(tree, "y", node="alive"))
    left = await database.transact(calls.take_calls_of_node, "dead", None)
    assert [row["call_id"] for row in left] == ["x"]
    assert await database.transact(calls.count_active_calls, tree.isp["id"]) == 1


@pytest_twisted.ensureDeferred
async def test_a_disabled_carrier_and_a_tenant_of_another_customer_are_refused(database):
    tree = await build_tree(database, "disabled.example.net")
    await database.transact(carriers.update_carrier, tree.isp["id"], tree.carrier["id"], enabled=False)
    with pytest.raises(NotAllowed, match="carrier disabled"):
        await database.transact(_admit(tree, "a", carrier=True))
    with pytest.raises(NotFound, match="tenant"):
        await database.transact(lambda tx: calls.admit_call(
            tx, tree.isp["id"], customer_id=tree.customer["id"], tenant_id=-1, call_id="b", node="n1",
            direction="internal"))
    assert await database.transact(calls.count_active_calls, tree.isp["id"]) == 0
