"""Reads for accounts and workspaces. Every lookup is scoped to what the user may see."""

from datetime import datetime, time, timedelta

from django.conf import settings
from django.db.models import Avg, Count, Exists, F, OuterRef, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.http import Http404, HttpRequest
from django.utils import timezone

from sessions_app import analytics
from sessions_app.models import Session, Source

from .models import ApiKey, ApiRequestLog, DeletionJob, Invitation, Membership, Role, User, Workspace, hash_api_key

CURRENT_WORKSPACE_SESSION_KEY = "current_workspace_id"


def workspaces_for_user(user: User) -> QuerySet[Workspace]:
    return Workspace.objects.filter(memberships__user=user).order_by("-is_personal", "name")


def get_workspace_for_user(user: User, slug: str) -> tuple[Workspace, Membership]:
    """The workspace and the user's membership in it; 404 for anyone who isn't a member."""
    membership = Membership.objects.select_related("workspace").filter(user=user, workspace__slug=slug).first()
    if membership is None:
        raise Http404("No such workspace")
    return membership.workspace, membership


def get_membership_for_admin(user: User, workspace: Workspace, membership_id: int) -> Membership:
    membership = (
        Membership.objects.select_related("user", "workspace").filter(pk=membership_id, workspace=workspace).first()
    )
    if membership is None:
        raise Http404("No such member")
    return membership


def members_of(workspace: Workspace) -> QuerySet[Membership]:
    return Membership.objects.filter(workspace=workspace).select_related("user").order_by("user__email")


def pending_invitations(workspace: Workspace) -> QuerySet[Invitation]:
    return Invitation.objects.pending().filter(workspace=workspace).select_related("invited_by")


def role_in(user: User, workspace: Workspace) -> str | None:
    return Membership.objects.filter(user=user, workspace=workspace).values_list("role", flat=True).first()


def plugin_base_url(request: HttpRequest) -> str:
    """The server URL to give the plugins: OPENSYNC_PUBLIC_URL, else the URL this page came from."""
    return settings.OPENSYNC_PUBLIC_URL or request.build_absolute_uri("/").rstrip("/")


def api_keys_for_user(user: User) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(user=user).select_related("workspace").order_by("revoked_at", "-created_at")


def get_api_key_for_user(user: User, key_id: int) -> ApiKey:
    key = ApiKey.objects.filter(user=user, pk=key_id).select_related("workspace").first()
    if key is None:
        raise Http404("No such API key")
    return key


def api_key_for_raw(raw_key: str) -> ApiKey | None:
    """The key for a bearer token, with its user and workspace, in one query.

    The key works only while its user is active and still a member of the key's workspace.
    """
    # A join, not an EXISTS subquery (cheaper to build and to plan on every API request):
    # memberships are unique per (user, workspace), so it never repeats the key.
    return (
        ApiKey.objects.select_related("user", "workspace")
        .filter(key_hash=hash_api_key(raw_key), user__is_active=True, user__memberships__workspace=F("workspace"))
        .first()
    )


def enabled_sources(user) -> list[tuple[str, str]]:
    """(value, label) of the agents the user shows in source filters (Settings → Agents)."""
    hidden = set(getattr(user, "hidden_sources", None) or ())
    return [(value, label) for value, label in Source.choices if value not in hidden]


# --- Settings pages -------------------------------------------------------------------------

USAGE_DAYS = 30
USAGE_TOP_ENDPOINTS = 20


def user_totals(user: User) -> dict:
    """Profile: what the user owns across all workspaces, in one aggregate query."""
    return Session.objects.filter(owner=user).aggregate(
        sessions=Count("pk"),
        messages=Coalesce(Sum("message_count"), 0),
        tokens=Coalesce(Sum("total_tokens"), 0),
    )


def workspace_usage(workspace: Workspace, *, days: int = USAGE_DAYS) -> dict:
    """Settings → Usage for one workspace over the last `days` days (today included).

    Three aggregate queries whatever the amount of data: requests per day, requests per
    endpoint, sessions and tokens per source. Callers pass a workspace the user is a member of.
    """
    today = analytics.today_in(workspace.timezone)
    first_day = today - timedelta(days=days - 1)
    since = timezone.make_aware(datetime.combine(first_day, time.min))
    logs = ApiRequestLog.objects.filter(workspace=workspace, created_at__gte=since)
    errors = Count("pk", filter=Q(status_code__gte=400))

    by_day = {
        row["day"]: row
        for row in logs.annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(requests=Count("pk"), errors=errors)
        .order_by()
    }
    per_day = [
        {
            "day": day,
            "requests": by_day.get(day, {}).get("requests", 0),
            "errors": by_day.get(day, {}).get("errors", 0),
        }
        for day in (first_day + timedelta(days=n) for n in range(days))
    ]
    per_endpoint = list(
        logs.values("method", "endpoint")
        .annotate(requests=Count("pk"), errors=errors, avg_latency_ms=Avg("latency_ms"))
        .order_by("-requests", "endpoint", "method")[:USAGE_TOP_ENDPOINTS]
    )
    labels = dict(Source.choices)
    # sessions and tokens per agent from the daily rollups (one row per day and key, not per session)
    period = analytics.Query(preset="custom", start=first_day, end=today, tz=workspace.timezone)
    per_source = list(
        analytics.dimension_rows(workspace, period, "source")
        .values("source")
        .annotate(
            sessions=Sum("sessions"),
            prompt=Sum("prompt_tokens"),
            completion=Sum("completion_tokens"),
            total=Sum(F("prompt_tokens") + F("completion_tokens")),
            # the shown cost (computed, else reported); NULL when no session of the agent has one
            usd=Sum("cost", filter=Q(sessions_computed__gt=0) | Q(sessions_reported__gt=0)),
        )
        .order_by("-total", "source")
    )
    for row in per_source:
        row["label"] = labels.get(row["source"], row["source"])
    costs = [row["usd"] for row in per_source if row["usd"] is not None]
    return {
        "since": first_day,
        "until": today,
        "days": days,
        "per_day": per_day,
        "requests": sum(row["requests"] for row in per_day),
        "errors": sum(row["errors"] for row in per_day),
        "per_endpoint": per_endpoint,
        "per_source": per_source,
        "source_totals": {
            key: sum(row[key] for row in per_source) for key in ("sessions", "prompt", "completion", "total")
        }
        | {"usd": sum(costs) if costs else None},
    }


def account_deletion_blockers(user: User) -> QuerySet[Workspace]:
    """Team workspaces where the user is the last active admin and other people remain."""
    other_admin = Membership.objects.filter(workspace=OuterRef("pk"), role=Role.ADMIN, user__is_active=True).exclude(
        user=user
    )
    other_member = Membership.objects.filter(workspace=OuterRef("pk")).exclude(user=user)
    return (
        Workspace.objects.filter(is_personal=False, memberships__user=user, memberships__role=Role.ADMIN)
        .filter(~Exists(other_admin), Exists(other_member))
        .order_by("name")
    )


def deletion_job_for_user(user: User) -> DeletionJob | None:
    """The user's running deletion, else their latest one."""
    return DeletionJob.objects.filter(user=user).order_by("-created_at").first()


def get_deletion_job_for_token(token: str) -> DeletionJob:
    job = DeletionJob.objects.filter(token=token).first() if token else None
    if job is None:
        raise Http404("No such deletion job")
    return job
