"""The API (wire-compatible with upstream OpenSync): the sync API the plugins write with, and the
read API for scripts (/api/...). The OpenAPI schema at /api/schema is generated from these views.

Sync bodies are parsed by `wire` rather than DRF serializers: the plugins' format needs leniency
that serializers fight (aliases, null = absent, per-item errors in a batch), and a batch of
thousands of messages must not pay per-field serializer overhead. Read query parameters go
through the `*QuerySerializer`s, so every bad parameter is a 400 naming it.
"""

import time

from django.db.models import F, Sum
from django.db.models.functions import Coalesce
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema, extend_schema_view
from rest_framework import exceptions
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.authentication import CanSync, HasApiKey
from accounts.models import ApiKey
from opensync.api import BAD_REQUEST, READ, UNAUTHORIZED, ReadApi, error, json_error

from .. import services
from ..exports import iter_messages
from ..models import DimensionRollup, Session
from ..selectors import (
    attach_message_costs,
    decode_message_position,
    is_updated_cursor,
    message_position,
    messages_page,
    session_by_id,
    session_page,
)
from ..wire import WireError, parse_json_object, parse_message, parse_session
from . import exports, serializers
from .serializers import session_filters

SYNC, META = ["Sync"], ["Meta"]
NOT_FOUND = error('`{"error": "Session not found"}`: no such session in the key\'s workspace.')
FORBIDDEN = error("A read-only key tried to write.")
TOO_LARGE = error("The body is over OPENSYNC_MAX_REQUEST_BYTES.")


class HealthApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="health",
        tags=META,
        summary="Liveness check (no key needed)",
        responses=serializers.HealthSerializer,
    )
    def get(self, request):
        return Response({"status": "ok", "timestamp": int(time.time() * 1000)})


class SyncApi(APIView):
    """Base: API key with the sync scope, body read as JSON whatever the Content-Type."""

    permission_classes = [CanSync]
    throttle_scope = "sync"  # each key's budgets: accounts.api.throttling

    def post(self, request):
        try:
            # a body over DATA_UPLOAD_MAX_MEMORY_SIZE raises RequestDataTooBig: a 413 from the exception handler
            body = parse_json_object(request.body)
        except WireError as exc:
            return json_error(str(exc), 400)
        key = request.auth
        return self.handle(body, workspace_id=key.workspace_id, owner_id=key.user_id)

    def handle(self, body: dict, *, workspace_id: int, owner_id: int) -> Response:
        raise NotImplementedError


def _sync_schema(operation_id: str, summary: str, request, response, description: str = ""):
    return extend_schema_view(
        post=extend_schema(
            operation_id=operation_id,
            tags=SYNC,
            summary=summary,
            description=description,
            request=request,
            responses={200: response, 400: BAD_REQUEST, 401: UNAUTHORIZED, 403: FORBIDDEN, 413: TOO_LARGE},
        )
    )


@_sync_schema(
    "syncSession",
    "Create or update a session",
    serializers.SyncSessionSerializer,
    serializers.SyncSessionResultSerializer,
    "Upsert on (workspace, your user, externalId). Only the fields present change; unknown keys are ignored "
    "and null means absent.",
)
class SyncSessionApi(SyncApi):
    def handle(self, body, *, workspace_id, owner_id):
        try:
            session = parse_session(body)
        except WireError as exc:
            return json_error(str(exc), 400)
        result = services.sync(workspace_id=workspace_id, owner_id=owner_id, sessions=[session], messages=[])
        return Response({"ok": True, "sessionId": str(result.session_ids[session.external_id])})


@_sync_schema(
    "syncMessage",
    "Create or update a message (and its parts)",
    serializers.SyncMessageSerializer,
    serializers.SyncMessageResultSerializer,
    "A message for an unknown session creates that session. Message tokens are never added to the session.",
)
class SyncMessageApi(SyncApi):
    def handle(self, body, *, workspace_id, owner_id):
        try:
            message = parse_message(body)
        except WireError as exc:
            return json_error(str(exc), 400)
        result = services.sync(workspace_id=workspace_id, owner_id=owner_id, sessions=[], messages=[message])
        return Response({"ok": True, "messageId": str(result.message_ids[0])})


