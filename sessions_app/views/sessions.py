"""The session list and the session viewer, with their HTMX actions.

Every HTMX endpoint is also a plain page or form target (opensync.http.render_page): HTMX
requests get a fragment, everything else gets the full page or a redirect.
"""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, reswap, retarget

from accounts.selectors import plugin_base_url
from accounts.services import current_workspace
from evals.selectors import review_context
from evals.services import sessions_mark_eval_ready  # evals owns the review state and records each change
from opensync.http import HtmxHttpRequest, bulk_ids, is_fragment_request, render_page, safe_next

from .. import exports, selectors, services
from ..forms import RenameForm, SessionFilterForm, ShareForm
from ..models import Session
from ..selectors import EDIT, REVIEW
from ..viewer import message_text_response, share_context, viewer_context

PAGE_SIZE = 50


# --- the list ---------------------------------------------------------------------------------------


@login_required
@require_GET
def session_list(request: HtmxHttpRequest) -> TemplateResponse:
    workspace = current_workspace(request)
    form = SessionFilterForm.for_request(request, workspace)
    filters = form.filters()
    cursor = request.GET.get("cursor") or None
    sessions, next_cursor = selectors.session_page(workspace, filters, cursor=cursor, size=PAGE_SIZE)
    query = request.GET.copy()
    query.pop("cursor", None)
    next_url = None
    if next_cursor:
        query["cursor"] = next_cursor
        next_url = f"{reverse('sessions:list')}?{query.urlencode()}"
    empty_workspace = not sessions and not cursor and not Session.objects.filter(workspace=workspace).exists()
    context = {
        "workspace": workspace,
        "form": form,
        "sessions": sessions,
        "next_url": next_url,
        "filtered": form.active,
        "empty_workspace": empty_workspace,
        "base_url": plugin_base_url(request),
        "show_owner": not workspace.is_personal,
        "list_url": request.get_full_path(),
    }
    # "Load more" appends rows; a filter change replaces the results; anything else is the page.
    return render_page(request, "sessions_app/session_list.html", context, partial="rows" if cursor else "results")


@login_required
@require_POST
def session_bulk(request: HtmxHttpRequest) -> HttpResponse:
    """Bulk actions on selected rows: mark eval-ready, or delete (after a confirmation).

    Only sessions the user may change are touched; the rest are counted as skipped.
    """
    action = request.POST.get("action")
    if action not in ("eval_ready", "delete"):
        return HttpResponse("Unknown bulk action.", status=400)
    back = safe_next(request, reverse("sessions:list"))
    sessions = list(
        Session.objects.filter(pk__in=bulk_ids(request), workspace__memberships__user=request.user)
        .select_related("owner")
        .order_by("-updated_at")
    )
    roles = dict(request.user.memberships.values_list("workspace_id", "role"))
    permission = REVIEW if action == "eval_ready" else EDIT
    allowed = [s for s in sessions if selectors.can_with_role(request.user, s, roles.get(s.workspace_id), permission)]
    skipped = len(sessions) - len(allowed)
    ids = [s.pk for s in allowed]
    context = {"sessions": allowed, "skipped": skipped, "next": back}

    if action == "delete" and request.POST.get("confirmed") != "yes":
        if not allowed:
            return _bulk_done(request, back, f"You can't delete {_count(skipped)}.", [], "", error=True)
        return render_page(request, "sessions_app/bulk_delete_confirm.html", context, partial="dialog")

    if action == "eval_ready":
        sessions_mark_eval_ready(session_ids=ids, actor=request.user)
        for session in allowed:
            session.eval_ready = True
        text = f"Marked {_count(len(ids))} eval-ready."
    else:
        deleted = services.sessions_delete(session_ids=ids)["sessions"]
        text = f"Deleted {_count(deleted)}."
    if skipped:
        text += f" Skipped {_count(skipped)} you can't change."
    return _bulk_done(request, back, text, allowed, action)


def _count(n: int) -> str:
    return f"{n} session" if n == 1 else f"{n} sessions"


def _bulk_done(request, back, text, sessions, action, *, error=False):
    if not request.htmx:
        (messages.error if error else messages.success)(request, text)
        return redirect(back)
    context = {
        "text": text,
        "sessions": sessions,
        "action": action,
        "error": error,
        "show_owner": not current_workspace(request).is_personal,
    }
    # The status line says what happened; rows are updated or removed out of band.
    response = TemplateResponse(request, "sessions_app/session_list.html#bulk-result", context)
    return reswap(retarget(response, "#bulk-status"), "innerHTML")


# --- the viewer -------------------------------------------------------------------------------------


