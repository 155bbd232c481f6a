from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from opensync.http import HtmxHttpRequest, render_page, safe_next
from opensync.inputs import whole_number
from search.mcp import clients as mcp_clients
from sessions_app.models import Source

from . import deletion, selectors, services
from .forms import ApiKeyForm, DeleteAccountForm, InvitationForm, ProfileForm, RetentionForm, RoleForm, WorkspaceForm
from .models import DeletionKind, Role


def _error_text(exc: ValidationError) -> str:
    return " ".join(exc.messages)


# --- API keys -------------------------------------------------------------------------------


def _api_keys_context(request, form=None, new_key=None):
    workspaces = list(selectors.workspaces_for_user(request.user))
    current = services.current_workspace(request)
    base_url = selectors.plugin_base_url(request)
    return {
        "form": form or ApiKeyForm(workspaces=workspaces, initial={"workspace": str(current.pk)}),
        "api_keys": selectors.api_keys_for_user(request.user),
        "new_key": new_key,
        "base_url": base_url,
        # how agents connect to /mcp: with the new key when one was just made
        "mcp_snippets": mcp_clients.snippets(base_url, new_key["raw"] if new_key else mcp_clients.PLACEHOLDER_KEY),
        "mcp_url": mcp_clients.endpoint(base_url),
    }


@login_required
@require_http_methods(["GET", "POST"])
def api_keys(request: HtmxHttpRequest) -> TemplateResponse:
    if request.method == "GET":
        return TemplateResponse(request, "accounts/api_keys.html", _api_keys_context(request))
    workspaces = list(selectors.workspaces_for_user(request.user))
    form = ApiKeyForm(request.POST, workspaces=workspaces)
    new_key = None
    if form.is_valid():
        try:
            key, raw = services.api_key_create(
                user=request.user,
                workspace=form.cleaned_data["workspace"],
                name=form.cleaned_data["name"],
                scope=form.cleaned_data["scope"],
            )
        except ValidationError as exc:
            form.add_error(None, _error_text(exc))
        else:
            new_key = {"key": key, "raw": raw}
            form = None
    status = 200 if new_key else 422 if request.htmx else 200
    context = _api_keys_context(request, form=form, new_key=new_key)
    return render_page(request, "accounts/api_keys.html", context, partial="keys-panel", status=status)


@login_required
@require_POST
def api_key_revoke(request: HtmxHttpRequest, key_id: int) -> TemplateResponse:
    key = selectors.get_api_key_for_user(request.user, key_id)
    services.api_key_revoke(actor=request.user, api_key=key)
    if not request.htmx:
        messages.success(request, f"Revoked “{key.name}”. Plugins using it now get 401.")
        return redirect("accounts:api-keys")
    return TemplateResponse(request, "accounts/api_keys.html#key-row", {"key": key})


# --- Workspaces -----------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def workspaces(request: HtmxHttpRequest):
    form = WorkspaceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        workspace = services.workspace_create_team(user=request.user, name=form.cleaned_data["name"])
        request.session[selectors.CURRENT_WORKSPACE_SESSION_KEY] = workspace.pk
        messages.success(request, f"Created {workspace.name}. Invite people below.")
        return redirect("accounts:workspace", slug=workspace.slug)
    memberships = request.user.memberships.select_related("workspace").order_by(
        "-workspace__is_personal", "workspace__name"
    )
    return TemplateResponse(request, "accounts/workspaces.html", {"form": form, "memberships": memberships})


def _workspace_context(request, workspace, membership, **extra):
    is_admin = membership.role == Role.ADMIN
    return {
        "workspace": workspace,
        "membership": membership,
        "is_admin": is_admin,
        "members": selectors.members_of(workspace),
        "invitations": selectors.pending_invitations(workspace) if is_admin else [],
        "invite_form": extra.pop("invite_form", None) or InvitationForm(),
        "roles": Role.choices,
        "retention_form": extra.pop("retention_form", None) or RetentionForm(instance=workspace),
        **extra,
    }


@login_required
@require_GET
def workspace_detail(request: HtmxHttpRequest, slug: str) -> TemplateResponse:
    workspace, membership = selectors.get_workspace_for_user(request.user, slug)
    return TemplateResponse(request, "accounts/workspace.html", _workspace_context(request, workspace, membership))


@login_required
@require_POST
def workspace_invite(request: HtmxHttpRequest, slug: str) -> TemplateResponse:
    workspace, membership = selectors.get_workspace_for_user(request.user, slug)
    form = InvitationForm(request.POST)
    invite_link = None
    if form.is_valid():
        try:
            _, invite_link = services.invitation_create(
                actor=request.user,
                workspace=workspace,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                accept_url_builder=lambda token: request.build_absolute_uri(
                    reverse("accounts:invitation", kwargs={"token": token})
                ),
            )
        except ValidationError as exc:
            form.add_error("email", _error_text(exc))
        else:
            form = InvitationForm()
    context = _workspace_context(request, workspace, membership, invite_form=form, invite_link=invite_link)
    status = 422 if form.errors and request.htmx else 200
    return render_page(request, "accounts/workspace.html", context, partial="members-panel", status=status)


