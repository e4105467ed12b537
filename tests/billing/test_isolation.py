"""The billing functions that take an ISP find nothing of another ISP's, cached or not."""

import pytest
import pytest_twisted

from tests.billing.world import NOW, answered_for, authorise, build_world
from wevoip.billing.calls import authorise_call, quote_call, settle_call, simulate_call
from wevoip.billing.decks import build_customer_card, upload_draft, upload_more
from wevoip.store import ratedecks
from wevoip.store.errors import NotFound


@pytest_twisted.ensureDeferred
async def test_no_billing_function_reaches_another_isps_objects(database):
    a = await build_world(database, "victim.example.net")
    b = await build_world(database, "other.example.net")
    auth = await database.transact(authorise(a))
    draft = await database.transact(upload_draft, a.isp_id, a.deck_one["id"], "prefix,cost\n44,0.1\n")
    card = await database.transact(lambda tx: ratedecks.create_deck(tx, a.isp_id, name="Retail", kind="customer"))
    indexes = a.indexes                      # warm with the victim's decks: the cache must not leak them
    calls = [
        lambda tx: authorise_call(tx, b.isp_id, customer_id=a.customer_id, destination="+442071838750",
                                  call_id="x", node="n", indexes=indexes, at=NOW),
        lambda tx: quote_call(tx, b.isp_id, a.customer_id, "+442071838750", at=NOW, indexes=indexes),
        lambda tx: simulate_call(tx, b.isp_id, a.customer_id, "+442071838750", 1000, at=NOW, indexes=indexes),
        lambda tx: settle_call(tx, b.isp_id, auth.reservation_id, answered_for(10)),
        lambda tx: upload_draft(tx, b.isp_id, a.deck_one["id"], "prefix,cost\n44,0.1\n"),
        lambda tx: upload_more(tx, b.isp_id, draft["id"], "prefix,cost\n33,0.1\n"),
        lambda tx: build_customer_card(tx, b.isp_id, card["id"], at=NOW, indexes=indexes),
    ]
    for call in calls:
        with pytest.raises(NotFound):
            await database.transact(call)
    assert await database.transact(lambda tx: indexes.deck_at(tx, b.isp_id, a.deck_one["id"], NOW)) is None
    version = (await database.transact(ratedecks.published_versions, a.isp_id, a.deck_one["id"]))[0]["id"]
    assert len(await database.transact(indexes.index, b.isp_id, version)) == 0
    assert len(await database.transact(indexes.index, a.isp_id, version)) == 5
