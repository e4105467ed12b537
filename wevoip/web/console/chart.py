"""
The ISP console's chart of daily minutes and revenue, drawn on the server as inline SVG.

The console runs no script (its Content-Security-Policy forbids them), so the chart is
markup like the rest of the page: two panels of bars, one for minutes and one for revenue,
each scaled to its own largest day. Colours come from classes in console.css, since the
policy forbids inline styles too. Every bar carries a <title> with its day and value, which
is what a screen reader or a hovering pointer reads.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Iterable

from markupsafe import Markup, escape

WIDTH = 720
PANEL = 120        # height of each panel's bars at the largest day
LEFT = 70          # room for the axis labels
TOP = 24           # room for a panel's heading
GAP = 36           # between the two panels


def heights(values: Iterable[Decimal], tallest: int = PANEL) -> list[Decimal]:
    """Bar heights in proportion to the values, the largest `tallest` high (all 0 when idle)."""
    values = [Decimal(value) for value in values]
    top = max(values, default=Decimal(0))
    if top <= 0:
        return [Decimal(0) for _ in values]
    return [(max(value, Decimal(0)) * tallest / top).quantize(Decimal("0.01")) for value in values]


def _panel(days: list[str], values: list[Decimal], *, name: str, label: str, unit: str, y0: int) -> list[str]:
    step = Decimal(WIDTH - LEFT) / max(len(days), 1)
    width = max(step * Decimal("0.8"), Decimal(1)).quantize(Decimal("0.01"))
    base = y0 + TOP + PANEL
    top = max(values, default=Decimal(0))
    parts = [f'<text x="0" y="{y0 + 14}" class="chart-heading">{escape(label)}</text>',
             f'<text x="{LEFT - 6}" y="{y0 + TOP + 10}" text-anchor="end" class="chart-axis">'
             f'{escape(_number(top))}</text>',
             f'<text x="{LEFT - 6}" y="{base}" text-anchor="end" class="chart-axis">0</text>',
             f'<line x1="{LEFT}" y1="{base}" x2="{WIDTH}" y2="{base}" class="chart-base"/>']
    for index, (day, value, height) in enumerate(zip(days, values, heights(values))):
        x = (LEFT + step * index).quantize(Decimal("0.01"))
        parts.append(f'<rect class="bar {name}" x="{x}" y="{base - height}" width="{width}" height="{height}">'
                     f'<title>{escape(day)}: {escape(_number(value))} {escape(unit)}</title></rect>')
    return parts


def _number(value: Decimal) -> str:
    return f"{Decimal(value).normalize():f}" if value else "0"


def daily_chart(rows: list[dict], currency: str) -> Markup:
    """SVG of `reports.daily_report` rows: minutes above, revenue (the calls' price) below."""
    days = [row["day"] for row in rows]
    minutes = [row["minutes"] for row in rows]
    revenue = [row["revenue"] for row in rows]
    height = 2 * (TOP + PANEL) + GAP + 20
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {height}"'
             f' role="img" aria-labelledby="chart-title">',
             f'<title id="chart-title">Minutes and revenue per day, {escape(days[0] if days else "")}'
             f' to {escape(days[-1] if days else "")}</title>',
             *_panel(days, minutes, name="minutes", label="Minutes", unit="min", y0=0),
             *_panel(days, revenue, name="revenue", label=f"Revenue ({currency})", unit=currency,
                     y0=TOP + PANEL + GAP)]
    if days:
        parts += [f'<text x="{LEFT}" y="{height - 4}" class="chart-axis">{escape(days[0])}</text>',
                  f'<text x="{WIDTH}" y="{height - 4}" text-anchor="end" class="chart-axis">{escape(days[-1])}</text>']
    parts.append("</svg>")
    return Markup("".join(parts))
