from django.contrib import admin

from .models import EvalTag, ExportJob, ReviewEvent


@admin.register(EvalTag)
class EvalTagAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "created_at"]
    list_select_related = ["workspace"]
    search_fields = ["name"]
    raw_id_fields = ["workspace"]


@admin.register(ReviewEvent)
class ReviewEventAdmin(admin.ModelAdmin):
    """The review history is a record: read-only here."""

    list_display = ["created_at", "session", "field", "actor"]
    list_filter = ["field"]
    list_select_related = ["session", "actor"]
    raw_id_fields = ["session", "actor"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ExportJob)
class ExportJobAdmin(admin.ModelAdmin):
    """Exports are built by the task; staff can look at them and delete them (the file goes too)."""

    list_display = ["id", "created_at", "workspace", "created_by", "format", "status", "sessions", "records", "size"]
    list_filter = ["status", "format", "via"]
    list_select_related = ["workspace", "created_by"]
    raw_id_fields = ["workspace", "created_by"]
    search_fields = ["created_by__email", "content_hash", "filename"]
    # Named, not read from _meta: the fields the abstract Job contributes (status, error, times)
    # would otherwise come first, since fields sort by when they were created.
    readonly_fields = [
        "id", "workspace", "created_by", "via", "format", "options", "scope", "scope_label", "status", "total",
        "processed", "sessions", "records", "skipped", "warnings", "error", "file", "filename", "size",
        "content_hash", "session_ids", "created_at", "updated_at", "finished_at", "file_expired_at",
    ]  # fmt: skip

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
