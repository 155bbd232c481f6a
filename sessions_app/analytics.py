"""Reads behind Analytics, the Overview and /api/analytics: everything from the daily rollups.

`UsageRollup` holds a workspace's sums per day (in the workspace's time zone), model, agent,
owner and project, kept exact by every write of a session (`rollups`). So a figure over any range
is one GROUP BY over a few rows per day, whatever the number of sessions; only the review outcome
reads sessions, and only the reviewed ones (a partial index).

Costs are the shown costs: the server's computed cost, else the plugin's reported one. Every
result also says how many sessions fell back to the reported cost and how many have no known
cost at all, so the pages can say "$1.20 (3 sessions use the plugin's cost, 2 unknown)" instead
of pretending anything cost $0. Durations' median and p90 are read off the rollups' duration
buckets (about ±6%).
"""

import calendar
import csv
import io
import math
import re
import zoneinfo
from collections import Counter
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.contrib.postgres.fields import ArrayField
from django.db.models import Aggregate, BigIntegerField, Count, F, Min, Q, QuerySet, Sum
from django.db.models.functions import TruncMonth, TruncWeek
from django.utils import timezone

from accounts.models import User
from opensync.inputs import whole_number

from .models import (
    DURATION_BUCKETS,
    DURATION_RATIO,
    DimensionRollup,
    RollupPeriod,
    Session,
    Source,
    UsageRollup,
)
from .pricing import book_model

SOURCE_LABELS = dict(Source.choices)

# --- the question: a date range and filters ---------------------------------------------------------

PRESETS = {
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "90d": "Last 90 days",
    "mtd": "This month",
    "last-month": "Last month",
    "ytd": "This year",
    "12m": "Last 12 months",
    "all": "All time",
    "custom": "Custom range",
}
DEFAULT_PRESET = "30d"
DIMENSIONS = {"model": "Model", "owner": "Person", "project": "Project", "source": "Agent", "provider": "Provider"}
INTERVALS = ("day", "week", "month")
METRICS = {"tokens": "Tokens", "cost": "Cost"}
MAX_CUSTOM_DAYS = 3660
MAX_PERIODS = 1000  # points of a chart or series; longer ranges go per week or month
EARLIEST_DAY = date(2000, 1, 1)  # no session starts earlier (wire.MIN_EPOCH_MS)


class QueryError(ValueError):
    """A parameter that can't be used; `field` names it."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Query:
    """What to aggregate: a workspace's sessions started between `start` and `end` (inclusive
    days in the workspace's time zone; `start` None = since the first session), optionally of
    one agent, model, owner or project."""

    preset: str
    start: date | None
    end: date
    tz: str = "UTC"
    source: str = ""
    model: str | None = None  # "" = sessions with no model
    owner: int | None = None
    project: str | None = None  # "" = sessions with no project

    @property
    def label(self) -> str:
        return PRESETS[self.preset]

    @property
    def days(self) -> int | None:
        return None if self.start is None else (self.end - self.start).days + 1

    @property
    def filtered(self) -> bool:
        return bool(self.source) or any(v is not None for v in (self.model, self.owner, self.project))

    def bounds(self) -> tuple[datetime | None, datetime]:
        """[start, end) as moments, for queries on sessions' created_at."""
        tz = zoneinfo.ZoneInfo(self.tz)
        start = datetime.combine(self.start, time.min, tz) if self.start else None
        return start, datetime.combine(self.end + timedelta(days=1), time.min, tz)

    def params(self, **changes) -> dict[str, str]:
        """The URL parameters that ask this question again (with `changes`)."""
        query = replace(self, **changes) if changes else self
        params = {"range": query.preset}
        if query.preset == "custom":
            params |= {"from": query.start.isoformat() if query.start else "", "to": query.end.isoformat()}
        for name in ("source", "model", "owner", "project"):
            value = getattr(query, name)
            if value not in (None, ""):
                params[name] = str(value)
            elif value == "" and name != "source":
                params[name] = ""  # the "none" group
        return params


def today_in(tz: str) -> date:
    return timezone.now().astimezone(zoneinfo.ZoneInfo(tz)).date()


