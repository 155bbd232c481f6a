"""/api/analytics/...: the figures of the Analytics page as JSON, for a team's own dashboards.

Same question as the page (a date range in the workspace's time zone, optional agent, model,
owner and project filters), same code (`sessions_app.analytics`, on the daily rollups), with a
key of either scope. Money is USD as numbers; a cost that is unknown is null, never 0.
"""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.response import Response

from opensync.api import BAD_REQUEST, UNAUTHORIZED, ReadApi

from .. import analytics as aggregates
from ..analytics import DIMENSIONS, QueryError

MAX_ROWS = 1000

# `# type: ignore[assignment]` below: a field named `source` or `label` (the wire's names) is
# declared like any other (DRF's metaclass takes declared fields off the class), but the stubs see
# it overriding the Field attribute of that name.

QUERY_PARAMETERS = [
    OpenApiParameter(
        "range",
        str,
        enum=list(aggregates.PRESETS),
        description="A preset (default 30d), or custom with from and to. Days are the workspace's time zone.",
    ),
    OpenApiParameter("from", str, description="custom: first day, YYYY-MM-DD (empty: since the first session)."),
    OpenApiParameter("to", str, description="custom: last day, YYYY-MM-DD (default today); both days included."),
    OpenApiParameter("source", str, description="Only sessions of this agent, e.g. claude-code."),
    OpenApiParameter("model", str, description="Only sessions of this model (empty: those with no model)."),
    OpenApiParameter("owner", int, description="Only sessions of this person (a user id, from by=owner rows)."),
    OpenApiParameter("project", str, description="Only sessions of this project (empty: those with none)."),
]


def _query(request):
    try:
        return aggregates.parse_query(request.query_params, request.auth.workspace)
    except QueryError as exc:
        raise exceptions.ValidationError(str(exc)) from None


def _choice(request, name: str, choices, default: str) -> str:
    value = request.query_params.get(name) or default
    if value not in choices:
        raise exceptions.ValidationError(f"{name} must be one of {', '.join(choices)}")
    return value


def _money(value):
    return None if value is None else float(value)


def range_json(query) -> dict:
    return {
        "preset": query.preset,
        "from": query.start.isoformat() if query.start else None,
        "to": query.end.isoformat(),
        "timeZone": query.tz,
        "filters": {
            "source": query.source or None,
            "model": query.model,
            "owner": query.owner,
            "project": query.project,
        },
    }


def figures_json(row: dict) -> dict:
    """The figures of a summary or of a breakdown row, camelCase."""
    return {
        "sessions": row["sessions"],
        "messages": row["messages"],
        "tokens": {
            "input": row["input_tokens"],
            "output": row["output_tokens"],
            "reasoning": row["reasoning_tokens"],
            "cacheRead": row["cache_read_tokens"],
            "cacheWrite5m": row["cache_write_5m_tokens"],
            "cacheWrite1h": row["cache_write_1h_tokens"],
            "total": row["total_tokens"],
            "subagents": row["subagent_tokens"],
            "reportedPrompt": row["prompt_tokens"],
            "reportedCompletion": row["completion_tokens"],
        },
        "cacheHitRate": row["cache_hit_rate"],
        "tokensPerMessage": row["tokens_per_message"],
        "cost": {
            "total": _money(row["shown_cost"]),
            "computed": float(row["computed_cost"]),
            "reported": float(row["reported_cost"]),
            "subagents": float(row["subagent_cost"]),
            "perSession": _money(row["cost_per_session"]),
            "per1kTokens": _money(row["cost_per_1k_tokens"]),
            "sessionsComputed": row["sessions_computed"],
            "sessionsReported": row["sessions_reported"],
            "sessionsUnknown": row["sessions_unknown_cost"],
        },
        "duration": {
            "medianMs": row.get("median_duration_ms"),
            "p90Ms": row.get("p90_duration_ms"),
            "averageMs": row["avg_duration_ms"],
            "sessionsWithDuration": row["sessions_with_duration"],
        },
    }


# --- schema ---------------------------------------------------------------------------------------


class TokensSerializer(serializers.Serializer):
    input = serializers.IntegerField(help_text="Input without cache.")
    output = serializers.IntegerField(help_text="Output, reasoning included.")
    reasoning = serializers.IntegerField()
    cacheRead = serializers.IntegerField()
    cacheWrite5m = serializers.IntegerField()
    cacheWrite1h = serializers.IntegerField()
    total = serializers.IntegerField(help_text="input + output + cache reads and writes.")
    subagents = serializers.IntegerField(help_text="Of the total: subagents'.")
    reportedPrompt = serializers.IntegerField(help_text="promptTokens as the plugins reported them.")
    reportedCompletion = serializers.IntegerField()


