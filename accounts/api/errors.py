"""Every API error is `{"error": "<message>"}` with the right 4xx/5xx status."""

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation, ValidationError
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


def _flatten(detail) -> str:
    if isinstance(detail, dict):
        parts = [
            f"{key}: {_flatten(value)}" if key != "non_field_errors" else _flatten(value)
            for key, value in detail.items()
        ]
        return "; ".join(parts)
    if isinstance(detail, list):
        return "; ".join(_flatten(item) for item in detail)
    return str(detail)


def exception_handler(exc, context):
    if isinstance(exc, SuspiciousOperation):
        # Django's own limits (DATA_UPLOAD_MAX_MEMORY_SIZE, _NUMBER_FIELDS, _NUMBER_FILES) and
        # malformed requests: the client's fault, which DRF would leave to become a 500.
        return Response({"error": suspicious_message(exc)}, status=suspicious_status(exc))
    if isinstance(exc, ValidationError):
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("Unhandled API error", exc_info=exc)
        return Response({"error": "Internal server error"}, status=500)
    if isinstance(exc, exceptions.ParseError):
        message = f"Malformed JSON body: {exc.detail}"
    elif isinstance(exc, Http404):
        message = "Not found"
    elif isinstance(exc, PermissionDenied):
        message = str(exc) or "Forbidden"
    else:
        message = _flatten(getattr(exc, "detail", response.data))
    response.data = {"error": message}
    return response


def suspicious_status(exc: SuspiciousOperation) -> int:
    return 413 if isinstance(exc, RequestDataTooBig) else 400


def suspicious_message(exc: SuspiciousOperation) -> str:
    if isinstance(exc, RequestDataTooBig):
        return f"Request body is too large; the limit is {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes"
    return str(exc) or "Bad request"


def json_error(message: str, status: int, **headers) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status)
    for name, value in headers.items():
        response[name] = value
    return response
