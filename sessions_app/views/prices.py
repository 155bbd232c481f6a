"""Analytics settings of the current workspace: its time zone and monthly budget, its price
overrides (with the re-pricing each change starts, and its progress), and a price-book lookup.

Every member can see them; only the workspace's admins can change them (staff set instance-wide
prices in the admin). Forms work without JavaScript; with it, the re-pricing progress polls.
"""

import zoneinfo
from datetime import datetime, time

import genai_prices
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import Role
from accounts.selectors import role_in
from accounts.services import current_workspace
from sessions_app import services
from sessions_app.analytics import today_in
from sessions_app.forms import AnalyticsSettingsForm, PriceOverrideForm
from sessions_app.models import PriceOverride, RepricingJob
from sessions_app.selectors import price_book
from sessions_app.services import PriceError

JOBS_SHOWN = 8


def _overrides(workspace):
    return (
        PriceOverride.objects.filter(Q(workspace=workspace) | Q(workspace__isnull=True))
        .select_related("created_by")
        .order_by("workspace_id", "model_pattern", "-effective_from")
    )


def _moment(workspace, day):
    """Midnight of `day` in the workspace's time zone."""
    return datetime.combine(day, time.min, zoneinfo.ZoneInfo(workspace.timezone or "UTC"))


def _context(request, workspace, **extra) -> dict:
    is_admin = role_in(request.user, workspace) == Role.ADMIN
    check = (request.GET.get("check") or "").strip()[:255]
    checked = None
    if check:
        rates = price_book(workspace.pk).rates(check, None, timezone.now())
        checked = {"model": check, "rates": rates, "per_million": _per_million(rates) if rates else None}
    return {
        "workspace": workspace,
        "is_admin": is_admin,
        "settings_form": extra.pop("settings_form", None)
        or AnalyticsSettingsForm(initial={"timezone": workspace.timezone, "monthly_budget": workspace.monthly_budget}),
        "add_form": extra.pop("add_form", None) or PriceOverrideForm(initial={"effective_from": _today(workspace)}),
        "overrides": _overrides(workspace),
        "jobs": RepricingJob.objects.filter(workspace=workspace).order_by("-created_at", "-id")[:JOBS_SHOWN],
        "checked": checked,
        "genai_prices_version": genai_prices.__version__,
        **extra,
    }


def _today(workspace):
    return today_in(workspace.timezone or "UTC")


def _per_million(rates) -> dict:
    return {
        name: getattr(rates, name) * 1_000_000
        for name in ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h")
    }


@login_required
@require_http_methods(["GET", "POST"])
def prices(request: HttpRequest) -> HttpResponse:
    workspace = current_workspace(request)
    if request.method == "GET":
        return TemplateResponse(request, "sessions_app/prices.html", _context(request, workspace))
    action = request.POST.get("action")
    if action == "settings":
        form = AnalyticsSettingsForm(request.POST)
        if form.is_valid():
            try:
                moved = services.workspace_analytics_settings(
                    actor=request.user,
                    workspace=workspace,
                    timezone_name=form.cleaned_data["timezone"],
                    monthly_budget=form.cleaned_data["monthly_budget"],
                )
            except PriceError as exc:
                form.add_error(None, str(exc))
            else:
                note = " Analytics regroups the days in the background." if moved else ""
                messages.success(request, f"Saved.{note}")
                return redirect("sessions:prices")
        context = _context(request, workspace, settings_form=form)
        return TemplateResponse(request, "sessions_app/prices.html", context, status=422)
    if action == "add":
        form = PriceOverrideForm(request.POST)
        if form.is_valid():
            override = PriceOverride(**_override_fields(workspace, form.cleaned_data))
            try:
                jobs = services.price_override_save(actor=request.user, workspace=workspace, override=override)
            except PriceError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"Price for {override.model_pattern} added; re-pricing its sessions.")
                return redirect(_after_change(jobs))
        context = _context(request, workspace, add_form=form)
        return TemplateResponse(request, "sessions_app/prices.html", context, status=422)
    raise Http404("Unknown action")


def _override_fields(workspace, data) -> dict:
    fields = {key: value for key, value in data.items() if key != "effective_from"}
    fields["effective_from"] = _moment(workspace, data["effective_from"])
    return fields


def _after_change(jobs) -> str:
    url = reverse("sessions:prices")
    return f"{url}#repricing" if jobs else url


def _override_for_admin(request, override_id: int) -> tuple:
    workspace = current_workspace(request)
    override = PriceOverride.objects.filter(pk=override_id, workspace=workspace).first()
    if override is None:
        raise Http404("No such price in this workspace")
    if role_in(request.user, workspace) != Role.ADMIN:
        raise PermissionDenied("Only the workspace's admins can change its prices.")
    return workspace, override


@login_required
@require_http_methods(["GET", "POST"])
def price_edit(request: HttpRequest, override_id: int) -> HttpResponse:
    workspace, override = _override_for_admin(request, override_id)
    tz = zoneinfo.ZoneInfo(workspace.timezone or "UTC")
    initial = {
        "model_pattern": override.model_pattern,
        "input_per_m": override.input_per_m,
        "output_per_m": override.output_per_m,
        "cache_read_per_m": override.cache_read_per_m,
        "cache_write_5m_per_m": override.cache_write_5m_per_m,
        "cache_write_1h_per_m": override.cache_write_1h_per_m,
        "effective_from": override.effective_from.astimezone(tz).date(),
        "note": override.note,
    }
    form = PriceOverrideForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        old_pattern = override.model_pattern
        for key, value in _override_fields(workspace, form.cleaned_data).items():
            setattr(override, key, value)
        try:
            jobs = services.price_override_save(
                actor=request.user, workspace=workspace, override=override, old_pattern=old_pattern
            )
        except PriceError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Price for {override.model_pattern} saved; re-pricing its sessions.")
            return redirect(_after_change(jobs))
    status = 422 if form.errors else 200
    context = {"workspace": workspace, "form": form, "override": override}
    return TemplateResponse(request, "sessions_app/price_edit.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def price_delete(request: HttpRequest, override_id: int) -> HttpResponse:
    workspace, override = _override_for_admin(request, override_id)
    if request.method == "GET":  # the confirmation (a page of its own without JavaScript)
        return TemplateResponse(
            request, "sessions_app/price_delete.html", {"workspace": workspace, "override": override}
        )
    jobs = services.price_override_delete(actor=request.user, override=override)
    messages.success(request, f"Price for {override.model_pattern} removed; re-pricing its sessions.")
    return redirect(_after_change(jobs))


def _job(request, job_id: int) -> tuple:
    workspace = current_workspace(request)
    job = RepricingJob.objects.filter(pk=job_id, workspace=workspace).first()
    if job is None:
        raise Http404("No such re-pricing in this workspace")
    return workspace, job


@login_required
@require_GET
def repricing_job(request: HttpRequest, job_id: int) -> TemplateResponse:
    """A re-pricing's progress (polled while it runs)."""
    workspace, job = _job(request, job_id)
    return TemplateResponse(request, "sessions_app/prices.html#job", {"job": job, "workspace": workspace})


@login_required
@require_POST
def repricing_resume(request: HttpRequest, job_id: int) -> HttpResponse:
    workspace, job = _job(request, job_id)
    if role_in(request.user, workspace) != Role.ADMIN:
        raise PermissionDenied("Only the workspace's admins can do this.")
    if services.repricing_job_resume(job=job):
        messages.success(request, "Re-pricing resumed where it stopped.")
    return redirect(_after_change([job]))
