"""The plugins' wire format -> validated, normalised inputs for the ingest service.

Lenient where the real plugins differ (unknown keys ignored, null = absent, ints or floats,
`sessionId` for `externalId`, `inputTokens`/`outputTokens`, `timestamp` for `createdAt`), strict
where a value can't be stored (wrong types, missing ids): those raise WireError naming the field.

Usage fields beyond upstream's (all optional; how each agent counts is in pricing.CONVENTIONS):
`cacheWrite5mTokens` / `cacheWrite1hTokens` split `cacheCreationTokens` by cache lifetime,
`reasoningTokens` is the part of `completionTokens` that was reasoning, and a session's
`modelUsage` lists its usage per model (`{"model", "provider", "subagent", "inputTokens" (without
cache), "outputTokens", "reasoningTokens", "cacheReadTokens", "cacheWriteTokens",
"cacheWrite5mTokens", "cacheWrite1hTokens"}`), so a session that used several models, or
subagents, is priced per model and shows its subagents' share apart.
"""

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from opensync import inputs

from .models import Role, Source

MAX_ID_LENGTH = 255
MAX_SHORT_TEXT = 255
MAX_BIGINT = 2**63 - 1
# A token count a session could not have (a year of one agent at full speed is ~1e11): above it,
# a count is refused, so sums in the rollups and computed costs stay far within their columns.
MAX_TOKENS = 10**12
MAX_DURATION_MS = 10**11  # three years
# createdAt must be epoch milliseconds between 2000-01-01 and 2100-01-01.
MIN_EPOCH_MS = 946_684_800_000
MAX_EPOCH_MS = 4_102_444_800_000
ROLES = frozenset(Role.values)


class WireError(ValueError):
    pass


@dataclass(slots=True)
class SessionInput:
    external_id: str
    title: str | None = None
    project_path: str | None = None
    project_name: str | None = None
    model: str | None = None
    provider: str | None = None
    source: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    cache_write_5m_tokens: int | None = None
    cache_write_1h_tokens: int | None = None
    reasoning_tokens: int | None = None
    model_usage: str | None = None  # JSON text of the normalised rows
    cost: Decimal | None = None
    duration_ms: int | None = None
    created_at: datetime | None = None
    end_reason: str | None = None


