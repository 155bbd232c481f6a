"""Read-side aggregates for the Overview and Analytics pages.

PostgreSQL does the arithmetic: each function here is one query over one workspace's sessions
(``GROUP BY`` / ``FILTER``), so a page costs the same number of queries for ten sessions or ten
million, and no session row is loaded into Python. Only the small results (one row, a day per
row, a capped table) are shaped here.

Tokens and cost are the session totals the plugins report. ``cost`` is NULL when a plugin never
reported one: sums skip those rows, and every result says how many sessions had no cost, so the
pages can say "$1.20 (3 sessions without a cost)" instead of pretending they cost $0.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import (
    Avg,
    Case,
    CharField,
    Count,
    F,
    Max,
    Q,
    QuerySet,
    Sum,
    TextField,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Lower, NullIf, Replace, TruncDate
from django.db.models.lookups import EndsWith, IContains, IRegex
from django.utils import timezone

from .models import Session, Source

SUMMED_FIELDS = (
    "message_count",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "duration_ms",
)

# Provider inference, as upstream does it (analytics.ts `inferProvider`): a reported provider is
# normalised, else the model name decides. Checked in order; the first match wins.
PROVIDER_ALIASES = (("anthropic", "anthropic"), ("antigravity", "google"), ("openai", "openai"))
MODEL_PROVIDERS = (
    ("claude|anthropic", "anthropic"),
    ("gpt|o1|o3|davinci|curie|text-embedding|codex", "openai"),
    ("gemini|palm|bard", "google"),
    ("mistral|mixtral", "mistral"),
    ("command|cohere", "cohere"),
    ("llama|meta", "meta"),
    ("deepseek", "deepseek"),
    ("groq", "groq"),
)


@dataclass(frozen=True)
class Table:
    """The first rows of a breakdown, and whether more rows were cut off."""

    rows: list[dict]
    truncated: bool


def window_start(days: int, *, now: datetime | None = None) -> datetime:
    """Midnight (current time zone) that starts the last `days` calendar days, today included.

    The 30-day totals and the 30 bars of the chart use the same window, so the bars add up to
    the totals.
    """
    first_day = timezone.localdate(now) - timedelta(days=days - 1)
    return timezone.make_aware(datetime.combine(first_day, time.min))


def sessions_in(workspace, *, since: datetime | None = None, source: str | None = None) -> QuerySet[Session]:
    """The workspace's sessions created since `since`, of one source; unordered, for GROUP BY."""
    sessions = Session.objects.in_workspace(workspace).order_by()
    if since is not None:
        sessions = sessions.filter(created_at__gte=since)
    if source:
        sessions = sessions.filter(source=source)
    return sessions


# Aggregates are computed under this alias prefix: Django refuses an aggregate named like a model
# field ("cost") when another aggregate's FILTER refers to that field, and annotate() refuses
# such names outright. The prefix is removed from the results.
ALIAS = "agg_"


def _aggregate(queryset: QuerySet, aggregates: dict) -> dict:
    return _unprefixed(queryset.aggregate(**{ALIAS + name: aggregate for name, aggregate in aggregates.items()}))


def _group(queryset: QuerySet, key, aggregates: dict, order_by: tuple[str, ...]) -> QuerySet:
    """`aggregates` per distinct `key` (rows are dicts with "key" and the aggregates' names)."""
    ordering = [f"-{ALIAS}{name[1:]}" if name.startswith("-") else ALIAS + name for name in order_by]
    return (
        queryset.annotate(key=key)
        .values("key")
        .annotate(**{ALIAS + name: aggregate for name, aggregate in aggregates.items()})
        # the key last, so equal rows come back in a stable order
        .order_by(*ordering, F("key").asc(nulls_last=True))
    )


def _unprefixed(row: dict) -> dict:
    return {name.removeprefix(ALIAS): value for name, value in row.items()}


