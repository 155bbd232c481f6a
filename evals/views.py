"""The review controls of the session viewer: eval-ready, status, tags, notes and expected
output. Each posts only its own field to one endpoint and gets the review panel back (HTMX), or
a redirect to the viewer (no JavaScript)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from accounts.selectors import role_in
from accounts.services import current_workspace
from opensync.http import HtmxHttpRequest, bulk_ids, is_fragment_request, safe_next
from opensync.inputs import whole_number
from sessions_app.forms import SessionFilterForm
from sessions_app.models import Message, Session
from sessions_app.selectors import REVIEW, can_with_role, get_session_for_user
from sessions_app.viewer import viewer_context

from .forms import BulkReviewForm, EvalFilterForm
from .selectors import attach_labels, eval_counts, eval_sessions, queue_position, review_context
from .services import ReviewError, message_label, session_review

FIELDS = ("eval_status", "eval_notes", "expected_output")


def _changes(post) -> dict:
    changes: dict = {}
    if "eval_ready" in post:
        changes["eval_ready"] = post["eval_ready"] in ("1", "true", "on")
    for field in FIELDS:
        if field in post:
            changes[field] = post[field]
    if post.get("add_tag", "").strip():
        changes["add_tags"] = post["add_tag"].split(",")
    if post.get("remove_tag"):
        changes["remove_tags"] = [post["remove_tag"]]
    return changes


@login_required
@require_http_methods(["GET", "POST"])
def review(request: HtmxHttpRequest, session_id: int) -> HttpResponse:
    session = get_session_for_user(request.user, session_id, action=REVIEW)
    viewer = reverse("sessions:detail", args=[session.pk])
    if request.method == "GET":
        if not is_fragment_request(request):
            return redirect(f"{viewer}#review-panel")
        return TemplateResponse(
            request, "evals/_review_panel.html", {"session": session, **review_context(request.user, session)}
        )
    error = saved = None
    try:
        events = session_review(session=session, actor=request.user, **_changes(request.POST))
        saved = "Saved." if events else "No change."
    except ReviewError as exc:
        error = str(exc)
    if not is_fragment_request(request):
        if error:
            messages.error(request, error)
        else:
            messages.success(request, f"Review {saved.lower()}")
        return redirect(f"{viewer}#review-panel")
    context = {"session": session, **review_context(request.user, session, error=error, saved=saved)}
    return TemplateResponse(request, "evals/_review_panel.html", context)


@login_required
@require_http_methods(["GET"])
def queue(request: HtmxHttpRequest) -> HttpResponse:
    """Step through the sessions matching the list's filters, one at a time, with keyboard
    shortcuts (static/js/app.js, data-review-queue)."""
    workspace = current_workspace(request)
    form = SessionFilterForm.for_request(request, workspace)
    position = whole_number(request.GET.get("pos"))
    session, position, total = queue_position(request.user, workspace, form.filters(), position - 1 if position else 0)
    params = request.GET.copy()

    def at(index: int) -> str:
        params["pos"] = index + 1
        return f"{reverse('evals:queue')}?{params.urlencode()}"

    context = {"workspace": workspace, "form": form, "total": total, "position": position, "section": "evals"}
    if session is not None:
        session.viewer_role = role_in(request.user, workspace)  # what else the page may offer
        # the queue holds only sessions the user may review (reviewable_sessions)
        context |= viewer_context(request, session) | review_context(request.user, session, force=True)
        context |= {
            "previous_url": at(position - 1) if position > 0 else None,
            "next_url": at(position + 1) if position + 1 < total else None,
        }
    return TemplateResponse(request, "evals/queue.html", context)


@login_required
@require_http_methods(["POST"])
def label(request: HtmxHttpRequest, session_id: int, message_id: int) -> HttpResponse:
    """Good / bad on an assistant turn, and its corrected answer."""
    session = get_session_for_user(request.user, session_id, action=REVIEW)
    message = get_object_or_404(Message, session=session, pk=message_id)
    changes = {field: request.POST[field] for field in ("verdict", "corrected_answer") if field in request.POST}
    error = saved = None
    try:
        saved = "Saved." if message_label(message=message, actor=request.user, **changes) else "No change."
    except ReviewError as exc:
        error = str(exc)
    if not is_fragment_request(request):
        if error:
            messages.error(request, error)
        return redirect(f"{reverse('sessions:detail', args=[session.pk])}?at={message.pk}#m-{message.pk}")
    attach_labels([message])
    context = {"session": session, "m": message, "label_error": error, "label_saved": saved}
    return TemplateResponse(request, "evals/_message_label.html", context)


PAGE_SIZE = 50


@login_required
@require_http_methods(["GET"])
def evals_page(request: HtmxHttpRequest) -> HttpResponse:
    """The workspace's eval-ready sessions: filters, counts per status and agent, pages, bulk changes."""
    workspace = current_workspace(request)
    form = EvalFilterForm.for_request(request, workspace)
    sessions = eval_sessions(workspace, form.filters(), tags=form.tag_list(), reviewer=form.reviewer_id())
    page = Paginator(sessions.select_related("owner", "reviewed_by"), PAGE_SIZE).get_page(request.GET.get("page"))
    params = request.GET.copy()
    params.pop("page", None)
    context = {
        "workspace": workspace,
        "form": form,
        "page": page,
        "counts": eval_counts(sessions),
        "query": params.urlencode(),
        "bulk_form": BulkReviewForm(),
        "section": "evals",
    }
    return TemplateResponse(request, "evals/evals.html", context)


@login_required
@require_http_methods(["POST"])
def evals_bulk(request: HtmxHttpRequest) -> HttpResponse:
    """Bulk status or tag changes on ticked rows; each session's review permission is checked."""
    workspace = current_workspace(request)
    back = safe_next(request, reverse("evals:evals"))
    if not back.startswith("/evals/"):  # back to the Evals page (or the queue), nowhere else
        back = reverse("evals:evals")
    form = BulkReviewForm(request.POST)
    ids = bulk_ids(request)
    if not form.is_valid() or not ids:
        problem = " ".join(e for errors in form.errors.values() for e in errors) or "Tick at least one session."
        messages.error(request, problem)
        return redirect(back)
    role = role_in(request.user, workspace)
    sessions = list(Session.objects.filter(workspace=workspace, pk__in=ids).select_related("owner"))
    allowed_sessions = [s for s in sessions if can_with_role(request.user, s, role, REVIEW)]
    action, changed = form.cleaned_data["action"], 0
    changes = {
        "status": {"eval_status": form.cleaned_data["status"]},
        "add_tag": {"add_tags": [form.cleaned_data["tag"]]},
        "remove_tag": {"remove_tags": [form.cleaned_data["tag"]]},
        "not_ready": {"eval_ready": False},
    }[action]
    try:
        for session in allowed_sessions:
            changed += bool(session_review(session=session, actor=request.user, **changes))
    except ReviewError as exc:
        messages.error(request, str(exc))
        return redirect(back)
    text = f"Updated {changed} of {len(allowed_sessions)} session{'s' if len(allowed_sessions) != 1 else ''}."
    skipped = len(ids) - len(allowed_sessions)
    if skipped:
        text += f" Skipped {skipped} you can't review."
    messages.success(request, text)
    return redirect(back)
