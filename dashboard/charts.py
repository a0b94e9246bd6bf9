"""Inline SVG charts for the dashboard (no chart library, nothing from a CDN): bar geometry from a series."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH = 360
HEIGHT = 90
AXIS = 14  # room under the bars for the first and last labels


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True)
class BarChart:
    title: str
    unit: str
    bars: list[Bar]
    peak: float
    total: float
    first_label: str
    last_label: str
    width: int = WIDTH
    height: int = HEIGHT
    tone: str = ""

    @property
    def baseline(self) -> int:
        return self.height - AXIS

    @property
    def summary(self) -> str:
        if self.unit == "ms":
            return f"{self.title}: peak {self.peak:,.0f} ms"
        return f"{self.title}: {self.total:,.0f} in total, peak {self.peak:,.0f}"


def bar_chart(
    title: str, points: list[tuple[str, float | None]], *, unit: str = "", tone: str = ""
) -> BarChart:
    """One bar per (label, value); None is "no data" (no bar). Heights share the series' own peak."""
    values = [v for _, v in points if v is not None]
    peak = max(values, default=0)
    plot = HEIGHT - AXIS - 2
    step = WIDTH / max(len(points), 1)
    bars = []
    for i, (label, value) in enumerate(points):
        if not value:
            continue
        h = max(1.0, plot * value / peak) if peak else 0
        shown = f"{value:,.0f}{' ' + unit if unit else ''}"
        bars.append(
            Bar(
                round(i * step, 1),
                round(HEIGHT - AXIS - h, 1),
                round(max(step - 1, 1), 1),
                round(h, 1),
                f"{label}: {shown}",
            )
        )
    return BarChart(
        title=title,
        unit=unit,
        bars=bars,
        peak=peak,
        total=sum(values),
        first_label=points[0][0] if points else "",
        last_label=points[-1][0] if points else "",
        tone=tone,
    )