def preset_range(preset: str, today: date) -> tuple[date | None, date]:
    if preset == "7d":
        return today - timedelta(days=6), today
    if preset == "30d":
        return today - timedelta(days=29), today
    if preset == "90d":
        return today - timedelta(days=89), today
    if preset == "mtd":
        return today.replace(day=1), today
    if preset == "last-month":
        end = today.replace(day=1) - timedelta(days=1)
        return end.replace(day=1), end
    if preset == "ytd":
        return today.replace(month=1, day=1), today
    if preset == "12m":
        return today - timedelta(days=364), today
    return None, today  # all


def _date(params, name: str) -> date | None:
    value = (params.get(name) or "").strip()
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise QueryError(name, f"{name} must be a date like 2026-01-31") from None
    if not EARLIEST_DAY <= day <= date.today() + timedelta(days=366):
        raise QueryError(name, f"{name} must be between {EARLIEST_DAY.isoformat()} and a year from today")
    return day


_INVISIBLE = re.compile(r"[\x00-\x1f\x7f]")


def _text(params, name: str, *, max_length: int = 255) -> str | None:
    """None when absent; "" asks for the sessions without a value."""
    if name not in params:
        return None
    value = params.get(name)
    if value is None:
        return None
    value = value.strip()
    if len(value) > max_length or _INVISIBLE.search(value):
        raise QueryError(name, f"{name} must be at most {max_length} printable characters")
    return value


def parse_query(params, workspace) -> Query:
    """A Query from URL parameters: `range` (a preset, or custom with `from` and `to`),
    `source`, `model`, `owner` (a user id), `project`. Raises QueryError naming the parameter."""
    tz = workspace.timezone or "UTC"
    today = today_in(tz)
    first, last = _date(params, "from"), _date(params, "to")
    preset = (params.get("range") or "").strip() or ("custom" if first or last else DEFAULT_PRESET)
    if preset not in PRESETS:
        raise QueryError("range", f"range must be one of {', '.join(PRESETS)}")
    if preset == "custom":
        start, end = first, last or today
        if start is not None and start > end:
            raise QueryError("from", "from must not be after to")
        if start is not None and (end - start).days > MAX_CUSTOM_DAYS:
            raise QueryError("from", f"a custom range can span at most {MAX_CUSTOM_DAYS} days")
    else:
        start, end = preset_range(preset, today)
    source = _text(params, "source", max_length=64) or ""
    owner = params.get("owner")
    if owner not in (None, ""):
        owner = whole_number(str(owner))
        if owner is None:
            raise QueryError("owner", "owner must be a user id")
    else:
        owner = None
    return Query(
        preset=preset,
        start=start,
        end=end,
        tz=tz,
        source=source,
        model=_text(params, "model"),
        owner=owner,
        project=_text(params, "project"),
    )


def fine_grained(query: Query) -> bool:
    """Whether the question needs the finest rollups (a model, owner or project filter); else the
    dimension rollups answer it, whose size doesn't grow with the number of sessions."""
    return query.model is not None or query.owner is not None or query.project is not None


def _month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def covering(query: Query) -> Q:
    """The DimensionRollup rows that add up to the range's days: its whole months as month rows,
    the days at its edges as day rows (each part a plain index range)."""
    return _any(covering_ranges(query))


def _whole_months(query: Query) -> tuple[date | None, date]:
    """The first and last whole month inside the range (first None: from the beginning); the
    first is after the last when the range holds no whole month."""
    start, end = query.start, query.end
    first_month = None if start is None else start if start.day == 1 else _month_end(start) + timedelta(days=1)
    last_month = (
        end.replace(day=1) if end == _month_end(end) else (end.replace(day=1) - timedelta(days=1)).replace(day=1)
    )
    return first_month, last_month


def _any(parts: list[Q]) -> Q:
    combined = parts[0]
    for part in parts[1:]:
        combined |= part
    return combined


def covering_ranges(query: Query) -> list[Q]:
    """`covering` as its index ranges (one to three)."""
    start, end = query.start, query.end
    first_month, last_month = _whole_months(query)
    if first_month is not None and last_month < first_month:
        return [_period_range(RollupPeriod.DAY, start, end)]  # no whole month inside the range
    parts = [_period_range(RollupPeriod.MONTH, first_month, last_month)]
    if first_month is not None and start < first_month:
        parts.append(_period_range(RollupPeriod.DAY, start, first_month - timedelta(days=1)))
    if _month_end(last_month) < end:
        parts.append(_period_range(RollupPeriod.DAY, _month_end(last_month) + timedelta(days=1), end))
    return parts


