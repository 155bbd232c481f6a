"""Shapes of the search and context API (/api/search, /api/context): query parameters in, JSON
out, camelCase as upstream OpenSync sends them. Search results are sessions (the read API's
SessionSerializer) with why they matched, and carry upstream's semantic `_id` too."""

from rest_framework import serializers

from opensync.api import limit_field, text_filter
from sessions_app.api.serializers import SessionSerializer

from .. import context
from ..selectors import MAX_QUERY_CHARS


def mode_field(*, default: str) -> serializers.ChoiceField:
    return serializers.ChoiceField(
        choices=["fulltext", "semantic", "hybrid"],
        required=False,
        default=default,
        help_text="semantic and hybrid fall back to fulltext when no embeddings provider is configured.",
        error_messages={"invalid_choice": "type must be one of fulltext, semantic, hybrid"},
    )


class SearchQuerySerializer(serializers.Serializer):
    q = serializers.CharField(
        max_length=MAX_QUERY_CHARS,
        help_text="Web-search syntax: quotes for phrases, OR, -word to exclude.",
        error_messages={
            "required": "Missing query parameter 'q'",  # upstream's words
            "blank": "Missing query parameter 'q'",
            "max_length": f"q is too long; the limit is {MAX_QUERY_CHARS} characters",
        },
    )
    type = mode_field(default="fulltext")
    limit = limit_field(default=20, maximum=50)
    offset = serializers.IntegerField(
        required=False,
        default=0,
        min_value=0,
        max_value=1000,
        error_messages={
            "invalid": "offset must be a whole number",
            "min_value": "offset must not be negative",
            "max_value": "offset must be at most 1000",
        },
    )
    source = text_filter("source", "Only sessions of this plugin.", max_length=64)  # type: ignore[assignment]
    project = text_filter("project", "Only sessions of this project name.")
    model = text_filter("model", "Only sessions of this model.")
    provider = text_filter("provider", "Only sessions of this provider.")


class SearchResultSerializer(SessionSerializer):
    """A session (both `id` and upstream's semantic `_id`) and why it matched."""

    _id = serializers.CharField(
        source="pk", label="_id", help_text="Same as id (upstream's semantic results used _id)."
    )
    score = serializers.FloatField(
        source="search_hit.score", help_text="Higher is better; comparable within one answer."
    )
    snippet = serializers.CharField(
        source="search_hit.snippet",
        help_text="HTML: the matching text, escaped, with <mark>…</mark> around the matches; empty if none.",
    )
    messageId = serializers.SerializerMethodField(help_text="The best matching message, if a message matched.")
    matchedBy = serializers.ListField(
        source="search_hit.matched_by", child=serializers.CharField(), help_text="fulltext and/or semantic."
    )

    def get_messageId(self, session) -> str | None:
        message_id = session.search_hit.message_id
        return None if message_id is None else str(message_id)


class SearchSerializer(serializers.Serializer):
    results = SearchResultSerializer(many=True, help_text="Best first.")
    type = serializers.ChoiceField(choices=["fulltext", "semantic", "hybrid"], help_text="The mode actually used.")
    notice = serializers.CharField(allow_null=True, help_text="Set when the mode asked for could not be used.")


class ContextQuerySerializer(SearchQuerySerializer):
    """/api/context: the search's parameters (no offset), the output format and a token budget."""

    offset = None  # type: ignore[assignment]  # DRF's way to drop an inherited field
    type = mode_field(default="hybrid")
    limit = limit_field(default=5, maximum=20)
    format = serializers.ChoiceField(
        choices=["text", "messages", "markdown", "xml"],
        required=False,
        default="text",
        help_text="text (upstream's), messages (chat messages with metadata), markdown or xml (tagged blocks).",
        error_messages={"invalid_choice": "format must be one of text, messages, markdown, xml"},
    )
    maxTokens = serializers.IntegerField(
        required=False,
        default=context.DEFAULT_BUDGET,
        min_value=context.MIN_BUDGET,
        max_value=context.MAX_BUDGET,
        help_text="Token budget (tiktoken cl100k_base) the context is trimmed to fit.",
        error_messages={
            "invalid": "maxTokens must be a whole number",
            "min_value": f"maxTokens must be at least {context.MIN_BUDGET}",
            "max_value": f"maxTokens must be at most {context.MAX_BUDGET}",
        },
    )
    messagesPerSession = serializers.IntegerField(
        required=False,
        default=context.DEFAULT_LAST,
        min_value=1,
        max_value=context.MAX_LAST,
        help_text="The last N messages of each session (plus its first message and the one that matched).",
        error_messages={
            "invalid": "messagesPerSession must be a whole number",
            "min_value": "messagesPerSession must be at least 1",
            "max_value": f"messagesPerSession must be at most {context.MAX_LAST}",
        },
    )


class ContextMessageMetadataSerializer(serializers.Serializer):
    sessionId = serializers.CharField()
    sessionTitle = serializers.CharField(allow_null=True)


class ContextMessageSerializer(serializers.Serializer):
    role = serializers.CharField()
    content = serializers.CharField()
    metadata = ContextMessageMetadataSerializer()


class ContextSerializer(serializers.Serializer):
    text = serializers.CharField(required=False, help_text="format=text, markdown or xml.")
    messages = ContextMessageSerializer(many=True, required=False, help_text="format=messages.")
    sessionCount = serializers.IntegerField(help_text="Sessions with at least one message in the context.")
    sessionIds = serializers.ListField(child=serializers.CharField(), help_text="Those sessions, in rank order.")
    tokenCount = serializers.IntegerField(help_text="tiktoken cl100k_base tokens of the context.")
    maxTokens = serializers.IntegerField(help_text="The budget applied.")
    truncated = serializers.BooleanField(help_text="Messages were left out or cut to fit the budget.")
    type = serializers.ChoiceField(choices=["fulltext", "semantic", "hybrid"], help_text="The search mode used.")
    notice = serializers.CharField(allow_null=True, help_text="Set when the mode asked for could not be used.")
