"""Bans, rate limits and scanner drops, on a task.Clock."""

import pytest
from twisted.internet.task import Clock

from wevoip.sip.defence import Defence, DefencePolicy

ATTACKER = "198.51.100.7"


def _defence(**changes):
    clock = Clock()
    clock.advance(1000)
    policy = DefencePolicy(**{"ban_after_failures": 3, "ban_after_user_failures": 5,
                              "failure_window": 60, "ban_seconds": 600, "requests_per_second": 10,
                              "request_burst": 20, **changes})
    return Defence(clock, policy)


def test_source_is_banned_after_n_failures_in_the_window_and_released_after():
    defence = _defence()
    assert defence.failed(ATTACKER, "100") is False
    assert defence.failed(ATTACKER, "101") is False
    assert defence.admit(ATTACKER)
    assert defence.failed(ATTACKER, "102") is True
    assert not defence.admit(ATTACKER)
    assert defence.counters.banned_dropped == 1
    [ban] = defence.bans()
    assert ban["address"] == ATTACKER and ban["seconds_left"] == 600
    defence.clock.advance(601)
    assert defence.admit(ATTACKER)
    assert defence.bans() == []


def test_responses_take_no_token_but_a_ban_silences_them_too():
    defence = _defence(request_burst=1, requests_per_second=1)
    assert defence.admit(ATTACKER) and not defence.admit(ATTACKER)
    assert defence.admit_response(ATTACKER)
    defence.ban(ATTACKER, "manual")
    assert not defence.admit_response(ATTACKER)


def test_failures_outside_the_window_do_not_add_up():
    defence = _defence()
    for _ in range(5):
        assert defence.failed(ATTACKER, "100") is False
        defence.clock.advance(31)
        defence.failed(ATTACKER, "100")
        defence.clock.advance(61)
    assert defence.admit(ATTACKER)


def test_success_resets_the_source_counter():
    defence = _defence()
    defence.failed(ATTACKER, "100")
    defence.failed(ATTACKER, "100")
    defence.succeeded(ATTACKER)
    assert defence.failed(ATTACKER, "100") is False


def test_guessing_one_user_from_many_sources_bans_the_sources_past_the_user_limit():
    defence = _defence()
    sources = [f"203.0.113.{i}" for i in range(8)]
    banned = [defence.failed(source, "Alice") for source in sources]
    assert banned == [False] * 4 + [True] * 4
    assert {ban["address"] for ban in defence.bans()} == set(sources[4:])


def test_a_user_under_attack_is_told_with_its_last_distinct_sources_in_the_window():
    defence = _defence()
    for i in range(30):
        defence.failed(f"203.0.113.{i}", "Alice@Acme")
        defence.failed(f"203.0.113.{i}", "alice@acme")
    count, sources = defence.user_failures("ALICE@acme")
    assert count == 60 and sources == [f"203.0.113.{i}" for i in range(10, 30)]
    assert defence.under_attack("alice@acme") and not defence.under_attack("bob@acme")
    defence.clock.advance(300)
    assert defence.user_failures("alice@acme") == (0, []) and not defence.under_attack("alice@acme")


def test_trusted_networks_are_never_banned_or_limited():
    defence = _defence(trusted_networks=("10.0.0.0/8", "2001:db8::/32"))
    for _ in range(10):
        assert defence.failed("10.1.2.3", "100") is False
        assert defence.failed("2001:db8::5", "100") is False
    defence.ban("10.1.2.3", "manual")
    assert defence.bans() == []
    assert all(defence.admit("10.1.2.3") for _ in range(100))


def test_rate_limit_is_a_token_bucket():
    defence = _defence()
    assert sum(defence.admit(ATTACKER) for _ in range(30)) == 20
    assert defence.counters.rate_dropped == 10
    defence.clock.advance(0.5)
    assert sum(defence.admit(ATTACKER) for _ in range(30)) == 5
    defence.clock.advance(100)
    assert sum(defence.admit(ATTACKER) for _ in range(30)) == 20


@pytest.mark.parametrize("agent", ["friendly-scanner", "sipvicious 0.3.4", "SIPcli/v1.8",
                                   "VaxSIPUserAgent/3.1"])
def test_scanner_user_agents_are_dropped_when_configured(agent):
    assert not _defence().admit(ATTACKER, agent)
    assert _defence(drop_scanners=False).admit(ATTACKER, agent)
    assert _defence().admit(ATTACKER, "baresip v3.10.1 (x86_64/linux)")


def test_unban_and_clear_from_the_manhole():
    defence = _defence()
    defence.ban(ATTACKER, "manual")
    defence.ban("198.51.100.8", "manual")
    assert defence.unban(ATTACKER) is True
    assert defence.unban(ATTACKER) is False
    assert defence.admit(ATTACKER)
    assert defence.clear() == 1
    assert defence.bans() == []


def test_spoofed_flood_stays_bounded():
    defence = _defence(max_tracked=1000, max_bans=100)
    for i in range(20_000):
        address = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        defence.admit(address)
        defence.failed(address, f"user{i}")
        defence.ban(address, "flood")
    assert len(defence._buckets) <= 1000
    assert len(defence._source_failures) <= 1000
    assert len(defence._user_failures) <= 1000
    assert len(defence.bans()) == 100
