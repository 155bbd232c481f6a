"""Eval exports in the web UI: the export modal (format, options, scope, a preview with
validation warnings), the build's progress, past exports, downloads and deletion.

Every page works without JavaScript too: the modal is a page with the dialog open, and the
progress page refreshes itself.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, QueryDict
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import HttpResponseClientRedirect

from accounts.models import Role
from accounts.selectors import enabled_sources, role_in
from accounts.services import current_workspace
from opensync.http import HtmxHttpRequest, render_page
from opensync.inputs import whole_number
from opensync.jobs import JobStatus
from sessions_app.selectors import filter_choices, workspace_members

from .exchanges import conversations
from .export import preview, resolve, warning_lines
from .export_jobs import ExportError, export_job_check_stale, export_job_delete, export_job_start
from .formats import FORMATS, TURN_MODES, Options
from .forms import EvalFilterForm, ExportForm
from .next_steps import steps
from .responses import job_file_response
from .selectors import (
    exports_for_workspace,
    filter_scope,
    get_export_for_user,
    previous_export,
    scope_sessions,
    selection_scope,
)

PREVIEW_SESSIONS = 50  # sessions read to show the preview and its warnings
PREVIEW_MESSAGES = 20_000  # and their messages, past the first session (each session is read whole)
PREVIEW_RECORDS = 3
EXPORTS_PAGE = 25


def _filter_form(workspace, user, raw: str) -> EvalFilterForm:
    """The Evals page's filters, from its query string (the modal carries it in `filters`)."""
    return EvalFilterForm(
        QueryDict(raw),
        sources=enabled_sources(user),
        choices=filter_choices(workspace),
        members=workspace_members(workspace),
    )


def _scope(workspace, user, form: ExportForm) -> tuple[dict, str]:
    """(the export scope, a description of it) from a valid export form."""
    data = form.cleaned_data
    if data["scope"] == "selection":
        n = len(data["ids"])
        return selection_scope(data["ids"]), f"{n} ticked session{'s' if n != 1 else ''}"
    filters = _filter_form(workspace, user, data.get("filters") or "")
    described = [
        f"{filters.fields[name].label or name}: {value}"
        for name, value in filters.data.items()
        if value and name in filters.fields and name not in filters.errors and name != "page"
    ]
    scope = filter_scope(filters.filters(), tags=filters.tag_list(), reviewer=filters.reviewer_id())
    label = "Eval-ready sessions" + (f" ({'; '.join(described)})" if described else "")
    return scope, label


OPTION_FIELDS = ("include_tools", "include_system", "anonymize_paths", "redact_secrets", "code_blocks_only")


def _preview_context(request: HtmxHttpRequest, workspace, form: ExportForm) -> dict:
    base = {
        "form": form,
        "option_fields": [form[name] for name in OPTION_FIELDS],
        "ticked": [value for value in form.data.getlist("ids") if whole_number(value) is not None],
        "fmt": FORMATS.get(form.data.get("format")),
    }
    if not form.is_valid():
        return base | {"preview_error": True}
    scope, label = _scope(workspace, request.user, form)
    fmt, options = resolve(form.cleaned_data["format"], form.options())
    sessions = scope_sessions(workspace, scope)
    total = sessions.count()
    sample = _preview_sample(sessions)
    shown, report = preview(fmt, options, conversations(sample), show=PREVIEW_RECORDS)
    return base | {
        "fmt": fmt,
        "total": total,
        "scope_label": label,
        "checked": len(sample),
        "shown": shown,
        "report": report,
        "warnings": report.warning_lines(),
        "filename": fmt.filename(options, "<date>"),
    }


def _preview_sample(sessions) -> list:
    """The first sessions, up to PREVIEW_SESSIONS of them and PREVIEW_MESSAGES messages (the
    first always): 50 long sessions would take the preview as long as the export."""
    sample, messages = [], 0
    for session in sessions[:PREVIEW_SESSIONS]:
        if sample and messages + session.message_count > PREVIEW_MESSAGES:
            break
        sample.append(session)
        messages += session.message_count
    return sample


@login_required
@require_http_methods(["GET", "POST"])
def export_modal(request: HtmxHttpRequest) -> HttpResponse:
    """GET: the modal (or its page), opened from the Evals page with its filters and ticks.
    POST: queue the build and show its progress in the modal (or redirect to it)."""
    workspace = current_workspace(request)
    if request.method == "POST":
        form = ExportForm(request.POST)
        if form.is_valid():
            scope, label = _scope(workspace, request.user, form)
            try:
                job = export_job_start(
                    user=request.user,
                    workspace=workspace,
                    format_name=form.cleaned_data["format"],
                    options=form.options(),
                    scope=scope,
                    scope_label=label,
                )
            except ExportError as exc:
                form.add_error(None, str(exc))
            else:
                if not request.htmx:
                    return redirect("evals:export-job", job.pk)
                return render_page(request, "evals/export_job.html", _job_context(job), partial="job")
        context = {"workspace": workspace, "section": "evals", **_preview_context(request, workspace, form)}
        return render_page(request, "evals/export_modal.html", context, partial="dialog", status=422)
    ids = request.GET.getlist("ids")
    filters = request.GET.get("filters")
    if filters is None:  # opened with the Evals page's own query string
        query = request.GET.copy()
        for key in ("ids", "page", "action", "status", "tag", "next", "csrfmiddlewaretoken"):
            query.pop(key, None)
        filters = query.urlencode()
    form = ExportForm(_initial_data(filters=filters, ids=ids, scope="selection" if ids else "filter"))
    context = {"workspace": workspace, "section": "evals", **_preview_context(request, workspace, form)}
    return render_page(request, "evals/export_modal.html", context, partial="dialog")


