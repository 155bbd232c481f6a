"""The context page (/context/): search past sessions, pick sessions or single messages, fit
them to a token budget and copy the result as plain text, Markdown or XML-tagged blocks. Saved
searches and bookmarks are kept per person.

The picks, the budget and the format live in the browser session (per workspace), so they
survive new searches and reloads. Every action is an HTMX request answered with a fragment,
and a plain form post answered with a redirect without JavaScript.
"""

from datetime import date

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import content_disposition_header, urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.services import current_workspace
from opensync.http import HtmxHttpRequest, is_fragment_request, render_page, safe_next
from opensync.inputs import whole_number
from sessions_app.models import Message, Session
from sessions_app.selectors import SessionFilters, session_page

from .. import context, selectors, services
from ..forms import MODE_CHOICES, BookmarkForm, ContextOptionsForm, PickForm, SavedSearchForm, query_error
from ..models import Bookmark, SavedSearch
from ..selection import DOWNLOADS, Selection
from ..selectors import SessionHit

PAGE_SIZE = 20
MAX_OFFSET = 500
TEMPLATE = "search/context.html"


# --- reads ------------------------------------------------------------------------------------------


def _annotate(request, hits: list[SessionHit], selection: Selection) -> None:
    """Mark each hit picked / bookmarked (one query for the bookmarks)."""
    ids = [hit.session.pk for hit in hits]
    marked = set(Bookmark.objects.filter(user=request.user, session_id__in=ids).values_list("session_id", "message_id"))
    for hit in hits:
        hit.session_picked = selection.has_session(hit.session.pk)
        hit.message_picked = bool(hit.message_id) and selection.has_message(hit.message_id)
        hit.session_bookmarked = (hit.session.pk, None) in marked
        hit.message_bookmarked = bool(hit.message_id) and (hit.session.pk, hit.message_id) in marked


def _bookmarks(request, workspace, selection: Selection) -> list[Bookmark]:
    bookmarks = list(
        Bookmark.objects.filter(user=request.user, session__workspace=workspace).select_related("session", "message")[
            :100
        ]
    )
    for bookmark in bookmarks:
        bookmark.picked = (
            selection.has_message(bookmark.message_id)
            if bookmark.message_id
            else selection.has_session(bookmark.session_id)
        )
    return bookmarks


def _saved(request, workspace) -> list[SavedSearch]:
    return list(SavedSearch.objects.filter(user=request.user, workspace=workspace)[:50])


def _panel(request, workspace, selection: Selection, form: ContextOptionsForm | None = None) -> dict:
    blocks = context.load_blocks(workspace, selection.picks)
    built = context.build(blocks, fmt=selection.format, budget=selection.budget)
    picks = {pick.session_id: pick for pick in selection.picks}
    for block in blocks:
        pick = picks[block.session.pk]
        block.whole = pick.whole
        block.picked_entries = [entry for entry in block.candidates if entry.message_id in pick.message_ids]
    if form is None:
        form = ContextOptionsForm(initial={"budget": selection.budget, "format": selection.format})
    extension, _ = DOWNLOADS[selection.format]
    left_out_messages = sum(len(block.candidates) - len(block.entries) for block in built.blocks)
    return {
        "built": built,
        "options": form,
        "picks": selection.picks,
        "left_out_messages": left_out_messages,
        "percent": min(100, round(100 * built.tokens / built.budget)) if built.budget else 0,
        "download_name": f"context-{date.today():%Y-%m-%d}.{extension}",
    }


# --- pages and fragments -------------------------------------------------------------------------------


