"""Display filters for session figures: {% load session_format %}."""

from datetime import timedelta
from decimal import Decimal

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

register = template.Library()


@register.filter
def tokens(value) -> str:
    """12345 → "12.3k"; 2500000 → "2.5M"."""
    if value in (None, ""):
        return "—"
    value = int(value)
    for limit, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.1f}".rstrip("0").rstrip(".") + suffix
    return str(value)


@register.filter
def cost(value) -> str:
    """Dollars with 4 decimals below $1 and 2 above; "—" when never reported (not $0)."""
    if value is None or value == "":
        return "—"
    value = Decimal(value)
    return f"${value:,.2f}" if value >= 1 else f"${value:.4f}"


@register.filter
def duration(ms) -> str:
    """Milliseconds → "850ms", "42s", "3m 5s", "2h 14m"."""
    if ms in (None, ""):
        return "—"
    ms = int(ms)
    if ms < 1000:
        return f"{ms}ms"
    seconds = ms // 1000
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m"


@register.filter
def ago(value) -> str:
    """A past moment as "just now", "5 minutes ago", "2 days, 3 hours ago"."""
    if not value:
        return "—"
    if timezone.now() - value < timedelta(minutes=1):
        return "just now"
    return f"{timesince(value, depth=1)} ago"


SHORT = {
    "opencode": "OC",
    "claude-code": "CC",
    "codex-cli": "CX",
    "cursor-sync": "CR",
    "factory-droid": "FD",
    "pi": "PI",
}


@register.inclusion_tag("sessions_app/_source_badge.html")
def source_badge(session):
    return {"source": session.source, "label": session.source_label, "short": SHORT.get(session.source, "?")}


@register.filter
def index(sequence, position):
    """``values|index:3``: an item of a list by position (None when out of range)."""
    try:
        return sequence[int(position)]
    except (IndexError, TypeError, ValueError):
        return None


@register.filter
def percent(value, places: int = 0) -> str:
    """0.873 → "87%" (a fraction); "—" when unknown."""
    if value in (None, ""):
        return "—"
    return f"{float(value) * 100:.{int(places)}f}%"


COST_SOURCE_HINTS = {
    "reported": "The plugin's reported cost: the server could not compute one.",
    "unpriced": "Unknown: the model has no price.",
    "none": "Unknown: no tokens or cost were reported.",
    "pending": "Not priced by the server yet: the plugin's reported cost.",
}


@register.inclusion_tag("sessions_app/_cost.html")
def session_cost(session):
    """A session's shown cost, marked when it isn't the server's computed figure."""
    source = getattr(session, "cost_source", "computed")
    note = getattr(session, "cost_note", "")
    hint = COST_SOURCE_HINTS.get(source, "")
    return {
        "value": session.cost,
        "source": source,
        "title": " ".join(filter(None, [hint, note])) or "Computed by the server from the tokens.",
    }


@register.filter
def get(mapping, key):
    """``mapping|get:key``: a dict value by a variable key (None when missing)."""
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.filter
def pair(a, b):
    """``x|pair:y``: the two values of a comparison row, to loop over (each as `.v`)."""
    return [{"v": a}, {"v": b}]
