"""Request ids and structured logs (OPENSYNC_LOG_FORMAT=json).

`RequestLogMiddleware` gives every request an id (the client's or proxy's `X-Request-ID` when it
looks like one, else a new one), echoes it in the response's `X-Request-ID`, and with JSON logs
writes one line per request on the `opensync.request` logger: request id, method, path, status,
duration in ms, and for API requests the key's workspace id and prefix (never the key).
`JsonFormatter` writes every log record as one JSON object per line, with those fields on top.
"""

import json
import logging
import re
import time
import uuid
from datetime import UTC, datetime

from django.conf import settings

request_logger = logging.getLogger("opensync.request")

# An id from outside is kept only when it can't break a log line or a header: short, printable.
_SANE_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
_FIELDS = ("request_id", "method", "path", "status", "duration_ms", "workspace_id", "key_prefix")


def request_id_for(header: str | None) -> str:
    return header if header and _SANE_ID.match(header) else uuid.uuid4().hex


class RequestLogMiddleware:
    """Outermost middleware: times the whole request, so its duration is what the client waited
    for (minus gunicorn's parsing)."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.json = settings.OPENSYNC_LOG_FORMAT == "json"

    def __call__(self, request):
        started = time.perf_counter()
        request.request_id = request_id_for(request.headers.get("X-Request-ID"))
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        if self.json:
            # set by accounts.api.authentication on requests made with an API key
            key = getattr(request, "opensync_api_key", None)
            request_logger.info(
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={
                    "request_id": request.request_id,
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                    "workspace_id": key.workspace_id if key is not None else None,
                    "key_prefix": key.prefix if key is not None else None,
                },
            )
        return response


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the request fields when present,
    and the traceback as `exc_info` text."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in _FIELDS:
            if hasattr(record, field):
                entry[field] = getattr(record, field)
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)
