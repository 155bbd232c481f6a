from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from opensync.admin import ReadOnlyAdmin

from . import services
from .models import Message, Part, PriceOverride, RepricingJob, Session, Source, UsageRollup

# Sessions, messages and parts are the big tables. Their admins never COUNT(*) the whole table,
# use raw id widgets for foreign keys (no <select> of every row) and filter only on fixed choices
# (a plain filter on a free-text column runs SELECT DISTINCT over the table).


class SourceFilter(admin.SimpleListFilter):
    title = "source"
    parameter_name = "source"

    def lookups(self, request, model_admin):
        return Source.choices

    def queryset(self, request, queryset):
        return queryset.filter(source=self.value()) if self.value() else queryset


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "workspace",
        "owner",
        "source",
        "message_count",
        "total_tokens",
        "cost",
        "cost_source",
        "is_public",
        "updated_at",
    )
    list_filter = (SourceFilter, "is_public", "eval_ready")
    search_fields = ("=external_id", "title", "project_name", "owner__email")
    list_select_related = ("workspace", "owner")
    raw_id_fields = ("workspace", "owner", "reviewed_by")
    # Figures the server computes (cost engine) are shown, never edited here.
    readonly_fields = (
        "total_tokens", "messages_link", "computed_cost", "cost", "cost_source", "cost_note", "price_model",
        "priced_at", "usage_input_tokens", "usage_output_tokens", "usage_cache_read_tokens",
        "usage_cache_write_5m_tokens", "usage_cache_write_1h_tokens", "usage_reasoning_tokens", "subagent_tokens",
        "subagent_cost", "message_count",
        # The review is evals' (evals.services records each change in the review history).
        "eval_ready", "eval_status", "eval_tags", "eval_notes", "expected_output", "reviewed_at", "reviewed_by",
    )  # fmt: skip
    show_full_result_count = False
    actions = ("make_private", "reprice")

    def save_model(self, request, obj, form, change):
        """A change of tokens, model, reported cost or project re-prices the session and moves it
        in the daily rollups, as a sync would."""
        if not change:
            super().save_model(request, obj, form, change)
            services.sessions_added([obj.pk])
            return
        with services.sessions_changing([obj.pk]):
            super().save_model(request, obj, form, change)

    def delete_model(self, request, obj):
        services.sessions_delete(session_ids=[obj.pk])

    def delete_queryset(self, request, queryset):
        services.sessions_delete(session_ids=list(queryset.values_list("pk", flat=True)))

    def get_deleted_objects(self, objs, request):
        """Messages and parts go with their session (sessions_delete keeps the rollups right); that
        their own admins allow no deletion (ReadOnlyAdmin) must not stop the session's."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed -= {Message._meta.verbose_name, Part._meta.verbose_name}
        return deleted, counts, perms_needed, protected

    @admin.action(description="Price selected sessions again", permissions=["change"])
    def reprice(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        with services.sessions_changing(ids):
            pass
        self.message_user(request, f"Priced {len(ids)} session(s) again.", messages.SUCCESS)

    @admin.display(description="Messages")
    def messages_link(self, obj):
        if obj.pk is None:
            return "-"
        url = reverse("admin:sessions_app_message_changelist") + f"?session__id__exact={obj.pk}"
        return format_html('<a href="{}">{} message(s)</a>', url, obj.message_count)

    @admin.action(description="Make selected sessions private", permissions=["change"])
    def make_private(self, request, queryset):
        # Dropping the slug kills old share links; sharing again makes a new one.
        count = queryset.update(is_public=False, share_slug=None)
        self.message_user(request, f"Made {count} session(s) private.", messages.SUCCESS)


class PartInline(admin.TabularInline):
    """A message's parts exactly as the plugin sent them: shown, never edited here."""

    model = Part
    fields = ("order", "type", "content")
    readonly_fields = fields
    ordering = ("order",)
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


# Messages and parts are shown, never added, edited or deleted here: a message's `search_text`
# (from its text and parts) and its session's `message_count` are kept by the sync, which an edit
# or a deletion of one row would leave stale. A session is deleted as a whole (SessionAdmin).


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = ("id", "session", "role", "short_text", "model", "created_at", "order")
    list_filter = ("role",)
    search_fields = ("=external_id", "=session__external_id")
    list_select_related = ("session",)
    raw_id_fields = ("session",)
    readonly_fields = ("order",)
    inlines = (PartInline,)
    show_full_result_count = False
    ordering = ("-pk",)

    @admin.display(description="Text")
    def short_text(self, obj):
        text = obj.text_content or ""
        return text[:80] + ("…" if len(text) > 80 else "")


