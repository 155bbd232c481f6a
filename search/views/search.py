"""The search page: full-text, semantic or hybrid over the current workspace, with the session
list's filters. Results are an HTMX partial (and a plain page without JavaScript)."""

from django.contrib.auth.decorators import login_required
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_GET

from accounts.services import current_workspace
from opensync.http import HtmxHttpRequest, render_page
from opensync.inputs import whole_number
from sessions_app.forms import SessionFilterForm

from .. import selectors
from ..forms import MODE_CHOICES, query_error

PAGE_SIZE = 20
MAX_OFFSET = 500  # deeper than anyone pages through ranked results


@login_required
@require_GET
def search(request: HtmxHttpRequest) -> TemplateResponse:
    workspace = current_workspace(request)
    form = SessionFilterForm.for_request(request, workspace)
    filters = form.filters()
    query = request.GET.get("q", "").strip()
    mode = request.GET.get("mode", selectors.FULLTEXT)
    mode = mode if mode in selectors.MODES else selectors.FULLTEXT
    offset = min(whole_number(request.GET.get("offset")) or 0, MAX_OFFSET)
    error = query_error(query)
    result = None
    if query and not error:
        result = selectors.search_sessions(
            workspace, query, mode=mode, limit=PAGE_SIZE + 1, offset=offset, filters=filters
        )
    more_url = None
    if result and len(result.hits) > PAGE_SIZE:
        result.hits = result.hits[:PAGE_SIZE]
        if offset + PAGE_SIZE <= MAX_OFFSET:
            params = request.GET.copy()
            params["offset"] = offset + PAGE_SIZE
            more_url = f"{reverse('search:search')}?{params.urlencode()}"
    context = {
        "workspace": workspace,
        "form": form,
        "query": query,
        "mode": mode,
        "modes": MODE_CHOICES,
        "semantic_available": selectors.semantic_available(),
        "result": result,
        "error": error,
        "more_url": more_url,
        "offset": offset,
        "filtered": form.active,
    }
    return render_page(request, "search/search.html", context, partial="hits" if offset else "results")