def covering_parts(query: Query) -> tuple[Q, Q | None]:
    """Like `covering`, as rows to add and rows to take away: an edge month that the range covers
    more than half of is its month row minus the day rows outside the range. A year from today
    then reads at most ~15 day rows per key at each edge instead of ~30 (the sums, and above all the
    64 duration buckets per row, cost by the row). Only for sums: not for counting distinct keys."""
    start, end = query.start, query.end
    first_month, last_month = _whole_months(query)
    if first_month is not None and last_month < first_month:
        return covering(query), None
    add = _period_range(RollupPeriod.MONTH, first_month, last_month)
    subtract = []
    if first_month is not None and start < first_month:
        month = start.replace(day=1)
        if start.day - 1 < (first_month - start).days:  # fewer days before the range than in it
            add |= Q(period=RollupPeriod.MONTH, start=month)
            subtract.append(_period_range(RollupPeriod.DAY, month, start - timedelta(days=1)))
        else:
            add |= _period_range(RollupPeriod.DAY, start, first_month - timedelta(days=1))
    if _month_end(last_month) < end:
        month, month_end = end.replace(day=1), _month_end(end)
        if (month_end - end).days < end.day:  # fewer days after the range than in it
            add |= Q(period=RollupPeriod.MONTH, start=month)
            subtract.append(_period_range(RollupPeriod.DAY, end + timedelta(days=1), month_end))
        else:
            add |= _period_range(RollupPeriod.DAY, month, end)
    return add, (_any(subtract) if subtract else None)


def _period_range(period: str, first: date | None, last: date) -> Q:
    condition = Q(period=period, start__lte=last)
    return condition & Q(start__gte=first) if first is not None else condition


def dimension_rows(
    workspace, query: Query, dimension: str, *, daily: bool = False, where: Q | None = None
) -> QuerySet[DimensionRollup]:
    """Rows of one dimension covering the range (`daily`: day rows only, for series per day;
    `where`: these periods instead, e.g. a part of `covering_parts`)."""
    rows = DimensionRollup.objects.filter(workspace=workspace, dimension=dimension).order_by()
    if where is not None:
        rows = rows.filter(where)
    elif daily:
        rows = rows.filter(period=RollupPeriod.DAY, start__lte=query.end)
        if query.start is not None:
            rows = rows.filter(start__gte=query.start)
    else:
        rows = rows.filter(covering(query))
    if query.source:
        rows = rows.filter(source=query.source)
    return rows


def rollups_for(workspace, query: Query) -> QuerySet[UsageRollup]:
    """The finest rows of the range and filters."""
    rows = UsageRollup.objects.filter(workspace=workspace, day__lte=query.end).order_by()
    if query.start is not None:
        rows = rows.filter(day__gte=query.start)
    if query.source:
        rows = rows.filter(source=query.source)
    if query.model is not None:
        rows = rows.filter(model=query.model)
    if query.owner is not None:
        rows = rows.filter(owner_id=query.owner)
    if query.project is not None:
        rows = rows.filter(project=query.project)
    return rows


# --- sums and the figures derived from them -------------------------------------------------------------

SUMS = (
    "sessions", "messages", "prompt_tokens", "completion_tokens", "input_tokens", "output_tokens",
    "cache_read_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "reasoning_tokens", "subagent_tokens",
    "cost", "computed_cost", "reported_cost", "subagent_cost", "sessions_computed", "sessions_reported",
    "sessions_unpriced", "sessions_no_usage", "sessions_pending", "sessions_cost_reported", "priced_tokens",
    "duration_ms", "sessions_with_duration", "reviews_golden", "reviews_correct", "reviews_incorrect",
    "reviews_needs_review",
)  # fmt: skip


class BucketSums(Aggregate):
    """The element-wise sum of the rows' duration bucket arrays, as one array: one expression for
    Django to build instead of 64 Sums (which cost more to compile than the query takes to run)."""

    function = "sum"
    template = (
        "ARRAY[" + ", ".join(f"sum(%(expressions)s[{n}])" for n in range(1, DURATION_BUCKETS + 1)) + "]::bigint[]"
    )
    output_field = ArrayField(BigIntegerField())


