"""
A subscriber's number is the caller ID carriers are shown (issue 12, point 7): only a DID
its tenant holds may be written, a DID in use as a number cannot be given back, and a
number that slipped through (rows written before the check, or by hand) is neither shown
nor routed to.
"""

import pytest
import pytest_twisted

from tests.store.builders import build_tree, held
from wevoip.store import customers, dids, routing, subscribers, tenants
from wevoip.store.errors import Conflict, Invalid


@pytest_twisted.ensureDeferred
async def test_a_subscriber_number_must_be_a_did_its_tenant_holds(database):
    tree = await build_tree(database, "kages.example.net")
    isp_id, tenant_id = tree.isp["id"], tree.tenant["id"]
    free = (await database.transact(dids.add_dids, isp_id, "+15550177000"))[0]

    async def globex(tx):
        customer = await customers.create_customer(tx, isp_id, name="Globex", status="ACTIVE")
        tenant = await tenants.create_tenant(tx, isp_id, customer["id"], name="Globex", label="globex")
        await held(tx, isp_id, tenant["id"], "+15550177009")
    await database.transact(globex)
    for number in ("+12025550123",       # in nobody's inventory
                   "+15550177000",       # the ISP's, but free
                   "+15550177009"):      # another customer's DID
        with pytest.raises(Invalid) as caught:
            await database.transact(subscribers.create_subscriber, isp_id, tenant_id, username="bob",
                                    password="Sup3r-secret-00", e164=number)
        assert caught.value.field == "e164"
    await database.transact(dids.allocate_did, isp_id, free["id"], tenant_id)
    bob = await database.transact(subscribers.create_subscriber, isp_id, tenant_id, username="bob",
                                  password="Sup3r-secret-00", e164="+15550177000")
    assert bob["e164"] == "+15550177000"
    with pytest.raises(Invalid):
        await database.transact(subscribers.update_subscriber, isp_id, bob["id"], e164="+12025550123")
    assert (await database.transact(subscribers.get_subscriber, isp_id, bob["id"]))["e164"] == "+15550177000"
    changed = await database.transact(subscribers.update_subscriber, isp_id, bob["id"], e164=tree.did["e164"])
    assert changed["e164"] == tree.did["e164"]
    assert (await database.transact(subscribers.update_subscriber, isp_id, bob["id"], e164=None))["e164"] is None


@pytest_twisted.ensureDeferred
async def test_a_did_that_is_a_subscriber_number_is_not_released_until_the_number_changes(database):
    tree = await build_tree(database, "kages.example.net")
    isp_id, tenant_id = tree.isp["id"], tree.tenant["id"]
    did = await database.transact(held, isp_id, tenant_id, "+15550177001")
    bob = await database.transact(subscribers.create_subscriber, isp_id, tenant_id, username="bob",
                                  password="Sup3r-secret-00", e164="+15550177001")
    with pytest.raises(Conflict) as caught:
        await database.transact(dids.release_did, isp_id, did["id"])
    assert caught.value.field == "did_id" and "subscriber bob" in str(caught.value)
    await database.transact(subscribers.update_subscriber, isp_id, bob["id"], e164=None)
    assert (await database.transact(dids.release_did, isp_id, did["id"]))["tenant_id"] is None


@pytest_twisted.ensureDeferred
async def test_a_number_the_tenant_does_not_hold_is_never_shown_nor_on_net(database):
    """Rows from before the check: an extension's own number falls back to the pilot's, a pilot
    whose number is not held shows none (the call goes out anonymous), and such a number
    routes to nobody, so it cannot capture calls to the real owner outside."""
    tree = await build_tree(database, "kages.example.net")
    isp_id, tenant_id = tree.isp["id"], tree.tenant["id"]
    await database.transact(held, isp_id, tenant_id, "+15550177002")
    bob = await database.transact(subscribers.create_subscriber, isp_id, tenant_id, username="bob",
                                  password="Sup3r-secret-00", extension="101", e164="+15550177002")

    async def shown(subscriber_id):
        return (await database.transact(routing.caller_identity, isp_id, subscriber_id))["e164"]
    assert await shown(bob["id"]) == "+15550177002"
    assert (await database.transact(routing.local_number, isp_id, "+15550177002"))["subscriber_id"] == bob["id"]
    await database.fetch("update subscribers set e164 = '+12025550123' where id = %s returning id", (bob["id"],))
    assert await shown(bob["id"]) == "+15550100100"
    assert await database.transact(routing.local_number, isp_id, "+12025550123") is None
    assert await database.transact(routing.unheld_numbers) == [{"isp_id": isp_id, "subscribers": 1}]
    await database.fetch("update dids set tenant_id = null, customer_id = null where isp_id = %s"
                         " and e164 = '+15550100100' returning id", (isp_id,))
    assert await shown(bob["id"]) is None and await shown(tree.subscriber["id"]) is None