class CostSerializer(serializers.Serializer):
    total = serializers.FloatField(allow_null=True, help_text="USD shown cost; null when no session has one.")
    computed = serializers.FloatField(help_text="Of the sessions the server priced.")
    reported = serializers.FloatField(help_text="What the plugins reported, over the sessions that did.")
    subagents = serializers.FloatField()
    perSession = serializers.FloatField(allow_null=True, help_text="Over the sessions with a known cost.")
    per1kTokens = serializers.FloatField(allow_null=True)
    sessionsComputed = serializers.IntegerField()
    sessionsReported = serializers.IntegerField(help_text="Sessions showing the plugin's figure.")
    sessionsUnknown = serializers.IntegerField(help_text="Sessions with no known cost (not counted as $0).")


class DurationSerializer(serializers.Serializer):
    medianMs = serializers.FloatField(allow_null=True, help_text="Within about 6%.")
    p90Ms = serializers.FloatField(allow_null=True)
    averageMs = serializers.FloatField(allow_null=True)
    sessionsWithDuration = serializers.IntegerField()


class FiltersSerializer(serializers.Serializer):
    source = serializers.CharField(allow_null=True)  # type: ignore[assignment]
    model = serializers.CharField(allow_null=True)
    owner = serializers.IntegerField(allow_null=True)
    project = serializers.CharField(allow_null=True)


class RangeSerializer(serializers.Serializer):
    preset = serializers.CharField()
    # "from" is a keyword: declared through the fields mapping below
    to = serializers.DateField()
    timeZone = serializers.CharField()
    filters = FiltersSerializer()

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.DateField(allow_null=True)
        return fields


class FiguresSerializer(serializers.Serializer):
    sessions = serializers.IntegerField()
    messages = serializers.IntegerField()
    tokens = TokensSerializer()
    cacheHitRate = serializers.FloatField(allow_null=True, help_text="Cache reads over all input.")
    tokensPerMessage = serializers.FloatField(allow_null=True)
    cost = CostSerializer()
    duration = DurationSerializer()


class BudgetSerializer(serializers.Serializer):
    budget = serializers.FloatField(help_text="USD per month.")
    spent = serializers.FloatField(help_text="This month so far.")
    percent = serializers.FloatField()
    projected = serializers.FloatField(help_text="At this month's pace, by its end.")
    level = serializers.ChoiceField(choices=["warning", "over"], allow_null=True)


class SummarySerializer(FiguresSerializer):
    range = RangeSerializer()
    models = serializers.IntegerField()
    projects = serializers.IntegerField()
    people = serializers.IntegerField()
    budget = BudgetSerializer(allow_null=True, help_text="Null when the workspace has no monthly budget.")


class ReviewSerializer(serializers.Serializer):
    reviewed = serializers.IntegerField()
    golden = serializers.IntegerField()
    correct = serializers.IntegerField()
    incorrect = serializers.IntegerField()
    needsReview = serializers.IntegerField()
    goodShare = serializers.FloatField(allow_null=True, help_text="Percent golden or correct, against incorrect.")


class BreakdownRowSerializer(FiguresSerializer):
    key = serializers.CharField(allow_null=True, help_text="The model, user id, project, agent or provider.")
    label = serializers.CharField()  # type: ignore[assignment]
    review = ReviewSerializer()


class BreakdownSerializer(serializers.Serializer):
    range = RangeSerializer()
    by = serializers.ChoiceField(choices=list(DIMENSIONS))
    rows = BreakdownRowSerializer(many=True)
    truncated = serializers.BooleanField()


class SeriesSerializer(serializers.Serializer):
    key = serializers.CharField(allow_null=True, help_text='"__other__" for the models beyond the first six.')
    label = serializers.CharField()  # type: ignore[assignment]
    values = serializers.ListField(child=serializers.FloatField(), help_text="One per period.")
    total = serializers.FloatField()


class TimeseriesSerializer(serializers.Serializer):
    range = RangeSerializer()
    interval = serializers.ChoiceField(choices=list(aggregates.INTERVALS))
    metric = serializers.ChoiceField(choices=list(aggregates.METRICS))
    periods = serializers.ListField(child=serializers.DateField(), help_text="First day of each period.")
    series = SeriesSerializer(many=True)


ANALYTICS = ["Analytics"]
ERRORS = {400: BAD_REQUEST, 401: UNAUTHORIZED}