def _aggregates(*, buckets: bool) -> dict:
    aggregates = {name: Sum(name) for name in SUMS}
    if buckets:
        aggregates["buckets"] = BucketSums("duration_buckets")
    return aggregates


def _clean(row: dict) -> dict:
    """Sums of no rows are NULL: make them 0, and fold the buckets into one list."""
    out = {name: row.get(name) or 0 for name in SUMS}
    for name in ("cost", "computed_cost", "reported_cost", "subagent_cost"):
        out[name] = Decimal(out[name])
    if "buckets" in row:
        out["buckets"] = [count or 0 for count in row["buckets"] or [0] * DURATION_BUCKETS]
    return out


def percentile_ms(buckets: list[int], fraction: float) -> float | None:
    """The `fraction` quantile of the durations counted in `buckets` (None when none)."""
    total = sum(buckets)
    if not total:
        return None
    rank = fraction * total
    seen = 0
    for index, count in enumerate(buckets):
        if count and seen + count >= rank:
            within = (rank - seen) / count
            if index == 0:
                return 1000 * within  # under a second: linear
            low = 1000 * DURATION_RATIO ** (index - 1)
            return low * DURATION_RATIO**within  # geometric inside [low, low × R)
        seen += count
    return 1000 * DURATION_RATIO ** (DURATION_BUCKETS - 1)


def _ratio(numerator, denominator):
    return numerator / denominator if denominator else None


def derived(row: dict) -> dict:
    """The figures the tables show, from one row of sums (None where a divisor is 0: "—")."""
    cache_write = row["cache_write_5m_tokens"] + row["cache_write_1h_tokens"]
    prompt_side = row["input_tokens"] + row["cache_read_tokens"] + cache_write
    total = prompt_side + row["output_tokens"]
    with_cost = row["sessions_computed"] + row["sessions_reported"]
    unknown = row["sessions_unpriced"] + row["sessions_no_usage"] + row["sessions_pending"]
    figures = {
        "cache_write_tokens": cache_write,
        "total_tokens": total,
        "cache_hit_rate": _ratio(row["cache_read_tokens"], prompt_side),
        "tokens_per_message": _ratio(total, row["messages"]),
        "tokens_per_session": _ratio(total, row["sessions"]),
        "messages_per_session": _ratio(row["messages"], row["sessions"]),
        "sessions_with_cost": with_cost,
        "sessions_unknown_cost": unknown,
        "cost_known": with_cost > 0,
        "shown_cost": row["cost"] if with_cost else None,  # None: no session has a known cost
        # costs are averaged over the sessions that have one: an unknown cost is not $0
        "cost_per_session": row["cost"] / with_cost if with_cost else None,
        "cost_per_1k_tokens": row["cost"] * 1000 / row["priced_tokens"] if row["priced_tokens"] else None,
        "avg_duration_ms": _ratio(row["duration_ms"], row["sessions_with_duration"]),
    }
    if "buckets" in row:
        figures["median_duration_ms"] = percentile_ms(row["buckets"], 0.5)
        figures["p90_duration_ms"] = percentile_ms(row["buckets"], 0.9)
    return row | figures


def summary(workspace, query: Query) -> dict:
    """Totals of the range, with the derived figures and the number of models, projects and people."""
    if fine_grained(query):
        rows = rollups_for(workspace, query)
        row = _clean(rows.aggregate(**_aggregates(buckets=True)))
        row |= rows.aggregate(
            models=Count("model", distinct=True, filter=~Q(model="")),
            projects=Count("project", distinct=True, filter=~Q(project="")),
            people=Count("owner", distinct=True),
        )
        return derived(row)
    add, subtract = covering_parts(query)
    row = _clean(dimension_rows(workspace, query, "source", where=add).aggregate(**_aggregates(buckets=True)))
    if subtract is not None:
        outside = dimension_rows(workspace, query, "source", where=subtract).aggregate(**_aggregates(buckets=True))
        row = _add(row, _negated(_clean(outside)))
        del row["named"]
    # the distinct (dimension, key) pairs of the range: a UNION of plain index ranges, one per
    # dimension and part of the range (one scan with an OR reads every day row of the workspace)
    pairs = [
        DimensionRollup.objects.filter(part, workspace=workspace, dimension=dimension)
        .filter(**({"source": query.source} if query.source else {}))
        .values_list("dimension", "key")
        .order_by()
        for dimension in ("model", "project", "owner")
        for part in covering_ranges(query)
    ]
    counts = Counter(dimension for dimension, key in pairs[0].union(*pairs[1:]) if key != "")
    row |= {"models": counts.get("model", 0), "projects": counts.get("project", 0), "people": counts.get("owner", 0)}
    return derived(row)


