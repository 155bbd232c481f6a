"""The Overview (home): the current workspace at a glance, from the daily rollups
(`sessions_app.analytics`), so it runs a fixed number of queries whatever the workspace holds."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET

from accounts.models import Role
from accounts.selectors import plugin_base_url, role_in
from accounts.services import current_workspace
from sessions_app import analytics as aggregates

RECENT_LIMIT = 8
TOP_LIMIT = 5


@login_required
@require_GET
def home(request: HttpRequest) -> TemplateResponse:
    workspace = current_workspace(request)
    totals = aggregates.overview(workspace)
    context = {
        "workspace": workspace,
        "totals": totals,
        "days": aggregates.OVERVIEW_DAYS,
        "base_url": plugin_base_url(request),
    }
    # An empty workspace gets the setup instructions and none of the other queries.
    if totals["all"]["sessions"]:
        recent = totals["query"]
        top = {"sort": "total_tokens", "limit": TOP_LIMIT}
        context |= {
            "daily": aggregates.daily(workspace, recent),
            "recent_sessions": aggregates.recent_sessions(workspace, limit=RECENT_LIMIT),
            "top_projects": aggregates.breakdown(workspace, recent, "project", **top),
            "top_models": aggregates.breakdown(workspace, recent, "model", **top),
            "budget": aggregates.budget_status(workspace) if role_in(request.user, workspace) == Role.ADMIN else None,
        }
    return TemplateResponse(request, "sessions_app/home.html", context)
