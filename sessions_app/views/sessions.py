"""The session list and the session viewer, with their HTMX actions.

Every HTMX endpoint is also a plain page or form target: HTMX requests get a fragment (a
django-template-partials partial), everything else gets the full page or a redirect.
"""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.http import content_disposition_header, url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, reswap, retarget

from accounts.selectors import plugin_base_url
from accounts.services import current_workspace

from .. import exports, selectors, services
from ..forms import RenameForm, SessionFilterForm, ShareForm
from ..inputs import whole_number
from ..models import Message, Session
from ..rendering import message_blocks
from ..selectors import EDIT, REVIEW

PAGE_SIZE = 50
MESSAGE_PAGE_SIZE = 100
BULK_LIMIT = 500


def is_fragment_request(request: HttpRequest) -> bool:
    """HTMX asks for a fragment, except when restoring history (it needs the whole page)."""
    return bool(request.htmx) and not request.htmx.history_restore_request


def render(request, template: str, context: dict, *, partial: str | None = None, status: int = 200):
    """The page, or just `partial` of it for HTMX. Varies on HX-Request so caches keep both apart."""
    name = f"{template}#{partial}" if partial and is_fragment_request(request) else template
    response = TemplateResponse(request, name, context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


def safe_next(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    # a path on this site only: redirect() would read any other word ("²", "home") as a view name
    # to reverse, a 500 when it isn't one
    if target.startswith("/") and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback


# --- the list ---------------------------------------------------------------------------------------


@login_required
@require_GET
def session_list(request: HttpRequest) -> TemplateResponse:
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
    return render(request, "sessions_app/session_list.html", context, partial="rows" if cursor else "results")


def bulk_ids(request: HttpRequest) -> list[int]:
    ids = []
    for raw in request.POST.getlist("ids")[:BULK_LIMIT]:
        if (pk := whole_number(raw)) is not None:
            ids.append(pk)
    return ids


@login_required
@require_POST
def session_bulk(request: HttpRequest) -> HttpResponse:
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
    allowed = [s for s in sessions if selectors.can(request.user, s, roles.get(s.workspace_id), permission)]
    skipped = len(sessions) - len(allowed)
    ids = [s.pk for s in allowed]
    context = {"sessions": allowed, "skipped": skipped, "next": back}

    if action == "delete" and request.POST.get("confirmed") != "yes":
        if not allowed:
            return _bulk_done(request, back, f"You can't delete {_count(skipped)}.", [], "", error=True)
        return render(request, "sessions_app/bulk_delete_confirm.html", context, partial="dialog")

    if action == "eval_ready":
        from evals.services import sessions_mark_eval_ready  # recorded in the review history

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


def message_window(request: HttpRequest, session: Session, *, fragment: bool = False, public: bool = False) -> dict:
    """Which messages a viewer request shows: from the start, from `?at=<message id>`,
    after `?after=<cursor>` (load more) or before `?before=<cursor>` (load earlier).

    A fragment extends the page in one direction only, so it carries only that direction's link.
    Each message comes with the URL of its whole text (Copy, "Show the full text"): the page
    itself carries only what it shows. The public page names a message by its position in the
    shared session, never by its id.
    """
    before = selectors.decode_message_position(request.GET.get("before"))
    after = selectors.decode_message_position(request.GET.get("after"))
    at = whole_number(request.GET.get("at"))
    target = None
    if at is not None:
        target = session.messages.filter(pk=at).only("created_at", "order").first()
    if before:
        rows, more_before = selectors.messages_page(session, before=before, size=MESSAGE_PAGE_SIZE)
        # With HTMX the page below is already on screen; a plain page links on to it.
        more_after = not fragment and bool(rows)
    else:
        if target is not None:
            # start at the target itself: just after (its time, its order - 1)
            after = (target.created_at, target.order - 1)
        rows, more_after = selectors.messages_page(session, after=after, size=MESSAGE_PAGE_SIZE)
        more_before = bool(after) and bool(rows) and not fragment and _has_before(session, rows[0])
    return {
        "items": [(m, message_blocks(m.text_content, list(m.parts.all())), text_url(session, m, public)) for m in rows],
        "before_cursor": selectors.message_position(rows[0]) if rows and more_before else None,
        "after_cursor": selectors.message_position(rows[-1]) if rows and more_after else None,
        "show_before": more_before,
        "show_after": more_after,
        "target": target.pk if target else None,
    }


def text_url(session: Session, message: Message, public: bool) -> str:
    if public:
        return reverse("sessions:public-message-text", args=[session.share_slug, selectors.message_position(message)])
    return reverse("sessions:message-text", args=[session.pk, message.pk])


def message_text_response(message: Message) -> HttpResponse:
    """A message's whole text as Markdown, what Copy puts on the clipboard. Plain text: a
    browser shows it as it is (never as HTML), fast even at megabytes."""
    response = HttpResponse(exports.message_markdown(message), content_type="text/plain; charset=utf-8")
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _has_before(session: Session, first: Message) -> bool:
    _, more = selectors.messages_page(session, before=(first.created_at, first.order), size=0)
    return more


def share_context(request: HttpRequest, session: Session) -> dict:
    can_edit = selectors.allowed(request.user, session, EDIT)
    public_url = None
    if session.share_slug:
        public_url = plugin_base_url(request) + reverse("sessions:public", args=[session.share_slug])
    return {
        "session": session,
        "can_edit": can_edit,
        "share_form": ShareForm(initial={"action": "share"}) if can_edit else None,
        "public_url": public_url,
    }


def viewer_context(request: HttpRequest, session: Session, *, fragment: bool = False) -> dict:
    from search.selection import viewer_marks  # the context page's picks and bookmarks

    window = message_window(request, session, fragment=fragment)
    selectors.attach_message_costs(session, [m for m, _, _ in window["items"]])
    can_review = selectors.allowed(request.user, session, REVIEW)
    if can_review:
        from evals.selectors import attach_labels  # reviewers' labels on assistant turns

        attach_labels([m for m, _, _ in window["items"] if m.role == "assistant"])
    return {
        "can_label": can_review,
        **share_context(request, session),
        "messages_url": reverse("sessions:messages", args=[session.pk]),
        **window,
        **viewer_marks(request, session, [m.pk for m, _, _ in window["items"]]),
    }


@login_required
@require_GET
def session_detail(request: HttpRequest, session_id: int) -> TemplateResponse:
    from evals.views import review_context  # the review panel

    session = selectors.get_session_for_user(request.user, session_id)
    context = viewer_context(request, session)
    if not is_fragment_request(request):
        context |= review_context(request, session)
    return render(request, "sessions_app/session_detail.html", context)


@login_required
@require_GET
def session_messages(request: HttpRequest, session_id: int) -> TemplateResponse:
    """More messages of a long session: a fragment for HTMX, the viewer at that point otherwise."""
    session = selectors.get_session_for_user(request.user, session_id)
    if not is_fragment_request(request):
        query = urlencode({k: v for k, v in request.GET.items() if k in ("after", "before", "at")})
        return redirect(f"{reverse('sessions:detail', args=[session.pk])}?{query}")
    context = viewer_context(request, session, fragment=True)
    return TemplateResponse(request, "sessions_app/session_detail.html#message-page", context)


@login_required
@require_GET
def message_text(request: HttpRequest, session_id: int, message_id: int) -> HttpResponse:
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
def session_rename(request: HttpRequest, session_id: int) -> HttpResponse:
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
    return render(request, "sessions_app/session_rename.html", context, partial="rename-form", status=status)


@login_required
@require_POST
def session_share(request: HttpRequest, session_id: int) -> HttpResponse:
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
        return render(request, "sessions_app/session_detail.html", context, status=status)
    context = share_context(request, session) | {"share_form": form if form.errors else ShareForm()}
    return TemplateResponse(request, "sessions_app/session_detail.html#share", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def session_delete(request: HttpRequest, session_id: int) -> HttpResponse:
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
        return render(request, "sessions_app/session_delete.html", {"session": session}, partial="dialog")
    title = session.title or session.external_id
    services.sessions_delete(session_ids=[session.pk])
    messages.success(request, f"Deleted “{title}”.")
    target = safe_next(request, reverse("sessions:list"))
    if target == reverse("sessions:detail", args=[session_id]):
        target = reverse("sessions:list")
    return HttpResponseClientRedirect(target) if request.htmx else redirect(target)


@login_required
@require_GET
def session_export(request: HttpRequest, session_id: int, fmt: str) -> StreamingHttpResponse:
    session = selectors.get_session_for_user(request.user, session_id)
    if fmt == "md":
        body, content_type = exports.session_markdown(session, exports.iter_messages(session)), "text/markdown"
    elif fmt == "json":
        body, content_type = exports.session_json(session, exports.iter_messages(session)), "application/json"
    else:
        raise Http404("Unknown export format")
    response = StreamingHttpResponse(body, content_type=f"{content_type}; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(True, exports.filename(session, fmt))
    return response
