"""Geometry of the dashboard's charts, rendered as inline SVG by the templates (no chart script).

Server-side SVG keeps the page small, works without JavaScript, scales with its ``viewBox`` from a
phone to a wall screen, and every label stays text that the template escapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 10, 12, 26


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: int | None
    series: int
    title: str


@dataclass(frozen=True)
class Tick:
    x: float
    y: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: tuple[Bar, ...] = ()
    line: str = ""
    points: tuple[tuple[float, float, str], ...] = ()
    x_ticks: tuple[Tick, ...] = ()
    y_ticks: tuple[Tick, ...] = ()
    baseline: float = HEIGHT - BOTTOM
    empty: bool = False


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000):
        if value <= step * 4:
            return float(step * 4)
    return float(value * 1.1)


def _x_ticks(labels: Sequence[str], xs: Sequence[float]) -> tuple[Tick, ...]:
    every = max(1, -(-len(labels) // 7))  # at most 7 labels
    return tuple(
        Tick(x, HEIGHT - 8, _short(label))
        for i, (x, label) in enumerate(zip(xs, labels, strict=True))
        if i % every == 0
    )


def _short(label: str) -> str:
    """``2026-03-02`` -> ``Mar 2``; other labels as they are."""
    try:
        day = date.fromisoformat(label)
    except ValueError:
        return label
    return f"{day:%b} {day.day}"


def grouped_bars(
    labels: Sequence[str], series: Sequence[Sequence[int | None]], names: Sequence[str]
) -> Chart:
    """Bars per label, one per series (None: suppressed, no bar)."""
    if not labels:
        return Chart(WIDTH, HEIGHT, empty=True)
    top = _nice_max(max((v or 0) for s in series for v in s))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / len(labels)
    bar_w = max(1.0, slot * 0.8 / len(series))
    bars, centres = [], []
    for i, label in enumerate(labels):
        x0 = LEFT + i * slot + slot * 0.1
        centres.append(LEFT + i * slot + slot / 2)
        for j, values in enumerate(series):
            value = values[i]
            h = 0.0 if value is None else plot_h * value / top
            shown = "fewer than 5" if value is None else str(value)
            bars.append(
                Bar(x0 + j * bar_w, TOP + plot_h - h, bar_w, h, value, j, f"{label}: {names[j]} {shown}")
            )
    y_ticks = tuple(Tick(LEFT - 6, TOP + plot_h * (1 - k / 4), f"{top * k / 4:,.0f}") for k in range(5))
    return Chart(WIDTH, HEIGHT, bars=tuple(bars), x_ticks=_x_ticks(labels, centres), y_ticks=y_ticks)


def share_line(labels: Sequence[str], shares: Sequence[float | None]) -> Chart:
    """A line of shares from 0 to 100 %, broken where a share is suppressed."""
    if not labels:
        return Chart(WIDTH, HEIGHT, empty=True)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(1, len(labels) - 1)
    xs = [LEFT + i * step if len(labels) > 1 else LEFT + plot_w / 2 for i in range(len(labels))]
    path, points, pen_down = [], [], False
    for x, label, share in zip(xs, labels, shares, strict=True):
        if share is None:
            pen_down = False
            continue
        y = TOP + plot_h * (1 - share)
        path.append(f"{'L' if pen_down else 'M'}{x:.1f},{y:.1f}")
        points.append((round(x, 1), round(y, 1), f"{label}: {share:.0%} without counsel"))
        pen_down = True
    y_ticks = tuple(Tick(LEFT - 6, TOP + plot_h * (1 - k / 4), f"{k * 25}%") for k in range(5))
    return Chart(
        WIDTH,
        HEIGHT,
        line=" ".join(path),
        points=tuple(points),
        x_ticks=_x_ticks(labels, xs),
        y_ticks=y_ticks,
    )
