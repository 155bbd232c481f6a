from django.contrib import admin

from .models import EvalTag, ReviewEvent


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
