from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from .models import Message, Part, Session, Source

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
        "is_public",
        "updated_at",
    )
    list_filter = (SourceFilter, "is_public", "eval_ready")
    search_fields = ("=external_id", "title", "project_name", "owner__email")
    list_select_related = ("workspace", "owner")
    raw_id_fields = ("workspace", "owner", "reviewed_by")
    readonly_fields = ("total_tokens", "messages_link")
    show_full_result_count = False
    actions = ("make_private",)

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


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
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
class PartAdmin(admin.ModelAdmin):
    list_display = ("id", "message", "type", "order")
    search_fields = ("=type", "=message__external_id")
    list_select_related = ("message",)
    raw_id_fields = ("message",)
    show_full_result_count = False
    ordering = ("-pk",)
