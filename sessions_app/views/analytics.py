"""Analytics: usage and cost of the current workspace over a date range, by model, person,
project, agent and provider, with a chart over time, a side-by-side comparison of two rows and
CSV downloads. Every number comes from `sessions_app.analytics` (the daily rollups), so a page
costs the same few queries at ten sessions or ten million.

The range and filters live in the URL (shareable, bookmarkable). Links and the filter form are
boosted by HTMX, which swaps only the page body and shows a loading state; without JavaScript
they are plain links and a plain GET form.
"""

from dataclasses import replace

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from accounts.models import Role, User
from accounts.selectors import enabled_sources, role_in
from accounts.services import current_workspace
from sessions_app import analytics as aggregates
from sessions_app.analytics import DIMENSIONS, QueryError

CSV_LIMIT = 100_000


def _dimensions(workspace) -> dict[str, str]:
    """The breakdowns a workspace offers: "by person" only where there is more than one."""
    return {key: label for key, label in DIMENSIONS.items() if key != "owner" or not workspace.is_personal}


def _choice(request, name: str, choices, default: str) -> str:
    value = request.GET.get(name) or default
    if value not in choices:
        raise QueryError(name, f"{name} must be one of {', '.join(choices)}")
    return value


def _link(query: aggregates.Query, **params) -> str:
    merged = query.params() | {k: v for k, v in params.items() if v is not None}
    return "?" + urlencode(merged)


def _default_query(workspace) -> aggregates.Query:
    return aggregates.parse_query({}, workspace)


@login_required
@require_GET
def analytics(request: HttpRequest) -> TemplateResponse:
    workspace = current_workspace(request)
    dimensions = _dimensions(workspace)
    error, status = None, 200
    try:
        query = aggregates.parse_query(request.GET, workspace)
        by = _choice(request, "by", dimensions, "model")
        sort = _choice(request, "sort", aggregates.SORTABLE, "cost")
        direction = _choice(request, "dir", ("asc", "desc"), "desc")
        metric = _choice(request, "metric", aggregates.METRICS, "tokens")
        interval = request.GET.get("interval") or None
        if interval is not None and interval not in aggregates.INTERVALS:
            raise QueryError("interval", f"interval must be one of {', '.join(aggregates.INTERVALS)}")
    except QueryError as exc:
        # a bad bookmark or a hand-edited URL: say what was wrong and show the default view
        error, status = f"{exc.field}: {exc}", 400
        query, by, sort, direction, metric, interval = (
            _default_query(workspace),
            "model",
            "cost",
            "desc",
            "tokens",
            None,
        )
    summary = aggregates.summary(workspace, query)
    context = {
        "workspace": workspace,
        "query": query,
        "error": error,
        "summary": summary,
        "presets": [(key, label) for key, label in aggregates.PRESETS.items() if key != "custom"],
        "sources": enabled_sources(request.user),
        "source_label": aggregates.SOURCE_LABELS.get(query.source, query.source),
        "dimensions": dimensions,
        "by": by,
        "metric": metric,
        "is_admin": role_in(request.user, workspace) == Role.ADMIN,
        "budget": aggregates.budget_status(workspace),
        "today": aggregates.today_in(query.tz),
        "links": _links(query, by=by, sort=sort, direction=direction, metric=metric, interval=interval),
        "filter_labels": _filter_labels(workspace, query),
    }
    if summary["sessions"]:
        try:
            timeseries = aggregates.timeseries(workspace, query, interval=interval, metric=metric)
        except QueryError as exc:  # e.g. per day over years: say so, and chart per week or month
            context["error"], status = f"{exc.field}: {exc}", 400
            timeseries = aggregates.timeseries(workspace, query, interval=None, metric=metric)
        table = aggregates.breakdown(workspace, query, by, sort=sort, direction=direction)
        for row in table.rows:
            if row["filter"] is not None:
                # narrow the page to the row, and break it down the next way
                row["drill"] = _link(
                    replace(query, **{FILTERS[by]: _typed(by, row["filter"])}), by=DRILL[by], metric=metric
                )
        context |= {
            "timeseries": timeseries,
            "table": table,
            "columns": _columns(table, query, by, sort, direction),
            "no_known_model": by == "model" and all(row["key"] == "" for row in table.rows),
        }
    return TemplateResponse(request, "sessions_app/analytics.html", context, status=status)


FILTERS = {"model": "model", "owner": "owner", "project": "project", "source": "source"}
DRILL = {"model": "project", "owner": "model", "project": "model", "source": "model"}