@dataclass(slots=True)
class MessageInput:
    session_external_id: str
    external_id: str
    role: str
    text_content: str | None = None
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    cache_write_5m_tokens: int | None = None
    cache_write_1h_tokens: int | None = None
    reasoning_tokens: int | None = None
    duration_ms: int | None = None
    source: str | None = None
    created_at: datetime | None = None
    # None = "parts" absent (keep stored parts); a list (even empty) replaces them.
    parts: list[tuple[str, str | None]] | None = None  # (type, content as JSON text)

    def sync_hash(self) -> str:
        """Digest of everything an update would apply (createdAt is only used on insert)."""
        fields = (self.role, self.text_content, self.model, self.prompt_tokens, self.completion_tokens,
                  self.duration_ms, self.source, self.parts)  # fmt: skip
        usage = (self.cache_read_tokens, self.cache_write_tokens, self.cache_write_5m_tokens,
                 self.cache_write_1h_tokens, self.reasoning_tokens)  # fmt: skip
        if any(value is not None for value in usage):  # digests of messages without them stay as they were
            fields += usage
        return hashlib.blake2b(repr(fields).encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def clean_text(value: str) -> str:
    """PostgreSQL text can't hold NUL or lone surrogates; replace them rather than fail."""
    if "\x00" in value:
        return inputs.UNSTORABLE.sub("\ufffd", value)
    try:
        value.encode("utf-8")  # fails only on a lone surrogate: C speed for the usual clean string
    except UnicodeEncodeError:
        return inputs.UNSTORABLE.sub("\ufffd", value)
    return value


def _get(body: dict, *names: str) -> Any:
    for name in names:
        value = body.get(name)
        if value is not None:
            return value
    return None


def _string(body: dict, *names: str, max_length: int | None = None) -> str | None:
    value = _get(body, *names)
    if value is None:
        return None
    if not isinstance(value, str):
        raise WireError(f"{names[0]} must be a string, got {type(value).__name__}")
    value = clean_text(value)
    if max_length is not None and len(value) > max_length:
        raise WireError(f"{names[0]} is too long ({len(value)} characters; the limit is {max_length})")
    return value


def _required_id(body: dict, *names: str) -> str:
    value = _get(body, *names)
    if value is None or value == "":
        raise WireError(f"Missing {' or '.join(names)}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise WireError(f"{names[0]} must be a string, got {type(value).__name__}")
    value = clean_text(value.strip())
    if not value:
        raise WireError(f"Missing {' or '.join(names)}")
    if len(value) > MAX_ID_LENGTH:
        raise WireError(f"{names[0]} is too long ({len(value)} characters; the limit is {MAX_ID_LENGTH})")
    return value


def _number(body: dict, *names: str) -> int | float | None:
    value = _get(body, *names)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WireError(f"{names[0]} must be a number, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise WireError(f"{names[0]} must be a finite number")
    return value


def _count(body: dict, *names: str, limit: int = MAX_BIGINT) -> int | None:
    value = _number(body, *names)
    if value is None:
        return None
    if value < 0:
        raise WireError(f"{names[0]} must not be negative")
    value = round(value)
    if value > limit:
        raise WireError(f"{names[0]} is too large (at most {limit:,})")
    return value


def _tokens(body: dict, *names: str) -> int | None:
    return _count(body, *names, limit=MAX_TOKENS)


def _usage(body: dict) -> dict[str, int | None]:
    """The token counts a session or a message may carry (upstream's names and ours)."""
    return {
        "prompt_tokens": _tokens(body, "promptTokens", "inputTokens"),
        "completion_tokens": _tokens(body, "completionTokens", "outputTokens"),
        "cache_read_tokens": _tokens(body, "cacheReadTokens"),
        "cache_write_tokens": _tokens(body, "cacheCreationTokens", "cacheWriteTokens"),
        "cache_write_5m_tokens": _tokens(body, "cacheWrite5mTokens"),
        "cache_write_1h_tokens": _tokens(body, "cacheWrite1hTokens"),
        "reasoning_tokens": _tokens(body, "reasoningTokens"),
    }


def _cost(body: dict) -> Decimal | None:
    value = _number(body, "cost")
    if value is None:
        return None
    if value < 0:
        raise WireError("cost must not be negative")
    try:
        cost = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise WireError("cost is not a valid number") from None
    if cost >= Decimal(10) ** 10:
        raise WireError("cost is too large")
    return cost.quantize(Decimal("0.00000001"))


def _epoch_ms(body: dict, *names: str) -> datetime | None:
    value = _number(body, *names)
    if value is None:
        return None
    if not MIN_EPOCH_MS <= value <= MAX_EPOCH_MS:
        raise WireError(f"{names[0]} must be a time in epoch milliseconds (got {value})")
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def normalise_source(source: str | None) -> str | None:
    if source is None:
        return None
    source = source.strip().lower()
    if not source:
        return None
    return Source.CURSOR.value if source == "cursor" else source


def parse_json_object(raw: bytes) -> dict:
    try:
        body = inputs.loads(raw)
    except UnicodeDecodeError:
        raise WireError("Request body must be UTF-8 encoded JSON") from None
    except json.JSONDecodeError as exc:
        raise WireError(f"Malformed JSON body: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except inputs.JsonTooDeep as exc:
        raise WireError(f"Malformed JSON body: {exc}") from None
    if not isinstance(body, dict):
        raise WireError(f"Request body must be a JSON object, got {type(body).__name__}")
    return body


MAX_MODEL_USAGE_ROWS = 100
_USAGE_ROW_COUNTS = (
    "inputTokens", "outputTokens", "reasoningTokens", "cacheReadTokens", "cacheWriteTokens", "cacheWrite5mTokens",
    "cacheWrite1hTokens",
)  # fmt: skip


def _model_usage(body: dict) -> str | None:
    """`modelUsage` as JSON text: rows with the same model, provider and subagent flag summed."""
    rows = body.get("modelUsage")
    if rows is None:
        return None
    if not isinstance(rows, list):
        raise WireError(f"modelUsage must be a list, got {type(rows).__name__}")
    if len(rows) > MAX_MODEL_USAGE_ROWS:
        raise WireError(f"modelUsage has {len(rows)} rows; the limit is {MAX_MODEL_USAGE_ROWS}")
    merged: dict[tuple, dict] = {}
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise WireError(f"modelUsage[{index}] must be an object")
        try:
            model = _string(row, "model", max_length=MAX_SHORT_TEXT)
            provider = _string(row, "provider", max_length=MAX_SHORT_TEXT)
            counts = {name: _tokens(row, name) or 0 for name in _USAGE_ROW_COUNTS}
        except WireError as exc:
            raise WireError(f"modelUsage[{index}].{exc}") from None
        subagent = row.get("subagent") is True
        key = (model, provider, subagent)
        if key not in merged:
            merged[key] = {"model": model, "provider": provider, "subagent": subagent} | dict.fromkeys(counts, 0)
        for name, value in counts.items():
            merged[key][name] += value
    for name in _USAGE_ROW_COUNTS:
        if sum(row[name] for row in merged.values()) > MAX_TOKENS:
            raise WireError(f"modelUsage: the rows' {name} add up to more than {MAX_TOKENS:,}")
    return json.dumps(list(merged.values()), separators=(",", ":"))


def parse_session(body: Any) -> SessionInput:
    if not isinstance(body, dict):
        raise WireError(f"A session must be a JSON object, got {type(body).__name__}")
    return SessionInput(
        external_id=_required_id(body, "externalId", "sessionId"),
        title=_string(body, "title"),
        project_path=_string(body, "projectPath"),
        project_name=_string(body, "projectName", max_length=MAX_SHORT_TEXT),
        model=_string(body, "model", max_length=MAX_SHORT_TEXT),
        provider=_string(body, "provider", max_length=MAX_SHORT_TEXT),
        source=normalise_source(_string(body, "source", max_length=64)),
        **_usage(body),
        model_usage=_model_usage(body),
        cost=_cost(body),
        duration_ms=_count(body, "durationMs", limit=MAX_DURATION_MS),
        created_at=_epoch_ms(body, "createdAt", "startedAt"),
        end_reason=_string(body, "endReason", max_length=64),
    )


def _parts(body: dict) -> list[tuple[str, str | None]] | None:
    parts = body.get("parts")
    if parts is None:
        return None
    if not isinstance(parts, list):
        raise WireError(f"parts must be a list, got {type(parts).__name__}")
    result = []
    for index, part in enumerate(parts):
        if not isinstance(part, dict):
            raise WireError(f"parts[{index}] must be an object with type and content")
        part_type = part.get("type")
        if not isinstance(part_type, str) or not part_type.strip():
            raise WireError(f"parts[{index}].type must be a non-empty string")
        if len(part_type) > 64:
            raise WireError(f"parts[{index}].type is too long")
        content = part.get("content")
        result.append((clean_text(part_type.strip()), None if content is None else _json_text(content)))
    return result


def _json_text(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    # jsonb rejects the \u0000 escape; lone surrogates don't encode. Both are rare: fix by walking.
    if "\\u0000" in text:
        text = json.dumps(_clean_json(value), ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(_clean_json(value), ensure_ascii=False, separators=(",", ":"))
    return text


def _clean_json(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        return [_clean_json(item) for item in value]
    if isinstance(value, dict):
        return {clean_text(str(key)): _clean_json(item) for key, item in value.items()}
    return value


def parse_message(body: Any) -> MessageInput:
    if not isinstance(body, dict):
        raise WireError(f"A message must be a JSON object, got {type(body).__name__}")
    role = _string(body, "role")
    if role is None:
        role = Role.UNKNOWN
    elif role not in ROLES:
        raise WireError(f"role must be one of {', '.join(Role.values)} (got {role[:40]!r})")
    return MessageInput(
        session_external_id=_required_id(body, "sessionExternalId", "sessionId"),
        external_id=_required_id(body, "externalId"),
        role=role,
        text_content=_string(body, "textContent", "content"),
        model=_string(body, "model", max_length=MAX_SHORT_TEXT),
        **_usage(body),
        duration_ms=_count(body, "durationMs", limit=MAX_DURATION_MS),
        source=normalise_source(_string(body, "source", max_length=64)),
        created_at=_epoch_ms(body, "createdAt", "timestamp"),
        parts=_parts(body),
    )