def _initial_data(*, ids: list[str], **values) -> QueryDict:
    """The form's initial values as submitted data (so the first preview is the real one):
    unticked boxes left out, as a browser does."""
    query = QueryDict(mutable=True)
    for name, field in ExportForm.base_fields.items():
        value = values.get(name, field.initial)
        if value is True:
            query[name] = "on"
        elif value not in (False, None) and name != "ids":
            query[name] = str(value)
    query.setlist("ids", ids)
    return query


@login_required
@require_GET
def export_preview(request: HtmxHttpRequest) -> HttpResponse:
    """The modal's preview for the current choices (HTMX, on every change)."""
    workspace = current_workspace(request)
    context = _preview_context(request, workspace, ExportForm(request.GET))
    return render_page(request, "evals/export_modal.html", context | {"oob": True}, partial="preview")


def _job_context(job) -> dict:
    fmt = FORMATS.get(job.format)
    context = {"job": job, "fmt": fmt, "warnings": warning_lines(job.warnings)}
    if job.status == JobStatus.DONE and fmt is not None:
        _, options = resolve(job.format, _options(job))
        context["steps"] = steps(fmt, options, job.filename)
        before = previous_export(job)
        if before is not None:
            now, then = set(job.session_ids), set(before.session_ids)
            context["compare"] = {
                "job": before,
                "added": len(now - then),
                "removed": len(then - now),
                "same": before.content_hash == job.content_hash,
            }
    return context


def _options(job) -> Options:
    return Options(**job.options)


@login_required
@require_GET
def export_job(request: HtmxHttpRequest, export_id: int) -> HttpResponse:
    """An export: its progress while it builds (HTMX polls this until it is done), then the
    download, the dataset version and what to run next."""
    job = export_job_check_stale(get_export_for_user(request.user, export_id))
    context = {"section": "evals", **_job_context(job)}
    return render_page(request, "evals/export_job.html", context, partial="job")


@login_required
@require_GET
def export_download(request: HtmxHttpRequest, export_id: int) -> HttpResponse:
    job = get_export_for_user(request.user, export_id)
    if job.file_expired_at:  # an old link: the job's page says when and offers to build it again
        context = {"section": "evals", **_job_context(job)}
        return render_page(request, "evals/export_job.html", context, partial="job", status=410)
    if job.status != JobStatus.DONE or not job.file:
        raise Http404("This export has no file (yet).")
    try:
        return job_file_response(job)
    except FileNotFoundError as exc:
        raise Http404("This export's file is gone.") from exc


@login_required
@require_GET
def exports_page(request: HtmxHttpRequest) -> HttpResponse:
    """Past exports of the workspace, newest first, with their settings."""
    workspace = current_workspace(request)
    jobs = exports_for_workspace(workspace).defer("session_ids", "warnings")
    page = Paginator(jobs, EXPORTS_PAGE).get_page(request.GET.get("page"))
    for job in page.object_list:
        if job.is_active:
            export_job_check_stale(job)
        job.option_labels = _option_labels(job)
    context = {
        "workspace": workspace,
        "page": page,
        "section": "evals",
        "is_admin": role_in(request.user, workspace) == Role.ADMIN,
    }
    return render_page(request, "evals/exports.html", context)


def _option_labels(job) -> list[str]:
    options = job.options
    fmt = FORMATS.get(job.format)
    labels = []
    if fmt and fmt.turn_modes:
        labels.append(TURN_MODES.get(options.get("turn_mode"), options.get("turn_mode", "")))
    for key, label in (
        ("include_tools", "tool calls"),
        ("include_system", "system prompts"),
        ("anonymize_paths", "paths anonymized"),
        ("redact_secrets", "secrets redacted"),
        ("code_blocks_only", "code blocks only"),
    ):
        if options.get(key):
            labels.append(label)
    if options.get("min_length"):
        labels.append(f"min. {options['min_length']} chars")
    if job.format.startswith("promptfoo") and options.get("replay"):
        labels.append("replay")
    return labels


@login_required
@require_http_methods(["GET", "POST"])
def export_delete(request: HtmxHttpRequest, export_id: int) -> HttpResponse:
    """Delete an export (its creator or a workspace admin), after a confirmation."""
    job = get_export_for_user(request.user, export_id)
    if job.created_by_id != request.user.pk and role_in(request.user, job.workspace) != Role.ADMIN:
        messages.error(request, "Only the person who built an export, or an admin, can delete it.")
        return redirect("evals:exports")
    if request.method == "GET":
        return render_page(request, "evals/export_delete.html", {"job": job, "section": "evals"}, partial="dialog")
    export_job_delete(job=job)
    messages.success(request, f"Deleted export #{job.pk}.")
    if request.htmx:
        return HttpResponseClientRedirect(reverse("evals:exports"), status=204)
    return redirect("evals:exports")
