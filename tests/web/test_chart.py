"""The reports page's SVG chart: bars in proportion to the daily numbers, nothing but markup."""

import xml.etree.ElementTree as ET
from decimal import Decimal

from wevoip.web.console.chart import PANEL, daily_chart, heights

SVG = "{http://www.w3.org/2000/svg}"


def _bars(svg, name):
    root = ET.fromstring(str(svg))
    return [rect for rect in root.iter(f"{SVG}rect") if name in rect.get("class").split()]


def test_bar_heights_follow_the_numbers_each_panel_to_its_own_largest_day():
    rows = [{"day": "2026-03-01", "minutes": Decimal("10.00"), "revenue": Decimal("0.5")},
            {"day": "2026-03-02", "minutes": Decimal("5.00"), "revenue": Decimal("2.0")},
            {"day": "2026-03-03", "minutes": Decimal("0.00"), "revenue": Decimal("0")},
            {"day": "2026-03-04", "minutes": Decimal("2.50"), "revenue": Decimal("1.0")}]
    svg = daily_chart(rows, "USD")
    minutes = [Decimal(rect.get("height")) for rect in _bars(svg, "minutes")]
    revenue = [Decimal(rect.get("height")) for rect in _bars(svg, "revenue")]
    assert minutes == [PANEL, PANEL / 2, 0, PANEL / 4]
    assert revenue == [PANEL / 4, PANEL, 0, PANEL / 2]
    # Bars stand on one baseline and move right day by day.
    bars = _bars(svg, "minutes")
    assert len({Decimal(b.get("y")) + Decimal(b.get("height")) for b in bars}) == 1
    xs = [Decimal(b.get("x")) for b in bars]
    assert xs == sorted(xs) and len(set(xs)) == 4
    titles = [b.find(f"{SVG}title").text for b in _bars(svg, "revenue")]
    assert titles[1] == "2026-03-02: 2 USD"


def test_an_idle_period_draws_flat_bars_and_text_is_escaped():
    assert heights([Decimal(0), Decimal(0)]) == [0, 0]
    assert heights([]) == []
    svg = daily_chart([{"day": "<script>", "minutes": Decimal(0), "revenue": Decimal(0)}], "U&S")
    assert "<script>" not in str(svg) and "&lt;script&gt;" in str(svg)
    assert "style=" not in str(svg)
    assert [rect.get("height") for rect in _bars(svg, "revenue")] == ["0"]
