from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.db.models import Count
from django.utils import timezone

from opensync.admin import ReadOnlyAdmin
from sessions_app.services import rollups_rebuild_later

from .deletion import deletion_job_retry
from .models import ApiKey, ApiRequestLog, DeletionJob, Invitation, Membership, User, Workspace
from .services import user_deactivate

# --- Users ----------------------------------------------------------------------------------


class UserCreationAdminForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "name")

    def clean_email(self):
        # The manager stores emails lower-cased; keep admin-created users consistent with sign-ups.
        email = User.objects.normalize_email(self.cleaned_data["email"]).lower()
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("A user with that email address already exists.")
        return email


class UserChangeAdminForm(UserChangeForm):
    class Meta:
        model = User
        fields = (
            "email",
            "password",
            "name",
            "is_active",
            "is_staff",
            "is_superuser",
            "groups",
            "user_permissions",
        )


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ("user", "workspace")


class UserMembershipInline(MembershipInline):
    fk_name = "user"
    fields = ("workspace", "role", "created_at")


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    form = UserChangeAdminForm
    add_form = UserCreationAdminForm
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Personal info", {"fields": ("name",)}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "name", "usable_password", "password1", "password2"),
            },
        ),
    )
    list_display = ("email", "name", "is_active", "is_staff", "date_joined", "last_login")
    list_filter = ("is_active", "is_staff", "is_superuser")
    search_fields = ("email", "name")
    ordering = ("email",)
    readonly_fields = ("last_login", "date_joined")
    inlines = (UserMembershipInline,)
    actions = ("deactivate_users",)

    def get_inlines(self, request, obj):
        # The add form has no inlines: the personal workspace comes with the user (accounts.signals).
        return self.inlines if obj else ()

    @admin.action(description="Deactivate selected users", permissions=["change"])
    def deactivate_users(self, request, queryset):
        # Locking yourself out of the admin by accident is never what was meant.
        skipped = queryset.filter(pk=request.user.pk).exists()
        count = 0
        for user in queryset.exclude(pk=request.user.pk).filter(is_active=True):
            user_deactivate(user=user)
            count += 1
        self.message_user(request, f"Deactivated {count} user(s).", messages.SUCCESS)
        if skipped:
            self.message_user(request, "You can't deactivate yourself; skipped you.", messages.WARNING)


# --- Workspaces and memberships -------------------------------------------------------------


class WorkspaceMembershipInline(MembershipInline):
    fk_name = "workspace"
    fields = ("user", "role", "created_at")


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "is_personal", "created_by", "member_count", "created_at")
    list_filter = ("is_personal",)
    search_fields = ("name", "slug", "created_by__email")
    list_select_related = ("created_by",)
    autocomplete_fields = ("created_by",)
    readonly_fields = ("created_at",)
    inlines = (WorkspaceMembershipInline,)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_member_count=Count("memberships"))

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and "timezone" in form.changed_data:
            # day boundaries moved: the analytics rollups are rebuilt in the background
            rollups_rebuild_later(obj.pk)

    @admin.display(description="Members", ordering="_member_count")
    def member_count(self, obj):
        return obj._member_count


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "workspace", "role", "created_at")
    list_filter = ("role", "workspace__is_personal")
    search_fields = ("user__email", "workspace__name", "workspace__slug")
    list_select_related = ("user", "workspace")
    autocomplete_fields = ("user", "workspace")


# --- Invitations ----------------------------------------------------------------------------


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ("email", "workspace", "role", "invited_by", "created_at", "expires_at", "status")
    list_filter = (
        "role",
        ("accepted_at", admin.EmptyFieldListFilter),
        ("revoked_at", admin.EmptyFieldListFilter),
    )
    search_fields = ("email", "workspace__name", "workspace__slug", "invited_by__email")
    list_select_related = ("workspace", "invited_by")
    autocomplete_fields = ("workspace",)
    readonly_fields = (
        "workspace",
        "email",
        "token_hash",
        "invited_by",
        "created_at",
        "accepted_at",
        "accepted_by",
        "revoked_at",
    )
    fields = (
        "workspace",
        "email",
        "role",
        "expires_at",
        "token_hash",
        "invited_by",
        "created_at",
        "accepted_at",
        "accepted_by",
        "revoked_at",
    )
    actions = ("revoke_invitations",)

    def has_add_permission(self, request):
        # The link token exists only in the email sent by the workspace page; an admin-made row
        # would be an invitation nobody can accept.
        return False

    @admin.display(description="Status")
    def status(self, obj):
        if obj.accepted_at:
            return "accepted"
        if obj.revoked_at:
            return "revoked"
        return "pending" if obj.is_pending else "expired"

    @admin.action(description="Revoke selected invitations", permissions=["change"])
    def revoke_invitations(self, request, queryset):
        count = queryset.pending().update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} invitation(s).", messages.SUCCESS)