@login_required
@require_GET
def context_page(request: HtmxHttpRequest) -> TemplateResponse:
    workspace = current_workspace(request)
    selection = Selection(request, workspace)
    query = request.GET.get("q", "").strip()
    mode = request.GET.get("mode", selectors.FULLTEXT)
    mode = mode if mode in selectors.MODES else selectors.FULLTEXT
    offset = min(whole_number(request.GET.get("offset")) or 0, MAX_OFFSET)
    result, hits, more_url = None, [], None
    error = query_error(query)
    params = request.GET.copy()
    if query and not error:
        result = selectors.search_sessions(workspace, query, mode=mode, limit=PAGE_SIZE + 1, offset=offset)
        hits = result.hits
        if len(hits) > PAGE_SIZE and offset + PAGE_SIZE <= MAX_OFFSET:
            params["offset"] = offset + PAGE_SIZE
            more_url = f"{reverse('search:context')}?{params.urlencode()}"
    elif not query:  # no search yet: the latest sessions
        sessions, cursor = session_page(workspace, SessionFilters(), cursor=request.GET.get("cursor"), size=PAGE_SIZE)
        hits = [SessionHit(session, 0.0) for session in sessions]
        if cursor:
            params["cursor"] = cursor
            more_url = f"{reverse('search:context')}?{params.urlencode()}"
    hits = hits[:PAGE_SIZE]
    _annotate(request, hits, selection)
    page = {
        "workspace": workspace,
        "query": query,
        "mode": mode,
        "modes": MODE_CHOICES,
        "semantic_available": selectors.semantic_available(),
        "result": result,
        "hits": hits,
        "error": error,
        "more_url": more_url,
        "section": "context",
        "is_saved": bool(query)
        and not error
        and SavedSearch.objects.filter(user=request.user, workspace=workspace, query=query, mode=mode).exists(),
    }
    if not is_fragment_request(request):
        page |= _panel(request, workspace, selection)
        page |= {"bookmarks": _bookmarks(request, workspace, selection), "saved": _saved(request, workspace)}
    paging = bool(request.GET.get("offset") or request.GET.get("cursor"))
    return render_page(request, TEMPLATE, page, partial="hits" if paging else "results")


def _next(request) -> str:
    return safe_next(request, reverse("search:context"))


def _back(request) -> HttpResponse:
    return redirect(_next(request))


@login_required
@require_POST
def context_pick(request: HtmxHttpRequest) -> HttpResponse:
    workspace = current_workspace(request)
    form = PickForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest(" ".join(e for errors in form.errors.values() for e in errors))
    action, session_id, message_id = (form.cleaned_data[k] for k in ("action", "session", "message"))
    selection = Selection(request, workspace)
    released = []  # (session, message or None) whose buttons elsewhere on the page must read "add" again
    if action == "clear":
        released = [pair for pick in selection.picks for pair in _pairs(pick)]
        selection.clear()
    else:
        session = get_object_or_404(Session, workspace=workspace, pk=session_id)
        if message_id is not None:
            get_object_or_404(Message, session=session, pk=message_id)
        if action == "add":
            problem = selection.add(session.pk, message_id)
            if problem:
                return HttpResponseBadRequest(problem)
        else:
            pick = next((p for p in selection.picks if p.session_id == session.pk), None)
            if pick is not None:
                released = [(session.pk, message_id)] if message_id else _pairs(pick)
            selection.remove(session.pk, message_id)
    selection.save()
    if not is_fragment_request(request):
        return _back(request)
    if request.POST.get("target") == "button":
        picked = selection.has_message(message_id) if message_id else selection.has_session(session_id)
        response = TemplateResponse(
            request,
            "search/_pick_button.html",
            {"pick_session": session_id, "pick_message": message_id, "picked": picked, "next_url": _next(request)},
        )
        # the context panel reloads itself. A plain event name, not trigger_client_event's JSON
        # form: the same event for htmx, and what clients and the tests read
        response["HX-Trigger"] = "context-changed"
        return response
    html = render_to_string(f"{TEMPLATE}#output", _panel(request, workspace, selection), request)
    for session_pk, message_pk in released:
        html += render_to_string(
            "search/_pick_button.html",
            {"pick_session": session_pk, "pick_message": message_pk, "picked": False, "oob": True},
            request,
        )
    return HttpResponse(html)


def _pairs(pick) -> list[tuple[int, int | None]]:
    return ([(pick.session_id, None)] if pick.whole else []) + [(pick.session_id, m) for m in pick.message_ids]


