"""The web plumbing every app's views share: HTMX fragments or whole pages, safe `next`
redirects and the ids of a bulk action.

Every HTMX endpoint is also a plain page or form target: HTMX requests get a fragment (a
django-template-partials partial), everything else gets the full page or a redirect.
"""

from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.middleware import HtmxDetails

from opensync.inputs import whole_number

BULK_LIMIT = 500  # ids read from one bulk form; more are ignored


class HtmxHttpRequest(HttpRequest):
    """A request that went through django_htmx's HtmxMiddleware (every request does): for typing
    views that read `request.htmx`."""

    htmx: HtmxDetails


def is_fragment_request(request: HtmxHttpRequest) -> bool:
    """HTMX asks for a fragment, except when it wants the whole page: restoring history, or a
    boosted link or form (HTMX swaps the page's body, or picks its part with hx-select)."""
    htmx = request.htmx
    return bool(htmx) and not htmx.history_restore_request and not htmx.boosted


def render_page(
    request: HtmxHttpRequest, template: str, context: dict, *, partial: str | None = None, status: int = 200
) -> TemplateResponse:
    """The page, or just `partial` of it for HTMX. Varies on HX-Request so caches keep both apart."""
    name = f"{template}#{partial}" if partial and is_fragment_request(request) else template
    response = TemplateResponse(request, name, context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


def safe_next(request: HttpRequest, fallback: str) -> str:
    """`next` from the form or the query string when it is a path on this site, else `fallback`."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    # a path on this site only: redirect() would read any other word ("²", "home") as a view name
    # to reverse, a 500 when it isn't one
    if target.startswith("/") and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback


def bulk_ids(request: HttpRequest) -> list[int]:
    """The ticked rows' ids of a bulk form (at most BULK_LIMIT); values that aren't ids are skipped."""
    ids = []
    for raw in request.POST.getlist("ids")[:BULK_LIMIT]:
        if (pk := whole_number(raw)) is not None:
            ids.append(pk)
    return ids
