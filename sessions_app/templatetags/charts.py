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
    slot = 100 / count

    def height(value: int) -> float:
        # a non-zero day stays visible as at least a 1px sliver
        return max(value / top * plot_height, 1) if value else 0

    bars = []
    for index, day in enumerate(days):
        prompt_h, completion_h = height(day["prompt_tokens"]), height(day["completion_tokens"])
        centre = (index + 0.5) * slot
        label = None
        if (count - 1 - index) % LABEL_EVERY == 0:
            # keep the first and last labels inside the drawing
            anchor, label_x = "middle", centre
            if centre < 8:
                anchor, label_x = "start", index * slot
            elif centre > 92:
                anchor, label_x = "end", (index + 1) * slot
            label = {"x": f"{label_x:.3f}", "anchor": anchor}
        bars.append(
            {
                "day": day,
                "slot_x": f"{index * slot:.3f}",
                "slot_width": f"{slot:.3f}",
                "x": f"{index * slot + slot * (1 - BAR_FILL) / 2:.3f}",
                "width": f"{slot * BAR_FILL:.3f}",
                "prompt_y": f"{PLOT_BOTTOM - prompt_h:.2f}",
                "prompt_height": f"{prompt_h:.2f}" if prompt_h else None,
                "completion_y": f"{PLOT_BOTTOM - prompt_h - completion_h:.2f}",
                "completion_height": f"{completion_h:.2f}" if completion_h else None,
                "label": label,
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