@login_required
@require_POST
def workspace_retention(request: HtmxHttpRequest, slug: str) -> TemplateResponse:
    """An admin sets (or turns off) the workspace's retention; members get a 404 like other admin actions."""
    workspace, membership = selectors.get_workspace_for_user(request.user, slug)
    if membership.role != Role.ADMIN:
        raise Http404("Only workspace admins change retention")
    form = RetentionForm(request.POST, instance=workspace)
    saved = False
    if form.is_valid():
        form.save()
        saved = True
        form = RetentionForm(instance=workspace)
    context = _workspace_context(request, workspace, membership, retention_form=form, retention_saved=saved)
    status = 422 if form.errors and request.htmx else 200
    return render_page(request, "accounts/workspace.html", context, partial="retention-panel", status=status)


def _member_action(request, slug, member_id, action):
    workspace, membership = selectors.get_workspace_for_user(request.user, slug)
    target = selectors.get_membership_for_admin(request.user, workspace, member_id)
    error = None
    try:
        action(target)
    except ValidationError as exc:
        error = _error_text(exc)
    if target.user_id == request.user.id and not workspace.memberships.filter(user=request.user).exists():
        # They left: the workspace is gone for them.
        request.session.pop(selectors.CURRENT_WORKSPACE_SESSION_KEY, None)
        messages.success(request, f"You left {workspace.name}.")
        if request.htmx:
            return HttpResponseClientRedirect(reverse("accounts:workspaces"))
        return redirect("accounts:workspaces")
    membership.refresh_from_db()
    if error and not request.htmx:
        messages.error(request, error)
    context = _workspace_context(request, workspace, membership, member_error=error)
    return render_page(request, "accounts/workspace.html", context, partial="members-panel")


@login_required
@require_POST
def member_role(request: HtmxHttpRequest, slug: str, member_id: int):
    form = RoleForm(request.POST)
    if not form.is_valid():
        raise Http404("Unknown role")
    role = form.cleaned_data["role"]
    return _member_action(
        request,
        slug,
        member_id,
        lambda target: services.membership_set_role(actor=request.user, membership=target, role=role),
    )


@login_required
@require_POST
def member_remove(request: HtmxHttpRequest, slug: str, member_id: int):
    return _member_action(
        request, slug, member_id, lambda target: services.membership_remove(actor=request.user, membership=target)
    )


@login_required
@require_POST
def invitation_revoke(request: HtmxHttpRequest, slug: str, invitation_id: int):
    workspace, membership = selectors.get_workspace_for_user(request.user, slug)
    invitation = selectors.pending_invitations(workspace).filter(pk=invitation_id).first()
    if invitation is None:
        raise Http404("No such invitation")
    services.invitation_revoke(actor=request.user, invitation=invitation)
    context = _workspace_context(request, workspace, membership)
    return render_page(request, "accounts/workspace.html", context, partial="members-panel")


@require_http_methods(["GET", "POST"])
def invitation_accept(request: HtmxHttpRequest, token: str):
    invitation = services.invitation_for_token(token)
    if invitation is None:
        raise Http404("This invitation link is not valid.")
    if not request.user.is_authenticated:
        login_url = reverse("account_login") + "?next=" + request.path
        return TemplateResponse(request, "accounts/invitation.html", {"invitation": invitation, "login_url": login_url})
    error = None
    if request.method == "POST":
        try:
            membership = services.invitation_accept(user=request.user, invitation=invitation)
        except ValidationError as exc:
            error = _error_text(exc)
        else:
            request.session[selectors.CURRENT_WORKSPACE_SESSION_KEY] = membership.workspace_id
            messages.success(request, f"You joined {membership.workspace.name}.")
            return redirect("accounts:workspace", slug=membership.workspace.slug)
    return TemplateResponse(request, "accounts/invitation.html", {"invitation": invitation, "error": error})


@login_required
@require_POST
def workspace_switch(request: HtmxHttpRequest) -> HttpResponseRedirect:
    workspace_id = request.POST.get("workspace", "")
    # A non-numeric id (a forged form) is refused like any other workspace, not a 500.
    mine = selectors.workspaces_for_user(request.user)
    workspace_id = whole_number(workspace_id)
    workspace = mine.filter(pk=workspace_id).first() if workspace_id is not None else None
    if workspace is None:
        raise PermissionDenied("You are not a member of that workspace.")
    request.session[selectors.CURRENT_WORKSPACE_SESSION_KEY] = workspace.pk
    target = safe_next(request, reverse("home"))
    # A page of one workspace's object makes no sense in another: go to the sessions list.
    if target.startswith(("/workspaces/", "/sessions/")) and target != reverse("accounts:workspaces"):
        target = reverse("home")
    return HttpResponseRedirect(target)