# --- breakdowns -------------------------------------------------------------------------------------


@dataclass
class Table:
    """Rows of a breakdown (dicts: `key`, `label`, the sums and `derived` figures), sorted."""

    dimension: str
    rows: list[dict]
    sort: str
    direction: str
    truncated: bool = False


SORTABLE = {
    "sessions", "messages", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "total_tokens", "cache_hit_rate", "tokens_per_message", "cost", "cost_per_session", "cost_per_1k_tokens",
    "median_duration_ms", "p90_duration_ms", "good_share", "reviewed", "subagent_cost", "sessions_unknown_cost",
    "label",
}  # fmt: skip
TABLE_LIMIT = 200


def _group_key(dimension: str):
    return {"model": "model", "owner": "owner_id", "project": "project", "source": "source", "provider": "model"}[
        dimension
    ]


def provider_of(model: str) -> str:
    """The provider that sells a model: the price book's, else guessed from the name (as upstream's
    inferProvider does)."""
    if not model:
        return ""
    found = book_model(model, None)
    if found is not None:
        return found[0].id
    name = model.lower()
    for pattern, provider in (
        ("claude|anthropic", "anthropic"),
        ("gpt|o1|o3|o4|codex|davinci", "openai"),
        ("gemini|palm", "google"),
        ("mistral|mixtral|codestral|devstral", "mistral"),
        ("llama", "meta"),
        ("deepseek", "deepseek"),
        ("grok", "x-ai"),
        ("qwen", "alibaba"),
    ):
        if re.search(pattern, name):
            return provider
    return "unknown"


def breakdown(
    workspace,
    query: Query,
    dimension: str,
    *,
    sort: str = "cost",
    direction: str = "desc",
    limit: int = TABLE_LIMIT,
) -> Table:
    """One row per model / person / project / agent / provider in the range, with every figure of
    the comparison table (and the review outcome of its reviewed sessions)."""
    if dimension not in DIMENSIONS:
        raise QueryError("by", f"by must be one of {', '.join(DIMENSIONS)}")
    if sort not in SORTABLE:
        raise QueryError("sort", f"sort must be one of {', '.join(sorted(SORTABLE))}")
    if direction not in ("asc", "desc"):
        raise QueryError("dir", "dir must be asc or desc")
    if fine_grained(query):
        column = _group_key(dimension)
        keys = [column, "project_named"] if dimension == "project" else [column]
        named = "project_named"
        parts = [(rollups_for(workspace, query).values(*keys).annotate(**_aggregates(buckets=True)), False)]
    else:
        column, named = "key", "key_named"
        source_dimension = "model" if dimension == "provider" else dimension
        parts = [
            (
                dimension_rows(workspace, query, source_dimension, where=where)
                .values("key", "key_named")
                .annotate(**_aggregates(buckets=True)),
                taken_away,
            )
            for where, taken_away in zip(covering_parts(query), (False, True), strict=True)
            if where is not None
        ]
    rows: dict = {}
    for grouped, taken_away in parts:
        for raw in grouped:
            key = raw[column]
            if dimension == "provider":
                key = provider_of(key)
            elif dimension == "owner" and isinstance(key, str):
                key = int(key)
            row = _clean(raw)
            row["named"] = raw.get(named, False)
            if taken_away:
                row = _negated(row)
            if key in rows:
                rows[key] = _add(rows[key], row)
            else:
                rows[key] = row
    rows = {key: row for key, row in rows.items() if row["sessions"]}  # e.g. all its sessions fell outside
    labels = _labels(workspace, dimension, rows)
    table = []
    for key, row in rows.items():
        row = derived(row)
        row |= {"key": key, "label": labels.get(key, key), "filter": _filter_value(dimension, key)}
        row |= outcome_figures(row)
        table.append(row)
    total_cost = sum((row["cost"] for row in table), Decimal(0))
    total_tokens = sum(row["total_tokens"] for row in table)
    for row in table:
        row["cost_share"] = float(row["cost"] * 100 / total_cost) if total_cost else 0.0
        row["token_share"] = 100 * row["total_tokens"] / total_tokens if total_tokens else 0.0
    table.sort(key=lambda row: str(row["label"]).lower())  # ties in a stable, readable order
    present = [row for row in table if row[sort] is not None]
    missing = [row for row in table if row[sort] is None]
    present.sort(
        key=lambda row: row[sort] if sort != "label" else str(row["label"]).lower(), reverse=direction == "desc"
    )
    ordered = present + missing  # "—" last whichever the direction
    return Table(dimension, ordered[:limit], sort, direction, truncated=len(ordered) > limit)


