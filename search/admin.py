from django.contrib import admin

from .models import MessageChunkEmbedding, SessionEmbedding


class EmbeddingAdmin(admin.ModelAdmin):
    """Read-only: vectors are computed by the embed task and `manage.py embeddings`."""

    list_select_related = ["workspace"]
    exclude = ["embedding"]  # 1,536 floats help nobody

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(MessageChunkEmbedding)
class MessageChunkEmbeddingAdmin(EmbeddingAdmin):
    list_display = ["id", "workspace", "session_id", "message_id", "chunk_index", "updated_at"]
    raw_id_fields = ["workspace", "session", "message"]


@admin.register(SessionEmbedding)
class SessionEmbeddingAdmin(EmbeddingAdmin):
    list_display = ["id", "workspace", "session", "updated_at"]
    list_select_related = ["workspace", "session"]
    raw_id_fields = ["workspace", "session"]
