import datetime
from decimal import Decimal as D

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from tests.billing.world import EPOCH, NOW, build_world, publish_csv
from wevoip.billing.decks import DeckIndexes, RateCsvError, build_customer_card, parse_rate_csv, upload_draft
from wevoip.store import ratedecks
from wevoip.store.errors import Invalid
from wevoip.store.notify import Notifier


def test_a_csv_with_bad_lines_names_every_one_by_number():
    text = ("prefix,description,cost,increment\n"
            "44,UK,0.02,1/1\n"
            "4x,bad prefix,0.02,1/1\n"
            "33,France,-1,1/1\n"
            "49,Germany,0.02,0/1\n"
            "44,UK again,0.03,1/1\n"
            "1,US,0.01\n")
    with pytest.raises(RateCsvError) as caught:
        parse_rate_csv(text)
    assert [(p["line"], p["field"]) for p in caught.value.problems] == [
        (3, "prefix"), (4, "per_minute"), (5, "increment"), (6, "prefix"), (7, "columns")]
    assert "line 6" in caught.value.problems[3]["problem"] or "line 2" in caught.value.problems[3]["problem"]


def test_a_csv_needs_its_columns_and_classes_default_from_the_home_prefix():
    with pytest.raises(RateCsvError, match="line 1"):
        parse_rate_csv("prefix,description\n44,UK\n")
    rows = parse_rate_csv("prefix,cost,class\n1212,0.01,\n44,0.02,\n1900,0.5,premium\n", home_prefix="1")
    assert [(r.prefix, r.dest_class, r.per_minute) for r in rows] == [
        ("1212", "domestic", D("0.01")), ("44", "international", D("0.02")), ("1900", "premium", D("0.5"))]


def test_text_that_is_no_csv_is_invalid_and_old_mac_line_ends_are_lines():
    """Found by schemathesis on a lived-in node: a lone CR inside a line, or a field over the
    csv module's limit, raised csv.Error out of the parser (a 500)."""
    with pytest.raises(RateCsvError):
        parse_rate_csv("9\u00f6\u00a2\U000dd0f2\r\x8b")
    with pytest.raises(Invalid) as raised:
        parse_rate_csv('prefix,cost\n1,"' + "x" * 200_000 + '"\n')
    assert raised.value.field == "csv" and "not CSV" in raised.value.problem
    assert [row.prefix for row in parse_rate_csv("prefix,cost\r44,0.1\r1,0.2\r")] == ["44", "1"]


@pytest_twisted.ensureDeferred
async def test_a_bad_upload_writes_nothing(database):
    world = await build_world(database)
    before = await database.fetch("select count(*) as n from rate_deck_versions")
    with pytest.raises(RateCsvError):
        await database.transact(upload_draft, world.isp_id, world.deck_one["id"], "prefix,cost\n44,0.1\nx,0.2\n")
    assert await database.fetch("select count(*) as n from rate_deck_versions") == before


@pytest_twisted.ensureDeferred
async def test_the_version_in_force_at_a_moment_prices_it(database):
    world = await build_world(database)
    later = NOW + datetime.timedelta(days=1)
    await database.transact(publish_csv, world.isp_id, world.deck_one["id"], "prefix,cost\n44,0.0300\n", later)
    indexes = DeckIndexes()

    async def rate_at(tx, at):
        version, deck = await indexes.deck_at(tx, world.isp_id, world.deck_one["id"], at)
        return deck.match("+442071838750").per_minute
    assert await database.transact(rate_at, NOW) == D("0.02")
    assert await database.transact(rate_at, later) == D("0.03")
    assert await database.transact(lambda tx: indexes.deck_at(tx, world.isp_id, world.deck_one["id"],
                                                              EPOCH - datetime.timedelta(seconds=1))) is None


@pytest_twisted.ensureDeferred
async def test_a_draft_is_published_once(database):
    world = await build_world(database)
    draft = await database.transact(upload_draft, world.isp_id, world.deck_one["id"], "prefix,cost\n44,0.1\n")
    await database.transact(ratedecks.publish_version, world.isp_id, draft["id"], NOW)
    with pytest.raises(Invalid) as caught:
        await database.transact(ratedecks.publish_version, world.isp_id, draft["id"], NOW)
    assert caught.value.field == "version_id"


@pytest_twisted.ensureDeferred
async def test_publishing_on_one_node_refreshes_every_nodes_index(database, dsn):
    world = await build_world(database)
    notifier = Notifier(reactor, dsn)
    await notifier.start()
    try:
        indexes = DeckIndexes()
        await indexes.attach(notifier)
        heard = defer.Deferred()
        await notifier.subscribe(ratedecks.CHANNEL, lambda payload: heard.called or heard.callback(payload))

        async def price(tx):
            return (await indexes.deck_at(tx, world.isp_id, world.deck_one["id"], NOW))[1].match("+44207").per_minute
        assert await database.transact(price) == D("0.02")
        await database.transact(publish_csv, world.isp_id, world.deck_one["id"], "prefix,cost\n44,0.0250\n",
                                NOW - datetime.timedelta(hours=1))
        assert await heard == str(world.deck_one["id"])
        assert await database.transact(price) == D("0.025")
    finally:
        notifier.stop()


@pytest_twisted.ensureDeferred
async def test_a_customer_card_is_built_from_the_cheapest_carrier_with_profit_rules(database):
    world = await build_world(database)

    async def work(tx):
        card = await ratedecks.create_deck(tx, world.isp_id, name="Retail", kind="customer")
        await ratedecks.set_profit_rules(tx, world.isp_id, card["id"], sources=[world.deck_one["id"], world.deck_two["id"]],
                                         rules=[{"prefix": "", "kind": "percent", "amount": "50", "rounding": "0.001"},
                                                {"prefix": "44", "kind": "absolute", "amount": "0.005"}])
        draft = await build_customer_card(tx, world.isp_id, card["id"], at=NOW, indexes=DeckIndexes())
        return {row["prefix"]: row for row in await ratedecks.version_rates(tx, world.isp_id, draft["id"])}
    rates = await database.transact(work)
    assert rates["44"]["per_minute"] == D("0.02")     # Two's 0.015 + 0.005
    assert rates["44"]["increment_first"] == 30       # Two's billing, since Two is the cheapest
    assert rates["1"]["per_minute"] == D("0.014")     # One's 0.009 x 1.5 = 0.0135, up to 0.001
    assert rates["1900"]["dest_class"] == "premium"


@pytest_twisted.ensureDeferred
async def test_a_card_that_would_sell_below_cost_is_refused_unless_the_isp_allows_it(database):
    world = await build_world(database)

    async def work(tx):
        card = await ratedecks.create_deck(tx, world.isp_id, name="Loss", kind="customer")
        await ratedecks.set_profit_rules(tx, world.isp_id, card["id"], sources=[world.deck_one["id"]],
                                         rules=[{"prefix": "", "kind": "absolute", "amount": "-0.001"}])
        return await build_customer_card(tx, world.isp_id, card["id"], at=NOW, indexes=DeckIndexes())
    with pytest.raises(Invalid) as caught:
        await database.transact(work)
    assert caught.value.field == "profit"