@_sync_schema(
    "syncBatch",
    "Create or update many sessions and messages",
    serializers.SyncBatchSerializer,
    serializers.SyncBatchResultSerializer,
    "Good items are stored; each bad item is reported in `errors` and the status stays 200.",
)
class SyncBatchApi(SyncApi):
    """Good items are stored; each bad item is reported in `errors` (status stays 200)."""

    def handle(self, body, *, workspace_id, owner_id):
        errors: list[str] = []
        parsed: dict[str, list] = {}
        for name, parse in (("sessions", parse_session), ("messages", parse_message)):
            items = body.get(name)
            if items is None:
                items = []
            if not isinstance(items, list):
                return json_error(f"{name} must be a list, got {type(items).__name__}", 400)
            parsed[name] = []
            for index, item in enumerate(items):
                try:
                    parsed[name].append(parse(item))
                except WireError as exc:
                    errors.append(f"{name}[{index}]: {exc}")
        result = services.sync(
            workspace_id=workspace_id, owner_id=owner_id, sessions=parsed["sessions"], messages=parsed["messages"]
        )
        return Response(
            {"ok": True, "sessions": result.sessions_written, "messages": result.messages_written, "errors": errors}
        )


class SyncSessionsListApi(APIView):
    """External ids of the key owner's sessions in the key's workspace (opencode-sync skips these)."""

    permission_classes = [HasApiKey]
    throttle_scope = "read"

    @extend_schema(
        operation_id="syncSessionsList",
        tags=SYNC,
        summary="The externalIds of your sessions",
        responses={200: serializers.SessionIdsSerializer, 401: UNAUTHORIZED},
    )
    def get(self, request):
        key = request.auth
        ids = Session.objects.filter(workspace_id=key.workspace_id, owner_id=key.user_id).values_list(
            "external_id", flat=True
        )
        return Response({"sessionIds": list(ids)})


# --- the read API ---------------------------------------------------------------------------------


def session_for_key(key: ApiKey, session_id: str) -> Session:
    """A session of the key's workspace. Another workspace's, a deleted one or a malformed id are
    all the same 404, so ids leak nothing."""
    session = session_by_id(key.workspace_id, session_id)
    if session is None:
        raise exceptions.NotFound("Session not found")
    return session


class SessionListApi(ReadApi):
    query_serializer = serializers.SessionListQuerySerializer
    max_limit = 200

    @extend_schema(
        operation_id="sessionsList",
        tags=READ,
        summary="List sessions",
        description="The workspace's sessions, most recently updated first, a page at a time (keyset pagination: "
        "pass `nextCursor` back as `cursor`).",
        parameters=[serializers.SessionListQuerySerializer],
        responses={200: serializers.SessionListSerializer, 400: BAD_REQUEST, 401: UNAUTHORIZED},
    )
    def get(self, request):
        params = self.query(request)
        cursor = params.get("cursor") or None
        if cursor is not None and not is_updated_cursor(cursor):
            raise exceptions.ValidationError("cursor is not valid; pass the nextCursor of the previous page")
        sessions, next_cursor = session_page(
            request.auth.workspace, session_filters(params), cursor=cursor, size=min(params["limit"], self.max_limit)
        )
        return Response(
            {"sessions": serializers.SessionSerializer(sessions, many=True).data, "nextCursor": next_cursor}
        )


class SessionGetApi(ReadApi):
    query_serializer = serializers.SessionGetQuerySerializer
    max_messages = 5000

    @extend_schema(
        operation_id="sessionsGet",
        tags=READ,
        summary="One session with its messages",
        description="Messages oldest first, each with its parts in order. A session with more than `messageLimit` "
        "messages comes in windows: pass `nextMessageCursor` back as `messageCursor` for the next one.",
        parameters=[serializers.SessionGetQuerySerializer],
        responses={200: serializers.SessionDetailSerializer, 400: BAD_REQUEST, 401: UNAUTHORIZED, 404: NOT_FOUND},
    )
    def get(self, request):
        params = self.query(request)
        after = None
        if params.get("messageCursor"):
            after = decode_message_position(params["messageCursor"])
            if after is None:
                raise exceptions.ValidationError(
                    "messageCursor is not valid; pass the nextMessageCursor you were given"
                )
        session = session_for_key(request.auth, params["id"])
        messages, more = messages_page(session, after=after, size=min(params["messageLimit"], self.max_messages))
        attach_message_costs(session, messages)
        return Response(
            {
                "session": serializers.SessionSerializer(session).data,
                "messages": serializers.MessageSerializer(messages, many=True).data,
                "nextMessageCursor": message_position(messages[-1]) if more else None,
            }
        )


