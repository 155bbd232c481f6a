"""The one JSON parser of every API view (REST_FRAMEWORK's DEFAULT_PARSER_CLASSES)."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils.json import strict_constant

from opensync import inputs


class BoundedJSONParser(parsers.JSONParser):
    """DRF's JSONParser with the nesting limit of `opensync.inputs.loads`: a body nested
    thousands of levels deep is a 400, not a RecursionError (500)."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        # DRF reads the request as a stream, which skips Django's DATA_UPLOAD_MAX_MEMORY_SIZE check
        # on request.body: the same limit here (the exception handler makes it a 413).
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = (stream.read(limit + 1) if limit is not None else stream.read()) if stream is not None else b""
        if limit is not None and len(raw) > limit:
            raise RequestDataTooBig("Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE.")
        try:
            text = raw.decode(encoding)
            return inputs.loads(text, parse_constant=strict_constant if self.strict else None)
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, JsonTooDeep
            raise ParseError(str(exc)) from None