# --- API keys and their request log ---------------------------------------------------------


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "user", "workspace", "scope", "is_active", "created_at", "last_used_at")
    list_filter = ("scope", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "=prefix", "user__email", "workspace__slug")
    list_select_related = ("user", "workspace")
    # Only the name, the scope and revocation are editable. The hash is the credential; the
    # owner and workspace are what the key was issued for (moving it would skip the membership check).
    fields = (
        "name",
        "scope",
        "revoked_at",
        "prefix",
        "key_hash",
        "user",
        "workspace",
        "created_at",
        "last_used_at",
    )
    readonly_fields = ("prefix", "key_hash", "user", "workspace", "created_at", "last_used_at")
    actions = ("revoke_keys",)

    def has_add_permission(self, request):
        # Keys are created on the settings page or with `manage.py create_api_key`, which show the
        # raw key once; an admin-chosen hash would be a key nobody holds, or one somebody chose.
        return False

    @admin.display(description="Active", boolean=True)
    def is_active(self, obj):
        return obj.is_active

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke_keys(self, request, queryset):
        # One UPDATE (same effect as services.api_key_revoke, which a staff actor may call per key).
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} API key(s).", messages.SUCCESS)


class StatusClassFilter(admin.SimpleListFilter):
    """2xx/4xx/5xx without the SELECT DISTINCT a plain field filter runs over the whole log."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("2", "2xx"), ("3", "3xx"), ("4", "4xx"), ("5", "5xx")]

    def queryset(self, request, queryset):
        if self.value() in {"2", "3", "4", "5"}:
            low = int(self.value()) * 100
            return queryset.filter(status_code__gte=low, status_code__lt=low + 100)
        return queryset


class MethodFilter(admin.SimpleListFilter):
    title = "method"
    parameter_name = "method"

    def lookups(self, request, model_admin):
        return [(m, m) for m in ("GET", "POST", "DELETE")]

    def queryset(self, request, queryset):
        return queryset.filter(method=self.value()) if self.value() else queryset


@admin.register(ApiRequestLog)
class ApiRequestLogAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "method",
        "endpoint",
        "status_code",
        "latency_ms",
        "user",
        "workspace",
        "api_key",
    )
    list_filter = (MethodFilter, StatusClassFilter)
    search_fields = ("=endpoint", "user__email")
    list_select_related = ("user", "workspace", "api_key")
    raw_id_fields = ("api_key", "user", "workspace")
    # The table grows by one row per API request: no COUNT(*) over it, newest first by primary key.
    show_full_result_count = False
    ordering = ("-pk",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # A log is evidence: viewable, deletable (retention), never edited.
        return False


# --- Deletion jobs --------------------------------------------------------------------------


@admin.register(DeletionJob)
class DeletionJobAdmin(ReadOnlyAdmin):
    """Read-only: jobs are started from Settings → Data & account and run by Celery. A failed or
    stuck job can be run again from where it stopped."""

    list_display = ("created_at", "email", "kind", "status", "percent", "finished_at")
    list_filter = ("kind", "status")
    search_fields = ("=email",)
    list_select_related = ("user",)
    fields = ("email", "user", "kind", "status", "counts", "totals", "error", "created_at", "updated_at", "finished_at")
    readonly_fields = fields
    ordering = ("-created_at",)
    actions = ("run_again",)

    @admin.display(description="Progress")
    def percent(self, obj):
        return f"{obj.percent}%"

    @admin.action(description="Run the selected failed or stuck jobs again")
    def run_again(self, request, queryset):
        queued = sum(deletion_job_retry(job=job) for job in queryset)
        skipped = queryset.count() - queued
        self.message_user(request, f"Queued {queued} job(s) again; {skipped} were not failed or stuck.", messages.INFO)