class ExportApi(ReadApi):
    query_serializer = serializers.ExportQuerySerializer

    @extend_schema(
        operation_id="export",
        tags=READ,
        summary="Export one session (upstream's shapes)",
        description="`json` (default): `{session, messages: [{role, content}]}`. `jsonl`: JSON "
        '`{content: "<one {role, content} object per line>", filename}`. `markdown`: the file itself, '
        "`text/markdown` with `Content-Disposition: attachment`. A message's content is its textContent, then "
        "each of its text parts whose words are not already in it, joined by newlines.",
        parameters=[serializers.ExportQuerySerializer],
        responses={
            (200, "application/json"): OpenApiResponse(
                PolymorphicProxySerializer(
                    component_name="Export",
                    serializers=[serializers.ExportJsonSerializer, serializers.ExportJsonlSerializer],
                    resource_type_field_name=None,
                ),
                description="format=json or format=jsonl",
            ),
            (200, "text/markdown"): OpenApiResponse(OpenApiTypes.STR, description="format=markdown"),
            400: BAD_REQUEST,
            401: UNAUTHORIZED,
            404: NOT_FOUND,
        },
    )
    def get(self, request):
        params = self.query(request)
        session = session_for_key(request.auth, params["id"])
        fmt = params["format"]
        messages = iter_messages(session)
        if fmt == "markdown":
            response = StreamingHttpResponse(
                exports.upstream_markdown(session, messages), content_type="text/markdown; charset=utf-8"
            )
            response["Content-Disposition"] = f'attachment; filename="{exports.upstream_filename(session, "md")}"'
            return response
        body = exports.upstream_jsonl if fmt == "jsonl" else exports.upstream_json
        return StreamingHttpResponse(body(session, messages), content_type="application/json")


class StatsApi(ReadApi):
    @extend_schema(
        operation_id="stats",
        tags=READ,
        summary="Usage totals of the workspace",
        description="Upstream's totals, from the daily rollups: tokens as the plugins reported them, costs as "
        "shown (computed by the server, else reported; unknown ones count as 0). `/api/analytics/*` has the "
        "full figures.",
        responses={200: serializers.StatsSerializer, 401: UNAUTHORIZED},
    )
    def get(self, request):
        # every session is in exactly one month row of each dimension: all time, a few rows a month
        months = DimensionRollup.objects.filter(workspace_id=request.auth.workspace_id, period="month").order_by()
        by_source = months.filter(dimension="source")
        totals = by_source.aggregate(
            sessionCount=Coalesce(Sum("sessions"), 0),
            messageCount=Coalesce(Sum("messages"), 0),
            totalTokens=Coalesce(Sum(F("prompt_tokens") + F("completion_tokens")), 0),
            totalCost=Sum("cost"),
            totalDurationMs=Coalesce(Sum("duration_ms"), 0),
        )
        totals["totalCost"] = float(totals["totalCost"] or 0)

        def usage(rows, default: str) -> dict:
            grouped = (
                rows.values("key")
                .annotate(
                    tokens=Sum(F("prompt_tokens") + F("completion_tokens")), cost=Sum("cost"), sessions=Sum("sessions")
                )
                .order_by("-tokens", "key")
            )
            return {
                row["key"] or default: {
                    "tokens": row["tokens"],
                    "cost": float(row["cost"] or 0),
                    "sessions": row["sessions"],
                }
                for row in grouped
            }

        # upstream's `model || "unknown"`
        totals["modelUsage"] = usage(months.filter(dimension="model"), "unknown")
        totals["sourceUsage"] = usage(by_source, "opencode")
        return Response(totals)
