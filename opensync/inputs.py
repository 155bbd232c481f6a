"""What user input may be, checked the same way wherever it enters (forms, the read API, the sync
API, the dashboard's query strings), so a bad value is a clear 400 or form error, never a 500:

* `whole_number`: a plain run of ASCII digits. `str.isdigit()` accepts "²" or "٣", which `int()`
  then rejects (or reads as another number), so it is never used on input.
* `validate_text`: text PostgreSQL can store. A text column can't hold NUL, and neither can a
  query parameter bound to one; a lone surrogate (only possible from a JSON `\\ud800` escape)
  can't be encoded at all. Forms and serializers reject both; the sync API instead replaces them
  with U+FFFD (wire.clean_text), because a plugin can't fix a recorded session and rejecting the
  message would lose it.
* `loads`: JSON parsed with at most MAX_JSON_DEPTH levels of nesting. Python's parser recurses
  per level: ~1,000 levels is a RecursionError (a 500), and anything stored much deeper than a
  page of code ever nests would crash every later reader that walks it (the viewer, exports).
"""

import json
import re
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible

# Real agent data nests ~10 levels (a tool call's arguments inside a part inside a batch).
MAX_JSON_DEPTH = 100
_WHOLE_NUMBER = re.compile(r"[0-9]{1,18}")  # at most 18 digits: always fits a bigint
# What PostgreSQL text can't hold: refused here, replaced by U+FFFD in the sync API (wire.clean_text).
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def whole_number(value: str | None) -> int | None:
    """The int of a plain run of ASCII digits (no sign, no spaces, not "²"), else None."""
    return int(value) if isinstance(value, str) and _WHOLE_NUMBER.fullmatch(value) else None


@deconstructible
class TextValidator:
    """Rejects text PostgreSQL can't store: NUL characters and lone surrogates."""

    def __call__(self, value) -> None:
        if isinstance(value, str) and UNSTORABLE.search(value):
            raise ValidationError(unstorable_message(value), code="unstorable_text")

    def __eq__(self, other):
        return isinstance(other, TextValidator)


validate_text = TextValidator()


def unstorable_message(value: str) -> str:
    found = UNSTORABLE.search(value)
    if found is None:
        return ""
    what = "a NUL character (\\u0000)" if found.group() == "\x00" else "an unpaired surrogate (\\ud800-\\udfff)"
    return f"Text must not contain {what}."


class JsonTooDeep(ValueError):
    """JSON nested deeper than MAX_JSON_DEPTH (a ValueError, like a malformed body)."""

    def __init__(self, limit: int = MAX_JSON_DEPTH):
        super().__init__(f"JSON is nested more than {limit} levels deep")


def nested_deeper_than(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether parsed JSON nests arrays/objects more than `limit` deep (`[]` is one level, `[[]]`
    two). Walked with a stack, not recursion: it measures what would crash a recursive reader."""
    stack = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


def loads(raw: bytes | str, **kwargs) -> Any:
    """json.loads, refusing more than MAX_JSON_DEPTH levels of nesting (JsonTooDeep). Raises what
    json.loads raises otherwise (ValueError: JSONDecodeError, UnicodeDecodeError).

    Parsed first, then measured: the C parser takes ~1,000 levels before its RecursionError, and
    walking the parsed containers costs a fraction of the parse, where scanning the text for
    brackets outside strings cost ~6 parses (1.8 ms against 0.3 ms for a 150 KB sync batch)."""
    try:
        value = json.loads(raw, **kwargs)
    except RecursionError:  # deeper than the parser's own stack allows
        raise JsonTooDeep() from None
    if nested_deeper_than(value):
        raise JsonTooDeep()
    return value
