from django.contrib.auth.decorators import login_required
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET

from accounts.selectors import current_workspace, plugin_base_url

from . import selectors

RECENT_LIMIT = 50


@login_required
@require_GET
def home(request: HttpRequest) -> TemplateResponse:
    workspace = current_workspace(request)
    sessions = list(selectors.sessions_for_workspace(workspace)[: RECENT_LIMIT + 1])
    return TemplateResponse(
        request,
        "sessions_app/home.html",
        {
            "workspace": workspace,
            "sessions": sessions[:RECENT_LIMIT],
            "more": len(sessions) > RECENT_LIMIT,
            "limit": RECENT_LIMIT,
            "base_url": plugin_base_url(request),
        },
    )


@login_required
@require_GET
def session_detail(request: HttpRequest, session_id: int) -> TemplateResponse:
    session = selectors.get_session_for_user(request.user, session_id)
    return TemplateResponse(
        request,
        "sessions_app/session_detail.html",
        {"session": session, "session_messages": selectors.messages_of(session)},
    )