def _totals(condition: Q | None = None, prefix: str = "") -> dict:
    """Aggregates over the sessions matching `condition` (an SQL FILTER clause; None = all)."""
    unknown_cost = Q(cost__isnull=True) if condition is None else Q(cost__isnull=True) & condition
    known_cost = Q(cost__isnull=False) if condition is None else Q(cost__isnull=False) & condition
    aggregates = {
        "sessions": Count("id", filter=condition),
        **{field: Coalesce(Sum(field, filter=condition), 0) for field in SUMMED_FIELDS},
        # NULL when no session reported a cost: the page shows "—", not $0.
        "cost": Sum("cost", filter=condition),
        "unknown_cost_sessions": Count("id", filter=unknown_cost),
        # for "cost per 1K tokens": only the tokens of sessions whose cost is known
        "known_cost_tokens": Coalesce(Sum("total_tokens", filter=known_cost), 0),
        "sessions_with_duration": Count("duration_ms", filter=condition),
    }
    return {prefix + name: aggregate for name, aggregate in aggregates.items()}


def overview_totals(workspace, *, since: datetime) -> dict[str, dict]:
    """All-time totals and the totals since `since`, in one query: ``{"all": {...}, "recent": {...}}``."""
    row = _aggregate(sessions_in(workspace), _totals() | _totals(Q(created_at__gte=since), prefix="recent_"))
    all_time = {name: value for name, value in row.items() if not name.startswith("recent_")}
    recent = {name.removeprefix("recent_"): value for name, value in row.items() if name.startswith("recent_")}
    return {"all": all_time, "recent": recent}


def summary(workspace, *, since: datetime | None = None, source: str | None = None) -> dict:
    """Totals of a window plus the figures derived from them (averages and ratios)."""
    row = _aggregate(
        sessions_in(workspace, since=since, source=source),
        _totals()
        | {
            "models": Count("model", distinct=True, filter=~Q(model="")),
            "projects": Count(project_key(), distinct=True),
        },
    )
    return row | derived(row)


def derived(totals: dict) -> dict:
    """Averages and ratios of a totals row; None wherever the divisor is zero (shown as "—")."""
    sessions = totals["sessions"]
    cost = totals["cost"]
    with_cost = sessions - totals["unknown_cost_sessions"]
    return {
        "avg_tokens_per_session": _ratio(totals["total_tokens"], sessions),
        "avg_prompt_per_session": _ratio(totals["prompt_tokens"], sessions),
        "avg_completion_per_session": _ratio(totals["completion_tokens"], sessions),
        "avg_messages_per_session": _ratio(totals["message_count"], sessions),
        "avg_duration_ms": _ratio(totals["duration_ms"], totals["sessions_with_duration"]),
        "tokens_per_message": _ratio(totals["total_tokens"], totals["message_count"]),
        "prompt_completion_ratio": _ratio(totals["prompt_tokens"], totals["completion_tokens"]),
        # Costs are averaged over the sessions that reported one: a missing cost is not $0.
        "cost_per_session": cost / with_cost if cost is not None and with_cost else None,
        "cost_per_1k_tokens": (
            cost * 1000 / totals["known_cost_tokens"] if cost is not None and totals["known_cost_tokens"] else None
        ),
        "sessions_with_cost": with_cost,
    }


def _ratio(numerator, denominator) -> float | None:
    return numerator / denominator if denominator else None


def daily_tokens(workspace, *, days: int = 30, now: datetime | None = None) -> list[dict]:
    """One row per calendar day of the last `days` days (oldest first), zero-filled.

    Sessions count on the day they were created, like upstream's dailyStats (which skipped empty
    days; here every day is present so the chart has no gaps).
    """
    since = window_start(days, now=now)
    rows = _group(
        sessions_in(workspace, since=since),
        TruncDate("created_at"),
        {
            "sessions": Count("id"),
            "prompt_tokens": Sum("prompt_tokens"),
            "completion_tokens": Sum("completion_tokens"),
            "cost": Sum("cost"),
        },
        order_by=(),
    )
    by_day = {row["key"]: _unprefixed(row) for row in rows}
    first_day: date = timezone.localdate(since)
    result = []
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        row = by_day.get(day, {})
        prompt, completion = row.get("prompt_tokens") or 0, row.get("completion_tokens") or 0
        result.append(
            {
                "date": day,
                "sessions": row.get("sessions", 0),
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "cost": row.get("cost"),
            }
        )
    return result


