from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wevoip.billing.rating import (
    Increment, Markup, ProfitRule, Rate, RateDeck, RatingError, build_customer_deck, free_minutes_used,
    least_cost, max_duration)


@pytest.mark.parametrize("increment, duration_ms, billable", [
    ("1/1", 0, 0), ("1/1", 1, 1), ("1/1", 61_001, 62),
    ("30/6", 1_000, 30), ("30/6", 30_000, 30), ("30/6", 31_000, 36), ("30/6", 36_001, 42),
    ("60/60", 59_000, 60), ("60/60", 61_000, 120),
])
def test_billable_time_rounds_up_to_the_increment(increment, duration_ms, billable):
    assert Increment.parse(increment).billable(duration_ms) == billable


@pytest.mark.parametrize("text", ["0/1", "1/0", "a/b", "1", "1/1/1", "-1/1", "99999/1"])
def test_bad_increments_are_refused(text):
    with pytest.raises(RatingError):
        Increment.parse(text)


def test_the_longest_prefix_wins():
    deck = RateDeck([Rate("44", "UK", D("0.02")), Rate("441", "UK landline", D("0.006")),
                     Rate("447", "UK mobile", D("0.05"))])
    assert deck.match("+442071838750").description == "UK"
    assert deck.match("+441632960000").description == "UK landline"
    assert deck.match("+447700900000").description == "UK mobile"
    assert deck.match("+12125550100") is None


def test_a_deck_refuses_bad_rows():
    with pytest.raises(RatingError, match="twice"):
        RateDeck([Rate("44", "a", D("0.1")), Rate("44", "b", D("0.2"))])
    with pytest.raises(RatingError, match="digits"):
        RateDeck([Rate("+44", "a", D("0.1"))])


def test_call_cost_adds_the_connection_fee_and_charges_by_increment():
    rate = Rate("1", "US", D("0.012"), D("0.01"), Increment.parse("30/6"))
    assert rate.cost(0) == D("0")
    assert rate.cost(10_000) == D("0.016000")
    assert rate.cost(31_000) == D("0.017200")


def test_the_voipms_markup_example():
    assert Markup(D("0.0025"), D("20")).price(D("0.009")) == D("0.0138")


def test_a_customer_card_is_built_from_carrier_cards_with_profit_rules():
    carrier_a = RateDeck([Rate("441", "UK landline", D("0.006")), Rate("447", "UK mobile", D("0.04"))])
    carrier_b = RateDeck([Rate("441", "UK landline", D("0.005")), Rate("1", "US", D("0.004"))])
    rules = [ProfitRule("44", "percent", D("50"), D("0.001")), ProfitRule("441", "absolute", D("0.007"))]
    card = build_customer_deck([carrier_a, carrier_b], rules)
    assert card.match("+441632960000").per_minute == D("0.012")
    assert card.match("+447700900000").per_minute == D("0.06")
    assert card.match("+12125550100") is None
    with pytest.raises(RatingError, match="below its cost"):
        build_customer_deck([carrier_a], [ProfitRule("44", "absolute", D("-0.01"))])


def test_least_cost_routing_never_at_a_loss_unless_allowed():
    decks = {"a": RateDeck([Rate("44", "UK", D("0.010"))]), "b": RateDeck([Rate("441", "UK", D("0.008"))]),
             "c": RateDeck([Rate("4", "EU", D("0.030"))])}
    offers = least_cost("+441632960000", decks, price_per_minute=D("0.02"))
    assert [offer.carrier for offer in offers] == ["b", "a"]
    assert [o.carrier for o in least_cost("+441632960000", decks, price_per_minute=D("0.02"),
                                          allow_loss=True)] == ["b", "a", "c"]
    assert [o.carrier for o in least_cost("+441632960000", decks, priority=["c", "a"])] == ["c", "a", "b"]


def test_max_duration_respects_increments_and_fees():
    rate = Rate("1", "US", D("0.60"), D("0.10"), Increment.parse("60/60"))
    assert max_duration(D("0.69"), rate) == 0
    assert max_duration(D("0.70"), rate) == 60
    assert max_duration(D("1.29"), rate) == 60
    assert max_duration(D("-5"), rate) == 0
    assert max_duration(D("5"), Rate("800", "toll free", D("0"))) is None


@given(balance=st.decimals(min_value=D("0"), max_value=D("500"), places=6),
       per_minute=st.decimals(min_value=D("0.000001"), max_value=D("5"), places=6),
       fee=st.decimals(min_value=D("0"), max_value=D("1"), places=6),
       first=st.integers(1, 120), step=st.integers(1, 60))
def test_a_call_cut_at_its_maximum_never_costs_more_than_the_balance(balance, per_minute, fee, first, step):
    rate = Rate("1", "x", per_minute, fee, Increment(first, step))
    seconds = max_duration(balance, rate)
    assert seconds is not None
    if seconds:
        assert rate.cost(seconds * 1000) <= balance
        assert rate.cost((seconds + step) * 1000) > balance
    else:
        assert balance - fee <= 0 or rate.cost(first * 1000) > balance


def test_free_minutes_are_whole_minutes_per_call():
    assert free_minutes_used([191_000, 60_000, 0, 1]) == 4 + 1 + 0 + 1
