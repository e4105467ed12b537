"""Which refused calls get a record: those that named an ISP, within the per-ISP rate."""

from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher

from wevoip.calls.refusals import Attempt, Refusals


def _attempt(isp_id, n=0):
    return Attempt(f"c{n}", "192.0.2.1:5060", "101", isp_id=isp_id)


def test_identified_refusals_are_recorded_within_the_rate_per_isp_and_counted_beyond():
    clock = Clock()
    refusals = Refusals(clock, per_second=2)
    assert [refusals.to_record(_attempt(1, n), 404, "Not Found") for n in range(3)] == [True, True, False]
    assert refusals.to_record(_attempt(2), 404, "Not Found")           # another ISP has its own bucket
    clock.advance(0.5)
    assert refusals.to_record(_attempt(1), 404, "Not Found")           # one token back in half a second
    assert not refusals.to_record(_attempt(1), 404, "Not Found")
    assert refusals.health() == {"refused_unidentified": 0, "refused_not_recorded": 2}


def test_none_is_recorded_at_zero_and_anonymous_ones_are_counted():
    refusals = Refusals(Clock(), per_second=0)
    assert not refusals.to_record(_attempt(1), 403, "Forbidden")
    assert not refusals.to_record(_attempt(None), 403, "Forbidden: not a carrier address")
    refusals.refused_anonymous()
    assert refusals.health() == {"refused_unidentified": 2, "refused_not_recorded": 1}


def test_a_flood_is_summed_up_in_one_line_a_minute():
    clock = Clock()
    refusals = Refusals(clock, per_second=20)
    lines = []
    globalLogPublisher.addObserver(lines.append)
    try:
        for _ in range(6400):
            refusals.refused_anonymous()
            clock.advance(1 / 64)                                      # 100 s of refusals at 64/s
    finally:
        globalLogPublisher.removeObserver(lines.append)
    summaries = [line for line in lines if "counted, not recorded" in line.get("log_format", "")]
    assert len(summaries) == 2
    assert [line["unidentified"] for line in summaries] == [1, 3840]