# --- breakdowns --------------------------------------------------------------------------------


def project_key():
    """A session's project: its name, else its path; NULL when it has neither."""
    return Coalesce(NullIf("project_name", Value("")), NullIf("project_path", Value("")), output_field=TextField())


def model_key():
    return NullIf("model", Value(""))


def provider_key():
    """The provider a session belongs to, inferred in SQL like upstream's ``inferProvider``."""
    provider = Lower("provider")
    model = Coalesce("model", Value(""))
    whens = [When(IContains(F("provider"), needle), then=Value(name)) for needle, name in PROVIDER_ALIASES]
    whens.append(When(EndsWith(provider, "-oauth"), then=Replace(provider, Value("-oauth"), Value(""))))
    whens.append(When(Q(provider__isnull=False) & ~Q(provider=""), then=F("provider")))
    whens += [When(IRegex(model, pattern), then=Value(name)) for pattern, name in MODEL_PROVIDERS]
    return Case(*whens, default=Value("unknown"), output_field=CharField())


def usage_by(
    workspace,
    key,
    *,
    since: datetime | None = None,
    source: str | None = None,
    order_by: tuple[str, ...] = ("-total_tokens",),
    limit: int = 50,
    **extra,
) -> Table:
    """Sessions grouped by `key` (an expression), biggest first; at most `limit` rows.

    Each row: key, sessions, prompt/completion/total tokens, duration, cost (None if no session of
    the group reported one), unknown_cost_sessions, avg_duration_ms (over sessions that reported a
    duration), last_active, share (percent of the first row's tokens, for the bars), link (the
    value to filter the session list by, None when the list can't filter by it) and any `extra`
    aggregates.
    """
    aggregates = {
        "sessions": Count("id"),
        "message_count": Sum("message_count"),
        "prompt_tokens": Sum("prompt_tokens"),
        "completion_tokens": Sum("completion_tokens"),
        "total_tokens": Sum("total_tokens"),
        "duration_ms": Sum("duration_ms"),
        "avg_duration_ms": Avg("duration_ms"),
        "cost": Sum("cost"),
        "unknown_cost_sessions": Count("id", filter=Q(cost__isnull=True)),
        "last_active": Max("updated_at"),
        **extra,
    }
    queryset = _group(sessions_in(workspace, since=since, source=source), key, aggregates, order_by)
    rows = [_unprefixed(row) for row in queryset[: limit + 1]]
    biggest = max((row["total_tokens"] for row in rows[:limit]), default=0)
    for row in rows:
        row["share"] = round(100 * row["total_tokens"] / biggest) if biggest else 0
        row["link"] = row["key"]
    return Table(rows=rows[:limit], truncated=len(rows) > limit)


def usage_by_project(workspace, **kwargs) -> Table:
    """Usage by project (name, else path, as upstream groups them).

    The session list filters on the name only, so only groups of named sessions link to it.
    """
    table = usage_by(workspace, project_key(), named=Count("id", filter=Q(project_name=F("key"))), **kwargs)
    for row in table.rows:
        if not row.pop("named"):
            row["link"] = None
    return table


def usage_by_provider(workspace, **kwargs) -> Table:
    """Usage by inferred provider; not linked, as the session list filters on the stored value."""
    table = usage_by(workspace, provider_key(), **kwargs)
    for row in table.rows:
        row["link"] = None
    return table


def usage_by_source(workspace, **kwargs) -> Table:
    """Usage by agent (the plugin that synced the session), most sessions first, with its label."""
    table = usage_by(workspace, F("source"), order_by=("-sessions",), **kwargs)
    labels = dict(Source.choices)
    for row in table.rows:
        row["label"] = labels.get(row["key"], row["key"])
    return table


def recent_sessions(workspace, *, limit: int = 8) -> list[Session]:
    """The sessions with the latest activity."""
    return list(
        Session.objects.in_workspace(workspace)
        .only("title", "external_id", "project_name", "source", "total_tokens", "cost", "updated_at")
        .order_by("-updated_at", "-id")[:limit]
    )
