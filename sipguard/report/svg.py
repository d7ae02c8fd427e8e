"""Charts as inline SVG, written by hand: no script, no font, no file, nothing fetched.

Two kinds: a column chart over time (`series`, optionally stacked: passed and blocked) and
horizontal bars (`bars`). Every label is escaped; sizes are fixed, so a chart never grows with
its data beyond `MAX_ROWS` bars or the report's bounded number of time steps.
"""

from __future__ import annotations

import math
from typing import Final

from sipguard.report.layout import Chart
from sipguard.report.text import esc_html, number

__all__ = ["COLOURS", "MAX_ROWS", "chart_svg"]

WIDTH: Final = 960
SERIES_HEIGHT: Final = 260
ROW_HEIGHT: Final = 26
MAX_ROWS: Final = 12  # bars of a bar chart
LABEL_CHARS: Final = 28
COLOURS: Final = ("#3b6ea5", "#c8453b", "#d9902f")  # value, stack (blocked), single series
_FONT: Final = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, Arial, sans-serif"'


def _scale(value: float) -> tuple[float, float]:
    """(top, step) of a y axis for counts: a step of 1, 2 or 5 x 10^n (at least 1) and about
    four steps up to the first multiple at or above `value`."""
    rough = max(1.0, value / 4)
    power = 10 ** math.floor(math.log10(rough))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= rough)
    return step * max(1, math.ceil(value / step)), float(step)


def _open(chart: Chart, height: int) -> str:
    title = esc_html(chart.title)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{esc_html(chart.id)}" '
        f'viewBox="0 0 {WIDTH} {height}" width="100%" role="img" aria-label="{title}" '
        f'{_FONT} font-size="12"><title>{title}</title>'
    )


def _empty(chart: Chart) -> str:
    return (
        _open(chart, 60)
        + f'<text x="{WIDTH // 2}" y="34" text-anchor="middle" fill="#777">no data</text></svg>'
    )


def chart_svg(chart: Chart) -> str:
    if not chart.bars or not any(b.value or b.stack for b in chart.bars):
        return _empty(chart)
    if chart.kind == "series":
        return _series(chart)
    return _bars(chart)


def _series(chart: Chart) -> str:
    left, right, top, bottom = 64, 12, 28, 44
    plot_w, plot_h = WIDTH - left - right, SERIES_HEIGHT - top - bottom
    bars = chart.bars
    stacked = len(chart.legend) > 1
    top_value, tick_step = _scale(max(b.value + b.stack for b in bars))
    step_w = plot_w / len(bars)
    gap = min(2.0, step_w * 0.15)
    parts = [_open(chart, SERIES_HEIGHT)]
    for i in range(round(top_value / tick_step) + 1):  # grid and y labels
        v = tick_step * i
        y = top + plot_h - plot_h * v / top_value
        parts.append(
            f'<line x1="{left}" x2="{WIDTH - right}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#ddd" stroke-width="1"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#555">'
            f"{esc_html(number(v))}</text>"
        )
    colour = COLOURS[0] if stacked else COLOURS[2]
    for i, bar in enumerate(bars):
        x = left + i * step_w + gap / 2
        w = max(0.5, step_w - gap)
        h1 = plot_h * bar.value / top_value
        h2 = plot_h * bar.stack / top_value
        base = top + plot_h
        tip = esc_html(
            f"{bar.label}: {number(bar.value)}"
            + (f" {chart.legend[0]}, {number(bar.stack)} {chart.legend[1]}" if stacked else "")
        )
        parts.append(f"<g><title>{tip}</title>")
        if h1 > 0:
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{base - h1:.1f}" width="{w:.1f}" '
                f'height="{h1:.1f}" fill="{colour}"/>'
            )
        if stacked and h2 > 0:
            parts.append(
                f'<rect class="bar stack" x="{x:.1f}" y="{base - h1 - h2:.1f}" width="{w:.1f}" '
                f'height="{h2:.1f}" fill="{COLOURS[1]}"/>'
            )
        parts.append("</g>")
    every = max(1, math.ceil(len(bars) / 8))  # about eight time labels
    for i in range(0, len(bars), every):
        x = left + (i + 0.5) * step_w
        parts.append(
            f'<text x="{x:.1f}" y="{SERIES_HEIGHT - bottom + 16}" text-anchor="middle" '
            f'fill="#555">{esc_html(bars[i].tick or bars[i].label)}</text>'
        )
    parts.append(
        f'<line x1="{left}" x2="{WIDTH - right}" y1="{top + plot_h}" y2="{top + plot_h}" '
        f'stroke="#999"/>'
    )
    for n, name in enumerate(chart.legend):  # legend, top right
        x = WIDTH - right - 110 * (len(chart.legend) - n)
        fill = COLOURS[n] if stacked else COLOURS[2]
        parts.append(
            f'<rect x="{x}" y="6" width="12" height="12" fill="{fill}"/>'
            f'<text x="{x + 18}" y="16" fill="#333">{esc_html(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _bars(chart: Chart) -> str:
    rows = [b for b in chart.bars if b.value > 0][:MAX_ROWS]
    label_w, right, top = 220, 80, 8
    height = top * 2 + ROW_HEIGHT * len(rows)
    plot_w = WIDTH - label_w - right
    top_value = max(b.value for b in rows)
    parts = [_open(chart, height)]
    for i, bar in enumerate(rows):
        y = top + i * ROW_HEIGHT
        w = max(1.0, plot_w * bar.value / top_value)
        label = bar.label if len(bar.label) <= LABEL_CHARS else bar.label[: LABEL_CHARS - 1] + "…"
        parts.append(
            f"<g><title>{esc_html(f'{bar.label}: {number(bar.value)}')}</title>"
            f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end" fill="#333">'
            f"{esc_html(label)}</text>"
            f'<rect class="bar" x="{label_w}" y="{y + 4}" width="{w:.1f}" '
            f'height="{ROW_HEIGHT - 8}" fill="{COLOURS[0]}"/>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 17}" fill="#333">'
            f"{esc_html(number(bar.value))}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)