@admin.register(Part)
class PartAdmin(ReadOnlyAdmin):
    list_display = ("id", "message", "type", "order")
    search_fields = ("=type", "=message__external_id")
    list_select_related = ("message",)
    raw_id_fields = ("message",)
    show_full_result_count = False
    ordering = ("-pk",)


class PriceOverrideAdminForm(forms.ModelForm):
    """The model's own checks (rates, dates, the model pattern) run as for any ModelForm; this
    adds the service's: one price per model and moment, whatever the case of the model id."""

    class Meta:
        model = PriceOverride
        fields = (
            "workspace", "model_pattern", "input_per_m", "output_per_m", "cache_read_per_m", "cache_write_5m_per_m",
            "cache_write_1h_per_m", "effective_from", "note",
        )  # fmt: skip

    def clean(self):
        data = super().clean()
        pattern, moment = data.get("model_pattern"), data.get("effective_from")
        if (
            pattern
            and moment
            and services.price_override_clashes(
                workspace=data.get("workspace"),
                model_pattern=pattern,
                effective_from=moment,
                exclude_pk=self.instance.pk,
            )
        ):
            raise forms.ValidationError("This model already has a price from that moment; change that one instead.")
        return data


@admin.register(PriceOverride)
class PriceOverrideAdmin(admin.ModelAdmin):
    """Staff set instance-wide prices here (no workspace) and any workspace's; each change
    re-prices the sessions it affects in the background (see Re-pricing jobs)."""

    list_display = (
        "model_pattern", "workspace", "input_per_m", "output_per_m", "cache_read_per_m", "cache_write_5m_per_m",
        "cache_write_1h_per_m", "effective_from", "note",
    )  # fmt: skip
    list_select_related = ("workspace",)
    search_fields = ("model_pattern", "note", "workspace__slug")
    raw_id_fields = ("workspace", "created_by")
    readonly_fields = ("created_by", "created_at", "updated_at")
    form = PriceOverrideAdminForm

    def save_model(self, request, obj, form, change):
        old = (
            PriceOverride.objects.filter(pk=obj.pk).values_list("model_pattern", flat=True).first() if change else None
        )
        try:
            services.price_override_save(actor=request.user, workspace=obj.workspace, override=obj, old_pattern=old)
        except services.PriceError as exc:
            self.message_user(request, str(exc), messages.ERROR)

    def delete_model(self, request, obj):
        services.price_override_delete(actor=request.user, override=obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            services.price_override_delete(actor=request.user, override=obj)


@admin.register(RepricingJob)
class RepricingJobAdmin(admin.ModelAdmin):
    """Re-pricings run by the worker: their progress, read-only; a failed one can run again."""

    list_display = (
        "id",
        "created_at",
        "workspace",
        "model_pattern",
        "reason",
        "status",
        "processed",
        "total",
        "changed",
    )
    list_filter = ("status",)
    list_select_related = ("workspace",)
    raw_id_fields = ("workspace", "created_by")
    # Named, not read from _meta: the fields the abstract Job contributes (status, error, times)
    # would otherwise come first, since fields sort by when they were created.
    readonly_fields = [
        "id", "workspace", "model_pattern", "pending_only", "reason", "status", "total", "processed", "changed",
        "last_id", "error", "created_by", "created_at", "updated_at", "finished_at",
    ]  # fmt: skip
    actions = ("resume",)

    def has_add_permission(self, request):
        return False

    @admin.action(description="Run again from where it stopped")
    def resume(self, request, queryset):
        resumed = sum(services.repricing_job_resume(job=job) for job in queryset)
        self.message_user(request, f"Queued {resumed} job(s) again.", messages.SUCCESS)

    def get_actions(self, request):
        actions = super().get_actions(request)
        return actions if request.user.has_perm("sessions_app.change_repricingjob") else {}


@admin.register(UsageRollup)
class UsageRollupAdmin(ReadOnlyAdmin):
    """The daily rollups behind Analytics, to look at: `manage.py rollups` checks and rebuilds them."""

    list_display = ("day", "workspace", "model", "source", "owner", "project", "sessions", "cost")
    list_select_related = ("workspace", "owner")
    raw_id_fields = ("workspace", "owner")
    show_full_result_count = False
    ordering = ("-day",)