def _typed(by: str, value: str):
    return int(value) if by == "owner" else value


def _links(query, *, by, sort, direction, metric, interval) -> dict:
    """URLs of the page's toggles, each keeping everything else."""
    state = {"by": by, "sort": sort, "dir": direction, "metric": metric, "interval": interval}

    def with_(**changes):
        return _link(query, **(state | changes))

    return {
        "metric": {key: with_(metric=key) for key in aggregates.METRICS},
        "interval": {key: with_(interval=key) for key in aggregates.INTERVALS},
        "by": {key: with_(by=key, sort="cost", dir="desc") for key in DIMENSIONS},
        "csv": reverse("sessions:analytics-csv") + _link(query, by=by, sort=sort, dir=direction),
        "series_csv": reverse("sessions:analytics-csv")
        + _link(query, table="series", metric=metric, interval=interval),
        "state": state,
    }


def _columns(table, query, by, sort, direction) -> list[dict]:
    """The comparison table's sortable headers: a click sorts by the column, again reverses it."""
    columns = []
    for key, label, numeric in COLUMNS:
        active = key == sort
        next_direction = ("asc" if direction == "desc" else "desc") if active else ("asc" if key == "label" else "desc")
        columns.append(
            {
                "key": key,
                "label": DIMENSIONS[by] if key == "label" else label,
                "numeric": numeric,
                "active": active,
                "aria_sort": ("descending" if direction == "desc" else "ascending") if active else None,
                "url": _link(query, by=by, sort=key, dir=next_direction),
            }
        )
    return columns


COLUMNS = (
    ("label", "", False),
    ("sessions", "Sessions", True),
    ("messages", "Messages", True),
    ("input_tokens", "Input", True),
    ("output_tokens", "Output", True),
    ("cache_read_tokens", "Cache read", True),
    ("cache_write_tokens", "Cache write", True),
    ("cache_hit_rate", "Cache hit", True),
    ("tokens_per_message", "Tokens / msg", True),
    ("cost", "Cost", True),
    ("cost_per_session", "Cost / session", True),
    ("cost_per_1k_tokens", "Cost / 1K tokens", True),
    ("median_duration_ms", "Median duration", True),
    ("p90_duration_ms", "p90 duration", True),
    ("good_share", "Review: good", True),
)


def _filter_labels(workspace, query) -> list[dict]:
    """The filters in force besides range and agent, each with the URL that removes it."""
    labels = []
    if query.model is not None:
        labels.append(
            {"name": "Model", "value": query.model or "Unknown model", "remove": _link(replace(query, model=None))}
        )
    if query.owner is not None:
        person = User.objects.filter(pk=query.owner, memberships__workspace=workspace).first()
        name = person.get_full_name() if person else f"#{query.owner}"
        labels.append({"name": "Person", "value": name, "remove": _link(replace(query, owner=None))})
    if query.project is not None:
        value = query.project or "No project"
        labels.append({"name": "Project", "value": value, "remove": _link(replace(query, project=None))})
    return labels


@login_required
@require_GET
def compare(request: HttpRequest) -> TemplateResponse:
    """Two rows of a breakdown (e.g. two models) side by side, with the difference."""
    workspace = current_workspace(request)
    dimensions = _dimensions(workspace)
    error = None
    try:
        query = aggregates.parse_query(request.GET, workspace)
        by = _choice(request, "by", dimensions, "model")
        _pair(request)
    except QueryError as exc:
        error = str(exc)
        query, by = _default_query(workspace), "model"
    left = right = None
    metrics: list = []
    if error is None:
        by, left, right, metrics, error = _comparison(request, workspace, query, by)
    context = {
        "workspace": workspace,
        "query": query,
        "by": by,
        "by_label": dimensions.get(by, by),
        "left": left,
        "right": right,
        "metrics": metrics,
        "error": error,
        "back": reverse("sessions:analytics") + _link(query, by=by),
        "csv": reverse("sessions:analytics-csv")
        + _link(query, by=by, table="compare", a=request.GET.get("a"), b=request.GET.get("b")),
    }
    return TemplateResponse(request, "sessions_app/analytics_compare.html", context, status=400 if error else 200)


def _pair(request) -> tuple[str, str]:
    """The two rows to compare: `a` and `b`, or the first two ticked (`pick`)."""
    picked = request.GET.getlist("pick")
    a = request.GET.get("a", picked[0] if picked else None)
    b = request.GET.get("b", picked[1] if len(picked) > 1 else None)
    if a is None or b is None:
        raise QueryError("a", "Pick two rows to compare.")
    return a, b