def _add(a: dict, b: dict) -> dict:
    out = {name: a[name] + b[name] for name in SUMS}
    out["buckets"] = [x + y for x, y in zip(a["buckets"], b["buckets"], strict=True)]
    out["named"] = a.get("named") or b.get("named")
    return out


def _negated(row: dict) -> dict:
    """A row to add in order to take `row` away (see `covering_parts`)."""
    return {**{name: -row[name] for name in SUMS}, "buckets": [-n for n in row["buckets"]], "named": row.get("named")}


def _filter_value(dimension: str, key):
    """The value of the page's filter that narrows to this row (None: no such filter)."""
    if dimension in ("provider",):
        return None
    return "" if key is None else str(key)


def _labels(workspace, dimension: str, rows: dict) -> dict:
    if dimension == "owner":
        people = User.objects.filter(pk__in=[key for key in rows if key is not None])
        return {person.pk: person.get_full_name() for person in people}
    if dimension == "source":
        return {key: SOURCE_LABELS.get(key, key) for key in rows}
    if dimension == "model":
        return {key: key or "Unknown model" for key in rows}
    if dimension == "project":
        return {key: key or "No project" for key in rows}
    return {key: key or "Unknown" for key in rows}


# --- the review outcome ------------------------------------------------------------------------------


def outcome_figures(row: dict) -> dict:
    """Good (golden or correct) against incorrect, among the reviewed sessions of a row."""
    golden, correct = row["reviews_golden"], row["reviews_correct"]
    incorrect, needs_review = row["reviews_incorrect"], row["reviews_needs_review"]
    good = golden + correct
    return {
        "golden": golden,
        "correct": correct,
        "incorrect": incorrect,
        "needs_review": needs_review,
        "reviewed": good + incorrect + needs_review,
        "good": good,
        "good_share": 100 * good / (good + incorrect) if good + incorrect else None,
    }


# --- over time ------------------------------------------------------------------------------------------

SERIES_LIMIT = 6  # models drawn apart; the rest are "Other"
OTHER = "__other__"


def default_interval(query: Query, first_day: date | None) -> str:
    start = query.start or first_day or query.end
    days = (query.end - start).days + 1
    return "day" if days <= 92 else "week" if days <= 800 else "month"


def len_periods(start: date, end: date, interval: str) -> int:
    days = (end - start).days + 1
    return days if interval == "day" else days // 7 + 2 if interval == "week" else days // 28 + 2


