"""Server-rendered charts for the Overview page: {% load charts %}.

The chart is an inline SVG of our own: no JavaScript, and colours come from the theme's CSS
variables, so it follows light and dark mode. Horizontal positions are percentages, which keeps
the text undistorted at any width (a scaled viewBox would shrink the labels on a phone).
"""

import math

from django import template

register = template.Library()

CHART_HEIGHT = 200
PLOT_TOP = 16
PLOT_BOTTOM = 172
LABEL_Y = 190
LABEL_EVERY = 7  # days between x-axis labels; the last day (today) always has one
BAR_FILL = 0.7  # share of a day's slot the bar covers


def nice_scale(maximum: int, ticks: int = 4) -> tuple[int, int]:
    """(top, step): a round step (1, 2 or 5 × 10ⁿ) and the smallest multiple of it ≥ maximum."""
    if maximum <= 0:
        return ticks, 1
    raw = maximum / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if raw <= m * magnitude)
    step = max(int(step), 1)
    return step * math.ceil(maximum / step), step


def stacked_bars(days: list[dict]) -> dict:
    """Geometry of a stacked bar chart (prompt below completion) for rows of `daily_tokens`."""
    count = len(days) or 1
    top, step = nice_scale(max((day["total_tokens"] for day in days), default=0))
    plot_height = PLOT_BOTTOM - PLOT_TOP

    def height(value: int) -> float:
        # a non-zero day stays visible as at least a 1px sliver
        return max(value / top * plot_height, 1) if value else 0

    bars = []
    for index, day in enumerate(days):
        prompt_h, completion_h = height(day["prompt_tokens"]), height(day["completion_tokens"])
        bars.append(
            {
                "day": day,
                **_slot(index, count, LABEL_EVERY),
                "prompt_y": f"{PLOT_BOTTOM - prompt_h:.2f}",
                "prompt_height": f"{prompt_h:.2f}" if prompt_h else None,
                "completion_y": f"{PLOT_BOTTOM - prompt_h - completion_h:.2f}",
                "completion_height": f"{completion_h:.2f}" if completion_h else None,
            }
        )
    grid = [
        {"y": f"{PLOT_BOTTOM - value / top * plot_height:.2f}", "label": axis_label(value)}
        for value in range(step, top + 1, step)
    ]
    peak = max(days, key=lambda day: day["total_tokens"], default=None)
    return {
        "bars": bars,
        "grid": grid,
        "peak": peak if peak and peak["total_tokens"] else None,
        "height": CHART_HEIGHT,
        "baseline": PLOT_BOTTOM,
        "label_y": LABEL_Y,
        "plot_top": PLOT_TOP,
        "plot_height": plot_height,
    }


def _slot(index: int, count: int, label_every: int) -> dict:
    """Where bar `index` of `count` stands (percent of the width), and its x-axis label when it
    has one: every `label_every`-th bar counted from the last (today), kept inside the drawing."""
    slot = 100 / count
    label = None
    if (count - 1 - index) % label_every == 0:
        centre = (index + 0.5) * slot
        anchor, label_x = "middle", centre
        if centre < 8:
            anchor, label_x = "start", index * slot
        elif centre > 92:
            anchor, label_x = "end", (index + 1) * slot
        label = {"x": f"{label_x:.3f}", "anchor": anchor}
    return {
        "slot_x": f"{index * slot:.3f}",
        "slot_width": f"{slot:.3f}",
        "x": f"{index * slot + slot * (1 - BAR_FILL) / 2:.3f}",
        "width": f"{slot * BAR_FILL:.3f}",
        "label": label,
    }


@register.inclusion_tag("sessions_app/overview_chart.html")
def tokens_chart(days: list[dict], chart_id: str = "tokens-chart") -> dict:
    """``{% tokens_chart daily %}``: the tokens-per-day bar chart with its data table."""
    return {"chart": stacked_bars(days), "days": days, "chart_id": chart_id}


def axis_label(value: int) -> str:
    """Gridline labels: 1200 → "1.2k", 5000000 → "5M"."""
    for limit, suffix in ((10**9, "B"), (10**6, "M"), (10**3, "k")):
        if value >= limit:
            return f"{value / limit:.1f}".removesuffix(".0") + suffix
    return str(value)


SERIES_PLOT_BOTTOM = 172
SERIES_LABELS = 6  # x-axis labels at most (phones show every other one)


def nice_scale_any(maximum: float, ticks: int = 4) -> tuple[float, float]:
    """nice_scale for any positive number (costs are dollars and cents)."""
    if maximum <= 0:
        return ticks, 1
    raw = maximum / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if raw <= m * magnitude)
    return step * math.ceil(maximum / step - 1e-9), step


def money_label(value: float) -> str:
    if value >= 1000:
        return "$" + axis_label(int(value))
    if value >= 1 or value == 0:
        return f"${value:,.0f}" if value == int(value) else f"${value:,.2f}"
    return f"${value:.2f}" if value >= 0.01 else f"${value:.4f}"


def stacked_series(timeseries: dict) -> dict:
    """Geometry of a stacked bar chart with one bar per period and one colour per series
    (analytics.timeseries), horizontal positions in percent like `stacked_bars`."""
    periods, series = timeseries["periods"], timeseries["series"]
    count = len(periods) or 1
    totals = [float(t) for t in timeseries["totals"]] or [0]
    top, step = nice_scale_any(max(totals, default=0))
    plot_height = SERIES_PLOT_BOTTOM - PLOT_TOP
    every = max(1, math.ceil(count / SERIES_LABELS))
    money = timeseries["metric"] == "cost"
    bars = []
    for index, period in enumerate(periods):
        y = SERIES_PLOT_BOTTOM
        segments = []
        for number, item in enumerate(series):
            value = float(item["values"][index])
            if not value:
                continue
            height = max(value / top * plot_height, 1)
            y -= height
            segments.append(
                {
                    "series": number,
                    "label": item["label"],
                    "value": item["values"][index],
                    "y": f"{y:.2f}",
                    "height": f"{height:.2f}",
                }  # fmt: skip
            )
        bars.append(
            {"period": period, "total": timeseries["totals"][index], "segments": segments, **_slot(index, count, every)}
        )
    grid = []
    value = step
    while value <= top + 1e-9:
        grid.append(
            {
                "y": f"{SERIES_PLOT_BOTTOM - value / top * plot_height:.2f}",
                "label": money_label(value) if money else axis_label(int(value)),
            }
        )
        value += step
    return {
        "bars": bars,
        "grid": grid,
        "height": CHART_HEIGHT,
        "baseline": SERIES_PLOT_BOTTOM,
        "label_y": LABEL_Y,
        "plot_top": PLOT_TOP,
        "plot_height": plot_height,
    }


@register.inclusion_tag("sessions_app/series_chart.html")
def series_chart(timeseries: dict, title: str, chart_id: str = "series-chart") -> dict:
    """``{% series_chart timeseries "Tokens per day by model" %}``: stacked bars per period with
    a legend and the numbers in a table."""
    return {"chart": stacked_series(timeseries), "ts": timeseries, "title": title, "chart_id": chart_id}