def _comparison(request, workspace, query, by) -> tuple:
    """(by, left row, right row, the figures side by side, an error or None)."""
    a, b = _pair(request)
    table = aggregates.breakdown(workspace, query, by, limit=aggregates.TABLE_LIMIT * 50)
    rows = {str(row["key"] if row["key"] is not None else ""): row for row in table.rows}
    left, right = rows.get(a), rows.get(b)
    if left is None or right is None:
        return by, left, right, [], "One of the two has no sessions in this range. Pick two rows of the table."
    metrics = []
    for key, label, kind in COMPARE_METRICS:
        x, y = left.get(key), right.get(key)
        change = float((y - x) / x * 100) if x not in (None, 0) and y is not None else None
        tone = None  # whether the change is for the better (green) or the worse (amber), where that's clear
        if change and key in BETTER_LOWER:
            tone = "better" if change < 0 else "worse"
        elif change and key in BETTER_HIGHER:
            tone = "better" if change > 0 else "worse"
        metrics.append({"key": key, "label": label, "kind": kind, "a": x, "b": y, "change": change, "tone": tone})
    return by, left, right, metrics, None


BETTER_LOWER = {"shown_cost", "cost_per_session", "cost_per_1k_tokens", "incorrect", "sessions_unknown_cost"}
BETTER_HIGHER = {"good_share", "cache_hit_rate"}


COMPARE_METRICS = (
    ("sessions", "Sessions", "count"),
    ("messages", "Messages", "count"),
    ("input_tokens", "Input tokens (without cache)", "tokens"),
    ("output_tokens", "Output tokens", "tokens"),
    ("reasoning_tokens", "of which reasoning", "tokens"),
    ("cache_read_tokens", "Cache read tokens", "tokens"),
    ("cache_write_tokens", "Cache write tokens", "tokens"),
    ("total_tokens", "Total tokens", "tokens"),
    ("cache_hit_rate", "Cache hit rate", "percent"),
    ("tokens_per_message", "Tokens per message", "count"),
    ("tokens_per_session", "Tokens per session", "count"),
    ("shown_cost", "Cost", "cost"),
    ("cost_per_session", "Cost per session", "cost"),
    ("cost_per_1k_tokens", "Cost per 1K tokens", "cost"),
    ("median_duration_ms", "Median session duration", "duration"),
    ("p90_duration_ms", "p90 session duration", "duration"),
    ("subagent_cost", "Subagents' cost", "cost"),
    ("reviewed", "Reviewed sessions", "count"),
    ("good_share", "Reviewed good (golden or correct)", "share"),
    ("incorrect", "Reviewed incorrect", "count"),
    ("sessions_reported", "Sessions using the plugin's cost", "count"),
    ("sessions_unknown_cost", "Sessions with no known cost", "count"),
)


@login_required
@require_GET
def export_csv(request: HttpRequest) -> HttpResponse:
    """A table of the page as CSV: the breakdown (every row, not only the first page), or with
    `table=series` the chart's numbers, or with `table=compare` the side-by-side view."""
    workspace = current_workspace(request)
    try:
        query = aggregates.parse_query(request.GET, workspace)
        which = _choice(request, "table", ("breakdown", "series", "compare"), "breakdown")
        by = _choice(request, "by", _dimensions(workspace), "model")
        if which == "series":
            metric = _choice(request, "metric", aggregates.METRICS, "tokens")
            series = aggregates.timeseries(
                workspace, query, interval=request.GET.get("interval") or None, metric=metric
            )
            body, name = aggregates.series_csv(series), f"{metric}-by-model"
        elif which == "compare":
            _, _, _, metrics, error = _comparison(request, workspace, query, by)
            if error:
                raise QueryError("a", error)
            body, name = aggregates.rows_csv(["figure", "a", "b", "change pct"], [
                [m["label"], m["a"], m["b"], m["change"]] for m in metrics
            ]), f"compare-{by}"  # fmt: skip
        else:
            sort = _choice(request, "sort", aggregates.SORTABLE, "cost")
            direction = _choice(request, "dir", ("asc", "desc"), "desc")
            table = aggregates.breakdown(workspace, query, by, sort=sort, direction=direction, limit=CSV_LIMIT)
            body, name = aggregates.table_csv(table), by
    except QueryError as exc:
        return HttpResponse(f"{exc.field}: {exc}\n", status=400, content_type="text/plain; charset=utf-8")
    response = HttpResponse(body, content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d")
    response["Content-Disposition"] = f'attachment; filename="opensync-{name}-{query.preset}-{stamp}.csv"'
    return response
