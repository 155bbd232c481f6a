"""The sync API the plugins talk to (wire-compatible with upstream OpenSync).

Bodies are parsed by `wire` rather than DRF serializers: the plugins' format needs leniency that
serializers fight (aliases, null = absent, per-item errors in a batch), and a batch of thousands
of messages must not pay per-field serializer overhead.
"""

import time

from django.core.exceptions import RequestDataTooBig
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.authentication import CanSync, HasApiKey
from accounts.api.errors import json_error

from .. import services
from ..models import Session
from ..wire import WireError, parse_json_object, parse_message, parse_session


class HealthApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get(self, request):
        return Response({"status": "ok", "timestamp": int(time.time() * 1000)})


class SyncApi(APIView):
    """Base: API key with the sync scope, body read as JSON whatever the Content-Type."""

    permission_classes = [CanSync]

    def post(self, request):
        try:
            body = parse_json_object(request.body)
        except RequestDataTooBig:
            return json_error("Request body is too large", 413)
        except WireError as exc:
            return json_error(str(exc), 400)
        key = request.auth
        return self.handle(body, workspace_id=key.workspace_id, owner_id=key.user_id)

    def handle(self, body: dict, *, workspace_id: int, owner_id: int) -> Response:
        raise NotImplementedError


class SyncSessionApi(SyncApi):
    def handle(self, body, *, workspace_id, owner_id):
        try:
            session = parse_session(body)
        except WireError as exc:
            return json_error(str(exc), 400)
        result = services.sync(workspace_id=workspace_id, owner_id=owner_id, sessions=[session], messages=[])
        return Response({"ok": True, "sessionId": str(result.session_ids[session.external_id])})


class SyncMessageApi(SyncApi):
    def handle(self, body, *, workspace_id, owner_id):
        try:
            message = parse_message(body)
        except WireError as exc:
            return json_error(str(exc), 400)
        result = services.sync(workspace_id=workspace_id, owner_id=owner_id, sessions=[], messages=[message])
        return Response({"ok": True, "messageId": str(result.message_ids[0])})


class SyncBatchApi(SyncApi):
    """Good items are stored; each bad item is reported in `errors` (status stays 200)."""

    def handle(self, body, *, workspace_id, owner_id):
        errors: list[str] = []
        parsed = {}
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

    def get(self, request):
        key = request.auth
        ids = Session.objects.filter(workspace_id=key.workspace_id, owner_id=key.user_id).values_list(
            "external_id", flat=True
        )
        return Response({"sessionIds": list(ids)})