def _periods(start: date, end: date, interval: str) -> list[date]:
    if interval == "day":
        return [start + timedelta(days=n) for n in range((end - start).days + 1)]
    if interval == "week":
        first = start - timedelta(days=start.weekday())
        return [first + timedelta(weeks=n) for n in range((end - first).days // 7 + 1)]
    periods, current = [], start.replace(day=1)
    while current <= end:
        periods.append(current)
        current = (current.replace(day=28) + timedelta(days=4)).replace(day=1)
    return periods


def period_end(period: date, interval: str) -> date:
    if interval == "day":
        return period
    if interval == "week":
        return period + timedelta(days=6)
    return period.replace(day=calendar.monthrange(period.year, period.month)[1])


def timeseries(
    workspace, query: Query, *, interval: str | None = None, metric: str = "tokens", by: str = "model"
) -> dict:
    """Usage per day (or week, month) stacked per model (or agent): {"interval", "metric",
    "periods": [date...], "series": [{"key", "label", "values": [...], "total"}], "totals"}."""
    if metric not in METRICS:
        raise QueryError("metric", f"metric must be one of {', '.join(METRICS)}")
    if by not in ("model", "source"):
        raise QueryError("by", "by must be model or source for a chart")
    fine = fine_grained(query)
    if fine:
        rows, day = rollups_for(workspace, query), "day"
        first_day = query.start or rows.aggregate(first=Min("day"))["first"]
    else:
        day = "start"
        first_day = (
            query.start or dimension_rows(workspace, query, by, daily=True).aggregate(first=Min("start"))["first"]
        )
    if interval is None:
        interval = default_interval(query, first_day)
    if interval not in INTERVALS:
        raise QueryError("interval", f"interval must be one of {', '.join(INTERVALS)}")
    if first_day is None:
        return {"interval": interval, "metric": metric, "periods": [], "series": [], "totals": []}
    if not fine:
        # per day and per week: day rows; per month: whole months and the days at the edges
        rows = dimension_rows(workspace, query, by, daily=interval != "month")
    trunc = {"day": F(day), "week": TruncWeek(day), "month": TruncMonth(day)}[interval]
    value = (
        Sum("cost")
        if metric == "cost"
        else Sum(F("input_tokens") + F("output_tokens") + F("cache_read_tokens") + F("cache_write_5m_tokens")
                 + F("cache_write_1h_tokens"))
    )  # fmt: skip
    group = by if fine else "key"
    grouped = rows.annotate(bucket=trunc).values("bucket", group).annotate(value=value)
    if len_periods(first_day, query.end, interval) > MAX_PERIODS:
        raise QueryError(
            "interval", f"a chart has at most {MAX_PERIODS} points: choose a longer interval or a shorter range"
        )
    periods = _periods(first_day, query.end, interval)
    index = {period: n for n, period in enumerate(periods)}
    per_key: dict = {}
    for row in grouped:
        period = row["bucket"].date() if isinstance(row["bucket"], datetime) else row["bucket"]
        values = per_key.setdefault(row[group], [0] * len(periods))
        if period in index:
            values[index[period]] += row["value"] or 0
    ranked = sorted(per_key.items(), key=lambda item: (-sum(item[1]), str(item[0])))
    kept, rest = ranked[:SERIES_LIMIT], ranked[SERIES_LIMIT:]
    if len(rest) == 1:
        kept, rest = ranked, []
    labels = (
        {key: key or "Unknown model" for key, _ in kept}
        if by == "model"
        else {key: SOURCE_LABELS.get(key, key) for key, _ in kept}
    )
    series = [{"key": key, "label": labels[key], "values": values, "total": sum(values)} for key, values in kept]
    if rest:
        other = [sum(values[n] for _, values in rest) for n in range(len(periods))]
        series.append(
            {
                "key": OTHER,
                "label": f"{len(rest)} other{'s' if len(rest) > 1 else ''}",
                "values": other,
                "total": sum(other),
            }  # fmt: skip
        )
    totals = [sum(s["values"][n] for s in series) for n in range(len(periods))]
    return {"interval": interval, "metric": metric, "periods": periods, "series": series, "totals": totals}


# --- budget -------------------------------------------------------------------------------------------

BUDGET_WARNING = 80  # percent


def budget_status(workspace, *, today: date | None = None) -> dict | None:
    """This month's cost so far against the workspace's monthly budget; None without a budget.
    `level` is None, "warning" (from 80%) or "over" (from 100%)."""
    if not workspace.monthly_budget:
        return None
    tz = workspace.timezone or "UTC"
    today = today or today_in(tz)
    first = today.replace(day=1)
    spent = UsageRollup.objects.filter(workspace=workspace, day__gte=first, day__lte=today).aggregate(cost=Sum("cost"))[
        "cost"
    ] or Decimal(0)
    percent = float(spent * 100 / workspace.monthly_budget)
    days_in_month = calendar.monthrange(today.year, today.month)[1]
    projected = spent * days_in_month / today.day
    level = "over" if percent >= 100 else "warning" if percent >= BUDGET_WARNING else None
    return {
        "budget": workspace.monthly_budget,
        "spent": spent,
        "percent": percent,
        "projected": projected,
        "level": level,
        "month": first,
        "remaining": workspace.monthly_budget - spent,
    }


# --- the Overview -------------------------------------------------------------------------------------

OVERVIEW_DAYS = 30


def overview(workspace, *, days: int = OVERVIEW_DAYS) -> dict:
    """All-time totals, the last `days` days' totals, tokens per day and the top projects and
    models of those days."""
    tz = workspace.timezone or "UTC"
    today = today_in(tz)
    recent = Query(preset="custom", start=today - timedelta(days=days - 1), end=today, tz=tz)
    everything = Query(preset="all", start=None, end=today, tz=tz)
    return {"all": summary(workspace, everything), "recent": summary(workspace, recent), "query": recent}


def daily(workspace, query: Query) -> list[dict]:
    """One row per day of a (bounded) range, zero-filled: sessions, input side (input and cache)
    and output tokens, cost."""
    rows = (
        (
            rollups_for(workspace, query)
            if fine_grained(query)
            else dimension_rows(workspace, query, "source", daily=True).annotate(day=F("start"))
        )
        .values("day")
        .annotate(
            sessions=Sum("sessions"),
            prompt=Sum(
                F("input_tokens") + F("cache_read_tokens") + F("cache_write_5m_tokens") + F("cache_write_1h_tokens")
            ),
            output=Sum("output_tokens"),
            cost=Sum("cost"),
        )
    )
    by_day = {row["day"]: row for row in rows}
    result = []
    for day in _periods(query.start, query.end, "day"):
        row = by_day.get(day, {})
        prompt, output = row.get("prompt") or 0, row.get("output") or 0
        result.append(
            {
                "date": day,
                "sessions": row.get("sessions") or 0,
                "prompt_tokens": prompt,
                "completion_tokens": output,
                "total_tokens": prompt + output,
                "cost": row.get("cost"),
            }
        )
    return result


def recent_sessions(workspace, *, limit: int = 8) -> list[Session]:
    """The sessions with the latest activity."""
    return list(
        Session.objects.in_workspace(workspace)
        .only(
            "title",
            "external_id",
            "project_name",
            "source",
            "total_tokens",
            "cost",
            "cost_source",
            "cost_note",
            "updated_at",
        )
        .order_by("-updated_at", "-id")[:limit]
    )


# --- CSV -------------------------------------------------------------------------------------------

CSV_COLUMNS = (
    ("label", "{dimension}"), ("sessions", "sessions"), ("messages", "messages"), ("input_tokens", "input tokens"),
    ("output_tokens", "output tokens"), ("reasoning_tokens", "reasoning tokens"),
    ("cache_read_tokens", "cache read tokens"), ("cache_write_5m_tokens", "cache write 5m tokens"),
    ("cache_write_1h_tokens", "cache write 1h tokens"), ("total_tokens", "total tokens"),
    ("cache_hit_rate", "cache hit rate"), ("tokens_per_message", "tokens per message"), ("cost", "cost usd"),
    ("computed_cost", "computed cost usd"), ("reported_cost", "reported cost usd"),
    ("sessions_reported", "sessions using the reported cost"), ("sessions_unknown_cost", "sessions with unknown cost"),
    ("cost_per_session", "cost per session usd"), ("cost_per_1k_tokens", "cost per 1k tokens usd"),
    ("median_duration_ms", "median duration ms"), ("p90_duration_ms", "p90 duration ms"),
    ("subagent_tokens", "subagent tokens"), ("subagent_cost", "subagent cost usd"), ("reviewed", "reviewed"),
    ("golden", "golden"), ("correct", "correct"), ("incorrect", "incorrect"), ("good_share", "good share pct"),
)  # fmt: skip


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}" if not math.isnan(value) else ""
    if isinstance(value, Decimal):
        return f"{value.quantize(Decimal('0.00000001')).normalize():f}"
    text = str(value)
    # a cell starting like a formula stays text in spreadsheet programs
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def rows_csv(header: list[str], rows) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([_csv_value(title) for title in header])  # series titles are model names: untrusted
    for row in rows:
        writer.writerow([_csv_value(value) for value in row])
    return out.getvalue()


def table_csv(table: Table) -> str:
    header = [title.format(dimension=DIMENSIONS[table.dimension].lower()) for _, title in CSV_COLUMNS]
    return rows_csv(header, ([row.get(name) for name, _ in CSV_COLUMNS] for row in table.rows))


def series_csv(series: dict) -> str:
    """The chart's numbers: one row per period, one column per series."""
    header = [series["interval"], *(str(s["label"]) for s in series["series"]), "total"]
    return rows_csv(
        header,
        (
            [period.isoformat(), *(s["values"][n] for s in series["series"]), series["totals"][n]]
            for n, period in enumerate(series["periods"])
        ),
    )