# --- views ----------------------------------------------------------------------------------------


class AnalyticsSummaryApi(ReadApi):
    @extend_schema(
        operation_id="analyticsSummary",
        tags=ANALYTICS,
        summary="Usage and cost totals of a date range",
        parameters=QUERY_PARAMETERS,
        responses={200: SummarySerializer, **ERRORS},
    )
    def get(self, request):
        query = _query(request)
        workspace = request.auth.workspace
        summary = aggregates.summary(workspace, query)
        budget = aggregates.budget_status(workspace)
        body = {"range": range_json(query), **figures_json(summary)}
        body |= {"models": summary["models"], "projects": summary["projects"], "people": summary["people"]}
        body["budget"] = budget and {
            "budget": float(budget["budget"]),
            "spent": float(budget["spent"]),
            "percent": budget["percent"],
            "projected": float(budget["projected"]),
            "level": budget["level"],
        }
        return Response(body)


class AnalyticsBreakdownApi(ReadApi):
    @extend_schema(
        operation_id="analyticsBreakdown",
        tags=ANALYTICS,
        summary="Usage and cost per model, person, project, agent or provider",
        description="The comparison table of the Analytics page: one row per model (or owner, project, agent, "
        "provider) with tokens, cache hit rate, tokens per message, cost per session and per 1K tokens, median "
        "and p90 session duration, and the review outcome of its reviewed sessions.",
        parameters=[
            *QUERY_PARAMETERS,
            OpenApiParameter("by", str, enum=list(DIMENSIONS), description="Default model."),
            OpenApiParameter("sort", str, enum=sorted(aggregates.SORTABLE), description="Default cost."),
            OpenApiParameter("dir", str, enum=["asc", "desc"], description="Default desc; unknown values last."),
            OpenApiParameter("limit", int, description=f"Rows, default 100, at most {MAX_ROWS}."),
        ],
        responses={200: BreakdownSerializer, **ERRORS},
    )
    def get(self, request):
        query = _query(request)
        by = _choice(request, "by", DIMENSIONS, "model")
        sort = _choice(request, "sort", aggregates.SORTABLE, "cost")
        direction = _choice(request, "dir", ("asc", "desc"), "desc")
        limit = aggregates.whole_number(request.query_params.get("limit") or "100")
        if limit is None or limit < 1:
            raise exceptions.ValidationError("limit must be a whole number of at least 1")
        table = aggregates.breakdown(
            request.auth.workspace, query, by, sort=sort, direction=direction, limit=min(limit, MAX_ROWS)
        )
        rows = [
            {
                "key": None if row["key"] is None else str(row["key"]),
                "label": str(row["label"]),
                **figures_json(row),
                "review": {
                    "reviewed": row["reviewed"],
                    "golden": row["golden"],
                    "correct": row["correct"],
                    "incorrect": row["incorrect"],
                    "needsReview": row["needs_review"],
                    "goodShare": row["good_share"],
                },
            }
            for row in table.rows
        ]
        return Response({"range": range_json(query), "by": by, "rows": rows, "truncated": table.truncated})


class AnalyticsTimeseriesApi(ReadApi):
    @extend_schema(
        operation_id="analyticsTimeseries",
        tags=ANALYTICS,
        summary="Tokens or cost per day, week or month, per model or agent",
        parameters=[
            *QUERY_PARAMETERS,
            OpenApiParameter("by", str, enum=["model", "source"], description="Default model."),
            OpenApiParameter("metric", str, enum=list(aggregates.METRICS), description="Default tokens."),
            OpenApiParameter(
                "interval", str, enum=list(aggregates.INTERVALS), description="Default: by the range's length."
            ),
        ],
        responses={200: TimeseriesSerializer, **ERRORS},
    )
    def get(self, request):
        query = _query(request)
        by = _choice(request, "by", ("model", "source"), "model")
        metric = _choice(request, "metric", aggregates.METRICS, "tokens")
        interval = request.query_params.get("interval") or None
        try:
            series = aggregates.timeseries(request.auth.workspace, query, interval=interval, metric=metric, by=by)
        except QueryError as exc:
            raise exceptions.ValidationError(str(exc)) from None
        return Response(
            {
                "range": range_json(query),
                "interval": series["interval"],
                "metric": metric,
                "periods": [period.isoformat() for period in series["periods"]],
                "series": [
                    {
                        "key": None if item["key"] is None else str(item["key"]),
                        "label": str(item["label"]),
                        "values": [float(v) for v in item["values"]],
                        "total": float(item["total"]),
                    }
                    for item in series["series"]
                ],
            }
        )
