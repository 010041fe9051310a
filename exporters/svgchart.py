"""Small line charts as inline SVG, rendered on the server: no script, no external asset.

    svg = line_chart(series, thresholds, start=t0, end=t1, title="node_load1")

Every text that reaches the markup (legend, title, tick labels) is escaped; numbers are formatted
here. Colours come from CSS custom properties of the page (`--c0` … `--c4`, `--warn`, `--crit`), so
the page's light/dark scheme applies.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from html import escape

from hostwarden.rules.chartdata import ChartSeries, ThresholdLine

WIDTH, HEIGHT = 400, 150
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 48, 8, 8, 22
PALETTE = ("var(--c0)", "var(--c1)", "var(--c2)", "var(--c3)", "var(--c4)")


def fmt_value(v: float) -> str:
    if not math.isfinite(v):
        return str(v)
    a = abs(v)
    for limit, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= limit:
            return f"{v / limit:.3g}{suffix}"
    return f"{v:.3g}"


def _series_name(labels: tuple[tuple[str, str], ...]) -> str:
    return ", ".join(f"{k}={v}" for k, v in labels) or "value"


def _threshold_colour(t: ThresholdLine) -> str:
    return "var(--crit)" if t.label == "critical" else "var(--warn)"


def line_chart(series: Sequence[ChartSeries], thresholds: Sequence[ThresholdLine], *, start: float, end: float,
               title: str = "") -> str:
    """An <svg> element (role="img", with a <title>) of `series` and horizontal `thresholds`."""
    values = [v for s in series for _t, v in s.points if math.isfinite(v)]
    values += [t.value for t in thresholds if math.isfinite(t.value)]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi == lo:
        lo, hi = lo - 1.0, hi + 1.0
    span = hi - lo
    lo, hi = lo - span * 0.05, hi + span * 0.05
    end = end if end > start else start + 1.0
    plot_w, plot_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM

    def x(t: float) -> float:
        return PAD_LEFT + (t - start) / (end - start) * plot_w

    def y(v: float) -> float:
        return PAD_TOP + (hi - v) / (hi - lo) * plot_h

    label = title or "chart"
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(label)}</title>',
             f'<rect x="{PAD_LEFT}" y="{PAD_TOP}" width="{plot_w}" height="{plot_h}" class="plot"/>']
    for i in range(3):  # y axis: bottom, middle, top
        v = lo + (hi - lo) * i / 2
        parts.append(f'<line x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>'
                     f'<text x="{PAD_LEFT - 4}" y="{y(v) + 4:.1f}" text-anchor="end" class="tick">'
                     f"{escape(fmt_value(v))}</text>")
    for i in range(3):  # x axis: start, middle, end as HH:MM UTC
        t = start + (end - start) * i / 2
        anchor = ("start", "middle", "end")[i]
        parts.append(f'<text x="{x(t):.1f}" y="{HEIGHT - 6}" text-anchor="{anchor}" class="tick">'
                     f'{time.strftime("%H:%M", time.gmtime(t))}</text>')
    for t in thresholds:
        if math.isfinite(t.value):
            parts.append(f'<line x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" y1="{y(t.value):.1f}" y2="{y(t.value):.1f}" '
                         f'class="threshold" stroke="{_threshold_colour(t)}" stroke-dasharray="6 4">'
                         f"<title>{escape(f'threshold {t.label} ({fmt_value(t.value)})')}</title></line>")
    for i, s in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        runs: list[list[str]] = [[]]
        for t, v in s.points:
            if math.isfinite(v):
                runs[-1].append(f"{x(t):.1f},{y(v):.1f}")
            elif runs[-1]:
                runs.append([])
        name = escape(_series_name(s.labels))
        for run in runs:
            if len(run) == 1:
                cx, cy = run[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{colour}" class="series"><title>{name}</title>'
                             "</circle>")
            elif run:
                parts.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" class="series">'
                             f"<title>{name}</title></polyline>")
    if not values:
        parts.append(f'<text x="{PAD_LEFT + plot_w / 2:.0f}" y="{PAD_TOP + plot_h / 2:.0f}" text-anchor="middle" '
                     'class="tick">no samples in the store</text>')
    parts.append("</svg>")
    return "".join(parts)


def legend(series: Sequence[ChartSeries], thresholds: Sequence[ThresholdLine]) -> str:
    """An HTML list naming each line of the chart with its colour (escaped)."""
    items = [f'<li><span class="swatch" style="background:{PALETTE[i % len(PALETTE)]}"></span>'
             f"{escape(_series_name(s.labels))}</li>" for i, s in enumerate(series)]
    items += [f'<li><span class="swatch dashed" style="border-color:{_threshold_colour(t)}"></span>'
              f"threshold {escape(t.label)} = {escape(fmt_value(t.value))}</li>" for t in thresholds]
    return f'<ul class="legend">{"".join(items)}</ul>' if items else ""