# --- Settings: profile, usage, agents, data & account ---------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def profile(request: HtmxHttpRequest) -> HttpResponse:
    user = request.user
    form = ProfileForm(request.POST if request.method == "POST" else None, initial={"name": user.name})
    saved = False
    if form.is_bound and form.is_valid():
        try:
            services.user_update_profile(user=user, name=form.cleaned_data["name"])
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            if not request.htmx:
                messages.success(request, "Profile saved.")
                return redirect("accounts:settings")
            saved = True
            form = ProfileForm(initial={"name": user.name})
    context = {"form": form, "saved": saved, "totals": selectors.user_totals(user)}
    status = 422 if form.errors and request.htmx else 200
    return render_page(request, "accounts/profile.html", context, partial="profile-form", status=status)


def _bar_chart(values: list[int], *, width: int = 600, height: int = 120) -> dict:
    """Geometry of a small SVG bar chart (one bar per value), computed here so no JS is needed."""
    top = max(values, default=0) or 1
    slot = width / max(len(values), 1)
    bars = []
    for index, value in enumerate(values):
        bar_height = round(value / top * (height - 4), 1) if value else 0
        bars.append(
            {
                "x": round(index * slot + 1, 1),
                "y": round(height - bar_height, 1),
                "w": round(slot - 2, 1),
                "h": bar_height,
            }
        )
    return {"width": width, "height": height, "bars": bars, "max": max(values, default=0)}


@login_required
@require_GET
def usage(request: HtmxHttpRequest) -> TemplateResponse:
    workspace = services.current_workspace(request)
    usage = selectors.workspace_usage(workspace)
    chart = _bar_chart([row["requests"] for row in usage["per_day"]])
    chart["bars"] = [bar | day for bar, day in zip(chart["bars"], usage["per_day"], strict=True)]
    return TemplateResponse(request, "accounts/usage.html", {"workspace": workspace, "usage": usage, "chart": chart})


@login_required
@require_http_methods(["GET", "POST"])
def agents(request: HtmxHttpRequest) -> HttpResponse:
    saved = False
    if request.method == "POST":
        services.user_set_shown_sources(user=request.user, shown=request.POST.getlist("sources"))
        if not request.htmx:
            messages.success(request, "Saved.")
            return redirect("accounts:agents")
        saved = True
    shown = {value for value, _ in selectors.enabled_sources(request.user)}
    context = {"sources": [(value, label, value in shown) for value, label in Source.choices], "saved": saved}
    return render_page(request, "accounts/agents.html", context, partial="agents-form")


@login_required
@require_GET
def data(request: HtmxHttpRequest) -> TemplateResponse:
    context = {
        "job": selectors.deletion_job_for_user(request.user),
        "blockers": selectors.account_deletion_blockers(request.user),
    }
    return TemplateResponse(request, "accounts/data.html", context)


def _confirm(request: HtmxHttpRequest, kind: str, form=None, status: int = 200) -> TemplateResponse:
    """The confirmation: a <dialog> for #modal (HTMX), else a page of its own."""
    context = {
        "kind": kind,
        "form": form,
        "blockers": selectors.account_deletion_blockers(request.user) if kind == DeletionKind.ACCOUNT else (),
    }
    return render_page(request, "accounts/delete_confirm.html", context, partial="dialog", status=status)


@login_required
@require_http_methods(["GET", "POST"])
def delete_data(request: HtmxHttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _confirm(request, DeletionKind.DATA)
    job, created = deletion.deletion_job_start(user=request.user, kind=DeletionKind.DATA)
    if not request.htmx:
        if not created:
            messages.info(request, "A deletion is already running; here is its progress.")
        return redirect("accounts:data")
    # Empties #modal (closing the dialog) and swaps the progress in out of band.
    return TemplateResponse(request, "accounts/data.html#job-started", {"job": job})


@login_required
@require_http_methods(["GET", "POST"])
def delete_account(request: HtmxHttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _confirm(request, DeletionKind.ACCOUNT, form=DeleteAccountForm(user=request.user))
    form = DeleteAccountForm(request.POST, user=request.user)
    if form.is_valid():
        try:
            job, created = deletion.deletion_job_start(user=request.user, kind=DeletionKind.ACCOUNT)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            if created:
                logout(request)
                url = reverse("accounts:deletion-progress", kwargs={"token": job.token})
                return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
            form.add_error(None, "Your data is being deleted right now. Delete the account once that has finished.")
    return _confirm(request, DeletionKind.ACCOUNT, form=form, status=422 if request.htmx else 200)


@require_GET
def deletion_progress(request: HtmxHttpRequest, token: str) -> TemplateResponse:
    """Public (the account may be gone): shows only the status and the counts of one job."""
    job = selectors.get_deletion_job_for_token(token)
    return render_page(request, "accounts/deletion_progress.html", {"job": job}, partial="progress")