@login_required
@require_http_methods(["GET", "POST"])
def context_panel(request: HtmxHttpRequest) -> HttpResponse:
    """GET: the assembled context (it reloads itself when the picks change). POST: store the
    budget and format, then the context they give. Only a POST writes: a GET may be prefetched,
    retried or followed from a link without anyone meaning to change the settings."""
    workspace = current_workspace(request)
    selection = Selection(request, workspace)
    form = None
    if request.method == "POST":
        form = ContextOptionsForm(request.POST)
        if form.is_valid():
            selection.budget, selection.format = form.cleaned_data["budget"], form.cleaned_data["format"]
            selection.save()
        elif not is_fragment_request(request):
            errors = " ".join(f"{form[name].label}: {e}" for name, errs in form.errors.items() for e in errs)
            messages.error(request, f"{errors} The last valid setting is used.")
    if not is_fragment_request(request):
        return _back(request)
    return TemplateResponse(request, f"{TEMPLATE}#output", _panel(request, workspace, selection, form))


@login_required
@require_GET
def context_download(request: HtmxHttpRequest) -> HttpResponse:
    workspace = current_workspace(request)
    selection = Selection(request, workspace)
    blocks = context.load_blocks(workspace, selection.picks)
    built = context.build(blocks, fmt=selection.format, budget=selection.budget)
    extension, content_type = DOWNLOADS[selection.format]
    response = HttpResponse(built.text, content_type=f"{content_type}; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(True, f"context-{date.today():%Y-%m-%d}.{extension}")
    return response


# --- saved searches and bookmarks --------------------------------------------------------------------


def _saved_fragment(request, workspace) -> TemplateResponse:
    return TemplateResponse(request, f"{TEMPLATE}#saved", {"saved": _saved(request, workspace)})


@login_required
@require_POST
def saved_search_create(request: HtmxHttpRequest) -> HttpResponse:
    workspace = current_workspace(request)
    form = SavedSearchForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest("Type a search to save first.")
    data = form.cleaned_data
    services.saved_search_create(
        user=request.user, workspace=workspace, query=data["q"], mode=data["mode"], name=data["name"]
    )
    if not is_fragment_request(request):
        return redirect(f"{reverse('search:context')}?{urlencode({'q': data['q'], 'mode': data['mode']})}")
    html = render_to_string(f"{TEMPLATE}#saved", {"saved": _saved(request, workspace)}, request)
    # and the "Save this search" button above the results turns into "Saved"
    saved_button = {"is_saved": True, "oob": True, "query": data["q"], "mode": data["mode"]}
    return HttpResponse(html + render_to_string(f"{TEMPLATE}#save-search", saved_button, request))


@login_required
@require_POST
def saved_search_delete(request: HtmxHttpRequest, saved_id: int) -> HttpResponse:
    workspace = current_workspace(request)
    saved = get_object_or_404(SavedSearch, pk=saved_id, user=request.user)
    services.saved_search_delete(saved_search=saved)
    if not is_fragment_request(request):
        return _back(request)
    return _saved_fragment(request, workspace)


@login_required
@require_POST
def bookmark(request: HtmxHttpRequest) -> HttpResponse:
    workspace = current_workspace(request)
    form = BookmarkForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest("Which session?")
    session = get_object_or_404(Session, workspace=workspace, pk=form.cleaned_data["session"])
    message = None
    if form.cleaned_data["message"]:
        message = get_object_or_404(Message, session=session, pk=form.cleaned_data["message"])
    on = services.bookmark_set(user=request.user, session=session, message=message, on=form.cleaned_data["on"])
    if not is_fragment_request(request):
        return _back(request)
    if request.POST.get("target") == "list":
        return _bookmarks_fragment(request, workspace)
    response = TemplateResponse(
        request,
        "search/_bookmark_button.html",
        {
            "mark_session": session.pk,
            "mark_message": message.pk if message else None,
            "marked": on,
            "next_url": _next(request),
        },
    )
    response["HX-Trigger"] = "bookmarks-changed"  # the bookmarks list reloads itself (plain name: see above)
    return response


def _bookmarks_fragment(request, workspace) -> TemplateResponse:
    selection = Selection(request, workspace)
    return TemplateResponse(request, f"{TEMPLATE}#bookmarks", {"bookmarks": _bookmarks(request, workspace, selection)})


@login_required
@require_GET
def bookmarks(request: HtmxHttpRequest) -> HttpResponse:
    workspace = current_workspace(request)
    if not is_fragment_request(request):
        return _back(request)
    return _bookmarks_fragment(request, workspace)