@login_required
@require_GET
def session_detail(request: HtmxHttpRequest, session_id: int) -> TemplateResponse:
    session = selectors.get_session_for_user(request.user, session_id)
    context = viewer_context(request, session)
    if not is_fragment_request(request):
        context |= review_context(request.user, session)  # the review panel
    return render_page(request, "sessions_app/session_detail.html", context)


@login_required
@require_GET
def session_messages(request: HtmxHttpRequest, session_id: int) -> TemplateResponse:
    """More messages of a long session: a fragment for HTMX, the viewer at that point otherwise."""
    session = selectors.get_session_for_user(request.user, session_id)
    if not is_fragment_request(request):
        query = urlencode({k: v for k, v in request.GET.items() if k in ("after", "before", "at")})
        return redirect(f"{reverse('sessions:detail', args=[session.pk])}?{query}")
    context = viewer_context(request, session, fragment=True)
    return TemplateResponse(request, "sessions_app/session_detail.html#message-page", context)


@login_required
@require_GET
def message_text(request: HtmxHttpRequest, session_id: int, message_id: int) -> HttpResponse:
    """One message's whole text, fetched when it is copied or opened: 404 where the viewer is."""
    session = selectors.get_session_for_user(request.user, session_id)
    message = session.messages.prefetch_related("parts").filter(pk=message_id).first()
    if message is None:
        raise Http404("No such message")
    return message_text_response(message)


def _title(request, session):
    return TemplateResponse(request, "sessions_app/session_detail.html#title", {"session": session, "can_edit": True})


@login_required
@require_http_methods(["GET", "POST"])
def session_rename(request: HtmxHttpRequest, session_id: int) -> HttpResponse:
    session = selectors.get_session_for_user(request.user, session_id, action=EDIT)
    if request.GET.get("cancel") and request.htmx:
        return _title(request, session)
    form = RenameForm(request.POST or None, initial={"title": session.title or ""})
    if request.method == "POST" and form.is_valid():
        services.session_rename(session=session, title=form.cleaned_data["title"])
        if not request.htmx:
            messages.success(request, "Session renamed.")
            return redirect("sessions:detail", session.pk)
        return _title(request, session)
    status = 422 if form.errors else 200
    context = {"session": session, "form": form, "can_edit": True}
    return render_page(request, "sessions_app/session_rename.html", context, partial="rename-form", status=status)


@login_required
@require_POST
def session_share(request: HtmxHttpRequest, session_id: int) -> HttpResponse:
    session = selectors.get_session_for_user(request.user, session_id, action=EDIT)
    form = ShareForm(request.POST)
    if form.is_valid():
        if form.cleaned_data["action"] == "share":
            services.session_share(session=session, expires_in=form.expires_in())
            text = "Anyone with the link can now read this session."
        else:
            services.session_unshare(session=session)
            text = "The public link is switched off."
        if not request.htmx:
            messages.success(request, text)
            return redirect("sessions:detail", session.pk)
    status = 422 if form.errors else 200
    if not request.htmx:
        context = viewer_context(request, session) | {"share_form": form}
        return render_page(request, "sessions_app/session_detail.html", context, status=status)
    context = share_context(request, session) | {"share_form": form if form.errors else ShareForm()}
    return TemplateResponse(request, "sessions_app/session_detail.html#share", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def session_delete(request: HtmxHttpRequest, session_id: int) -> HttpResponse:
    """GET: the confirmation (a modal for HTMX, a page otherwise). POST: delete."""
    try:
        session = selectors.get_session_for_user(request.user, session_id, action=EDIT)
    except Http404:
        if request.method == "GET":
            raise
        # A retried POST (double click, flaky network) finds it gone: the outcome is the same.
        messages.info(request, "That session no longer exists.")
        target = reverse("sessions:list")
        return HttpResponseClientRedirect(target) if request.htmx else redirect(target)
    if request.method == "GET":
        return render_page(request, "sessions_app/session_delete.html", {"session": session}, partial="dialog")
    title = session.title or session.external_id
    services.sessions_delete(session_ids=[session.pk])
    messages.success(request, f"Deleted “{title}”.")
    target = safe_next(request, reverse("sessions:list"))
    if target == reverse("sessions:detail", args=[session_id]):
        target = reverse("sessions:list")
    return HttpResponseClientRedirect(target) if request.htmx else redirect(target)


@login_required
@require_GET
def session_export(request: HtmxHttpRequest, session_id: int, fmt: str) -> StreamingHttpResponse:
    session = selectors.get_session_for_user(request.user, session_id)
    if fmt == "md":
        body, content_type = exports.download_markdown(session, exports.iter_messages(session)), "text/markdown"
    elif fmt == "json":
        body, content_type = exports.download_json(session, exports.iter_messages(session)), "application/json"
    else:
        raise Http404("Unknown export format")
    response = StreamingHttpResponse(body, content_type=f"{content_type}; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(True, exports.download_filename(session, fmt))
    return response
