"""Overview (home) and Analytics pages: read-only aggregates of the current workspace.

Every number comes from `sessions_app.analytics`, one SQL aggregate per block, so both pages run
a fixed number of queries whatever the workspace holds.
"""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET

from accounts.selectors import current_workspace, enabled_sources, plugin_base_url
from sessions_app import analytics as aggregates

OVERVIEW_DAYS = 30
RECENT_LIMIT = 8
TOP_LIMIT = 5
TABLE_LIMIT = 50

PERIODS = {"7": 7, "30": 30, "90": 90, "all": None}
PERIOD_LABELS = {"7": "Last 7 days", "30": "Last 30 days", "90": "Last 90 days", "all": "All time"}
DEFAULT_PERIOD = "30"


@login_required
@require_GET
def home(request: HttpRequest) -> TemplateResponse:
    workspace = current_workspace(request)
    since = aggregates.window_start(OVERVIEW_DAYS)
    totals = aggregates.overview_totals(workspace, since=since)
    context = {"workspace": workspace, "totals": totals, "days": OVERVIEW_DAYS, "base_url": plugin_base_url(request)}
    # An empty workspace gets the setup instructions and none of the other queries.
    if totals["all"]["sessions"]:
        context |= {
            "daily": aggregates.daily_tokens(workspace, days=OVERVIEW_DAYS),
            "recent_sessions": aggregates.recent_sessions(workspace, limit=RECENT_LIMIT),
            "top_projects": aggregates.usage_by_project(workspace, since=since, limit=TOP_LIMIT),
            "top_models": aggregates.usage_by(workspace, aggregates.model_key(), since=since, limit=TOP_LIMIT),
        }
    return TemplateResponse(request, "sessions_app/home.html", context)


@login_required
@require_GET
def analytics(request: HttpRequest) -> TemplateResponse:
    workspace = current_workspace(request)
    sources = enabled_sources(request.user)
    # Unknown values fall back to the defaults rather than erroring: these are bookmarkable URLs.
    period = request.GET.get("days", DEFAULT_PERIOD)
    if period not in PERIODS:
        period = DEFAULT_PERIOD
    source = request.GET.get("source", "")
    if source not in {value for value, _ in sources}:
        source = ""
    days = PERIODS[period]
    since = aggregates.window_start(days) if days else None
    scope = {"since": since, "source": source or None}
    return TemplateResponse(
        request,
        "sessions_app/analytics.html",
        {
            "workspace": workspace,
            "period": period,
            "period_label": PERIOD_LABELS[period],
            "periods": PERIOD_LABELS.items(),
            "source": source,
            "source_label": dict(sources).get(source),
            "since": since,
            "sources": sources,
            "summary": aggregates.summary(workspace, **scope),
            "by_model": aggregates.usage_by(workspace, aggregates.model_key(), limit=TABLE_LIMIT, **scope),
            "by_provider": aggregates.usage_by_provider(workspace, limit=TABLE_LIMIT, **scope),
            "by_source": aggregates.usage_by_source(workspace, **scope),
            "projects": aggregates.usage_by_project(workspace, order_by=("-last_active",), limit=TABLE_LIMIT, **scope),
            "table_limit": TABLE_LIMIT,
        },
    )
