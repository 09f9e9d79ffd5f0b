"""Chart geometry for the web view's server-rendered SVG.

The functions here turn numbers into coordinates and SVG path data (numbers and letters only);
the templates draw them, and Jinja2's autoescape escapes every label. No JavaScript is needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

WIDTH = 720
HEIGHT = 280
MARGIN = (16, 20, 36, 64)
"""Top, right, bottom and left margins, in SVG units."""


@dataclass
class Line:
    """One series of a line chart: ``d`` is the path, one ``M``/``L`` point per value."""

    label: str
    points: int
    d: str
    dots: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class Tick:
    """An axis tick at ``pos`` (SVG units) labelled ``text``."""

    pos: float
    text: str


class Frame:
    """The plotting area of every chart, in SVG units."""

    width = WIDTH
    height = HEIGHT
    left = float(MARGIN[3])
    top = float(MARGIN[0])
    right = float(WIDTH - MARGIN[1])
    bottom = float(HEIGHT - MARGIN[2])


@dataclass
class LineChart(Frame):
    """A line chart: axes, ticks and series."""

    lines: list[Line]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    x_label: str
    y_label: str


@dataclass
class Bar:
    """One bar: its rectangle and what it stands for."""

    x: float
    y: float
    w: float
    h: float
    label: str
    value: int


@dataclass
class BarChart(Frame):
    """A bar chart of sizes."""

    bars: list[Bar]
    y_ticks: list[Tick]
    y_label: str


def _span(values: list[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if hi == lo:
        pad = abs(lo) * 0.1 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.05
    return lo - pad, hi + pad


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round numbers between ``lo`` and ``hi``."""
    raw = (hi - lo) / count
    step = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * step:
            step *= m
            break
    first = math.ceil(lo / step) * step
    out = []
    v = first
    while v <= hi + step * 1e-9:
        out.append(round(v, 12))
        v += step
    return out


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def line_chart(
    series: dict[str, list[tuple[float, float]]], x_label: str, y_label: str
) -> LineChart:
    """A chart of ``series`` (label to ``(x, y)`` points) on shared axes.

    Every point becomes one vertex of its series' path, so a curve of N logged steps has N
    points; non-finite values are left out by the caller (:func:`vault.meta.series`).
    """
    chart = LineChart([], [], [], x_label, y_label)
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts]
    if not xs:
        return chart
    x0, x1 = (min(xs), max(xs)) if min(xs) != max(xs) else (min(xs) - 1, max(xs) + 1)
    y0, y1 = _span(ys)

    def sx(x: float) -> float:
        return chart.left + (x - x0) / (x1 - x0) * (chart.right - chart.left)

    def sy(y: float) -> float:
        return chart.bottom - (y - y0) / (y1 - y0) * (chart.bottom - chart.top)

    for label, pts in series.items():
        coords = [(round(sx(x), 1), round(sy(y), 1)) for x, y in pts]
        d = " ".join(f"{'M' if i == 0 else 'L'}{x},{y}" for i, (x, y) in enumerate(coords))
        chart.lines.append(Line(label, len(coords), d, coords))
    chart.x_ticks = [Tick(sx(v), _fmt(v)) for v in _ticks(x0, x1) if x0 <= v <= x1]
    chart.y_ticks = [Tick(sy(v), _fmt(v)) for v in _ticks(y0, y1) if y0 <= v <= y1]
    return chart


def bar_chart(values: list[tuple[str, int]], y_label: str) -> BarChart:
    """A chart of one bar per ``(label, bytes)``, in the order given (left to right)."""
    chart = BarChart([], [], y_label)
    if not values:
        return chart
    top = max(v for _, v in values) or 1
    slot = (chart.right - chart.left) / len(values)
    width = max(slot * 0.8, 0.5)
    for i, (label, value) in enumerate(values):
        h = value / top * (chart.bottom - chart.top)
        x = chart.left + i * slot + (slot - width) / 2
        chart.bars.append(Bar(round(x, 2), round(chart.bottom - h, 2), round(width, 2),
                              round(h, 2), label, value))  # fmt: skip
    chart.y_ticks = [
        Tick(chart.bottom - v / top * (chart.bottom - chart.top), _human(v))
        for v in _ticks(0, top)
        if v <= top
    ]
    return chart


def _human(n: float) -> str:
    from ..progress import human_bytes

    return human_bytes(int(n))
