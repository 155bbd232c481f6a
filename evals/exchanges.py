"""A coding session as eval material: system prompts and "exchanges" (eval-formats.md §1).

An exchange is one user message and every assistant or tool message up to the next user
message; exchanges with no assistant answer are dropped. Its answer is the last non-empty
assistant text, unless a reviewer gave a corrected answer for one of its assistant turns (the
last such correction wins): the correction then takes that text's place in the conversation
itself, so the exchange's own record and every later record's history show it, in every format.
The reviewer's expected output for the session belongs to the last exchange only. Tool calls are
paired with their results (by call id where the plugin sent one, else in order) as DeepEval's
`{name, input_parameters, output}`.

`conversation()` reads one session from the database; everything else works on plain data, so
the formats (evals.formats) are tested without a database.
"""

import json
import re
from collections import defaultdict, deque
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, NamedTuple

from sessions_app.message_text import message_text
from sessions_app.models import Message, Part
from sessions_app.rendering import (
    TOOL_CALL_TYPES,
    TOOL_RESULT_TYPES,
    call_output,
    strip_thinking,
    tool_call,
    tool_output,
)

from .selectors import attach_labels

ROLES = ("system", "user", "assistant", "tool")


@dataclass
class ToolCall:
    name: str
    input_parameters: dict
    output: str | None = None
    call_id: str | None = None

    def as_deepeval(self) -> dict:
        return {"name": self.name, "input_parameters": self.input_parameters, "output": self.output or ""}

    def as_text(self) -> str:
        """The call and its result folded into text, for formats with no tool slot (§3.2)."""
        args = json.dumps(self.input_parameters, ensure_ascii=False, sort_keys=True)
        text = f"[TOOL_CALL: {self.name}] {args}"
        if self.output:
            text += f"\n[TOOL_RESULT: {self.name}]\n{self.output}"
        return text


class PartRow(NamedTuple):
    type: str
    content: Any


@dataclass
class Turn:
    """One message, reduced to what evals use."""

    role: str
    text: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    corrected: str | None = None  # a reviewer's corrected answer (assistant turns)
    at: str = ""  # ISO time of the message
    recorded: str | None = None  # the agent's own text, when a reviewer's correction took its place in `text`


@dataclass
class Exchange:
    number: int  # 1-based, in the session
    user: str
    assistant: list[Turn]
    # its user message's index in Conversation.turns: the turns before it are its history (an index,
    # not a list: a list per exchange held the square of the session in memory)
    start: int
    answer: str
    expected: str | None = None
    at: str = ""  # ISO time of the user message

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [call for turn in self.assistant for call in turn.tool_calls]

    @property
    def recorded(self) -> str:
        """What the agent answered: the last non-empty assistant text, as the agent wrote it."""
        texts = (turn.text if turn.recorded is None else turn.recorded for turn in reversed(self.assistant))
        return next((text for text in texts if text), "")

    def assistant_texts(self) -> list[str]:
        """Each assistant turn's text, the recorded answer replaced by a reviewer's correction."""
        texts = [turn.text for turn in self.assistant]
        if self.answer != self.recorded:
            last = max((i for i, text in enumerate(texts) if text), default=len(texts) - 1)
            texts[last] = self.answer
        return texts


@dataclass
class Conversation:
    meta: dict  # session_id, title, source, model, project, tags, eval_status, created_at, language
    notes: str
    expected: str | None
    system: list[str]
    turns: list[Turn]  # without system prompts; a corrected answer in place of the text it corrects
    exchanges: list[Exchange]
    tokens: int = 0


# --- cleaning: anonymized paths and redacted secrets, applied to every string ---------------------

_HOME = [
    (re.compile(r"/Users/[^/\s\"']+"), "/Users/user"),
    (re.compile(r"/home/[^/\s\"']+"), "/home/user"),
    (re.compile(r"([A-Za-z]:\\+Users\\+)[^\\\s\"']+"), r"\1user"),
]
# The text rules are the plugins' (plugins/claude-code-sync/src/claude_code_sync/redact.py,
# plugins/opencode-sync/src/redact.js), in the same order: tests/fixtures/redaction_corpus.json is
# run through all three, so a change here needs the same change there. re.ASCII: \b, \w and
# IGNORECASE as JavaScript has them.
# A name is a secret's when it ends in one of these (DB_PASSWORD, api_key, GITHUB_TOKEN,
# STRIPE_SECRET_KEY, client_secret); max_tokens, token_count, AUTHOR or PWD are not.
_SECRET_WORDS = r"(?:password|passwd|passphrase|secret|token|credentials?|(?:api|access|private|secret|auth)[_-]?key)"  # noqa: S105 - a pattern, not a password
# Values that are not secrets even under a secret's name: numbers, booleans, $VARIABLES, empty.
_HARMLESS_VALUE = re.compile(
    r"(?:\d+(?:\.\d+)?|true|false|null|none|undefined|\$\{?\w+\}?|\[REDACTED\])?", re.ASCII | re.IGNORECASE
)


def _assignment(match: re.Match) -> str:
    value = match.group(3)
    quote = value[0] if value[0] in "\"'" else ""
    if _HARMLESS_VALUE.fullmatch(value[1:-1] if quote else value):
        return match.group(0)
    return match.group(0)[: match.start(3) - match.start(0)] + quote + REDACTED + quote


# (pattern, replacement, text it needs in lower case): most strings have none of it, and a
# substring check is much cheaper than running the pattern.
_SECRETS = [
    (
        re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----", re.ASCII),
        "[REDACTED]",
        ("-----begin",),
    ),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", re.ASCII), "[REDACTED]", ("eyj",)),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{16,}", re.ASCII), "[REDACTED]", ("sk-",)),  # OpenAI / Anthropic keys
    (re.compile(r"\bosk_[A-Za-z0-9_-]{16,}", re.ASCII), "[REDACTED]", ("osk_",)),  # OpenSync keys
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}", re.ASCII), "[REDACTED]", ("github_pat_",)),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}", re.ASCII), "[REDACTED]", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", re.ASCII), "[REDACTED]", ("akia", "asia")),  # AWS key ids
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}", re.ASCII), "[REDACTED]", ("xox",)),  # Slack tokens
    # Authorization: Bearer …
    (re.compile(r"\b(bearer[ \t]+)[A-Za-z0-9._~+/=-]{12,}", re.ASCII | re.IGNORECASE), r"\1[REDACTED]", ("bearer",)),
    # scheme://user:password@host (postgres://app:s3cret@db/x, redis://:pass@host): the password goes;
    # the scheme is at most 32 characters (unbounded, a long a-b-c-... run was rescanned from every `-`)
    (
        re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]{0,31}://[^ \t\r\n:/@'\"`]*:)[^ \t\r\n/@'\"`]+@", re.ASCII),
        r"\1[REDACTED]@",
        ("://",),
    ),
    # DB_PASSWORD=..., api_key: ..., "password": "...": the value goes, its quotes stay. The name
    # starts where a run of name characters starts, never inside one (a pattern that can start
    # anywhere in a long a-b-c-... run rescans it from every `-`); a bare value stops at a
    # backtick, so "`TOKEN=abc`" keeps its closing one.
    (
        re.compile(
            r"""(?<![A-Za-z0-9_.-])(["']?)([A-Za-z0-9_.-]*?""" + _SECRET_WORDS + r""")\b\1[ \t]*[:=][ \t]*"""
            r"""("[^"\n]*"|'[^'\n]*'|[^ \t\r\n"'`,;&|()}<>]+)""",
            re.ASCII | re.IGNORECASE,
        ),
        _assignment,
        ("passw", "passphrase", "secret", "token", "credential", "key"),
    ),
]
_SECRET_MARKERS = tuple(marker for _, _, markers in _SECRETS for marker in markers)
# Dict keys whose string value is a secret as a whole (tool arguments such as {"password": …}).
SECRET_KEY = re.compile(r"(?i)(api[_-]?key|access[_-]?key|private[_-]?key|secret|password|passwd|token|credentials?)$")
_HOME_MARKERS = ("/Users/", "/home/", "Users\\")
REDACTED = "[REDACTED]"


def anonymize(text: str) -> str:
    if not any(marker in text for marker in _HOME_MARKERS):
        return text
    for pattern, replacement in _HOME:
        text = pattern.sub(replacement, text)
    return text


def redact(text: str) -> str:
    lowered = text.lower()
    if not any(marker in lowered for marker in _SECRET_MARKERS):
        return text
    for pattern, replacement, markers in _SECRETS:
        if any(marker in lowered for marker in markers):
            text = pattern.sub(replacement, text)
    return text


CACHED_CHARS = 20_000  # longer strings are cleaned each time (the cache holds at most ~40 MB)


@lru_cache(maxsize=2048)
def _clean_cached(text: str, anonymize_paths: bool, redact_secrets: bool) -> str:
    return _clean_text(text, anonymize_paths, redact_secrets)


def _clean_text(text: str, anonymize_paths: bool, redact_secrets: bool) -> str:
    if anonymize_paths:
        text = anonymize(text)
    if redact_secrets:
        text = redact(text)
    return text


def clean_value(value: Any, *, anonymize_paths: bool, redact_secrets: bool) -> Any:
    """`value` with every string in it (dict keys and values, list items) cleaned. A turn's
    text appears in many records (per-turn context), so short strings are cleaned once."""
    if isinstance(value, str):
        if not (anonymize_paths or redact_secrets):
            return value
        if len(value) <= CACHED_CHARS:
            return _clean_cached(value, anonymize_paths, redact_secrets)
        return _clean_text(value, anonymize_paths, redact_secrets)
    if isinstance(value, dict):
        return {
            clean_value(k, anonymize_paths=anonymize_paths, redact_secrets=redact_secrets): (
                REDACTED
                if redact_secrets and isinstance(v, str) and len(v) >= 6 and isinstance(k, str) and SECRET_KEY.search(k)
                else clean_value(v, anonymize_paths=anonymize_paths, redact_secrets=redact_secrets)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [clean_value(v, anonymize_paths=anonymize_paths, redact_secrets=redact_secrets) for v in value]
    return value


# --- building -------------------------------------------------------------------------------------


def _call_id(content: Any) -> str | None:
    if isinstance(content, dict):
        for key in ("id", "callID", "callId", "toolCallId", "tool_call_id", "tool_use_id", "toolUseId"):
            if content.get(key):
                return str(content[key])
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, dict) and "text" in v for v in value):
        return "\n".join(str(v["text"]) for v in value)
    return json.dumps(value, ensure_ascii=False, default=str)


def _open(queue: deque[ToolCall] | None) -> ToolCall | None:
    """The queue's oldest unanswered call (answered ones at its front are dropped)."""
    while queue and queue[0].output is not None:
        queue.popleft()
    return queue[0] if queue else None


def turns_from_messages(messages, parts_of=None) -> list[Turn]:
    """Turns from Message rows (with, for assistants, `corrected_answer` set by
    evals.selectors.attach_labels when labels are wanted). `parts_of(message)` gives a message's
    parts in order (objects with `type` and `content`); by default `message.parts.all()`."""
    turns: list[Turn] = []
    # Unanswered calls by id (None: no id), and all of them oldest first. A call answered through
    # one queue stays in the other until it reaches the front, so each is dropped once: a scan of
    # every id for each result without one made a session of many calls quadratic.
    pending: dict[str | None, deque[ToolCall]] = defaultdict(deque)
    opened: deque[ToolCall] = deque()
    for message in messages:
        if message.role not in ROLES:
            continue  # "unknown": no eval format has a place for it
        role = message.role
        calls, results = [], []
        parts = list(parts_of(message) if parts_of else message.parts.all())
        for part in parts:
            if part.type in TOOL_CALL_TYPES:
                name, args = tool_call(part.content)
                call = ToolCall(name, args if isinstance(args, dict) else {"input": args}, None, _call_id(part.content))
                calls.append(call)
                # some plugins send the result inside the call part (opencode's tool state; a
                # failed call carries its `error` instead)
                output = call_output(part.content)
                if output is not None:
                    call.output = _text(output)
                else:
                    pending[call.call_id].append(call)
                    opened.append(call)
            elif part.type in TOOL_RESULT_TYPES:
                results.append((_call_id(part.content), _text(tool_output(part.content))))
        text = message_text(message.text_content, parts)
        if role == "tool" and not results and text.strip():
            results.append((None, text))
            text = ""
        for call_id, output in results:
            # by id; else a call sent without an id; a result without an id takes the oldest open call
            call = _open(pending.get(call_id)) or _open(pending.get(None))
            if call is None and call_id is None:
                call = _open(opened)
            if call is not None:
                call.output = output
        text = strip_thinking(text).strip()
        if role == "tool":
            continue  # results are attached to their calls
        at = message.created_at.isoformat().replace("+00:00", "Z") if message.created_at else ""
        turns.append(Turn(role, text, calls, getattr(message, "corrected_answer", None), at))
    return turns


def build(
    turns: list[Turn], *, meta: dict, notes: str = "", expected: str | None = None, tokens: int = 0
) -> Conversation:
    system = [turn.text for turn in turns if turn.role == "system" and turn.text]
    rest = [turn for turn in turns if turn.role != "system"]
    exchanges: list[Exchange] = []
    index = 0
    while index < len(rest):
        if rest[index].role != "user":
            index += 1
            continue
        user, end = rest[index], index + 1
        while end < len(rest) and rest[end].role != "user":
            end += 1
        positions = [k for k in range(index + 1, end) if rest[k].role == "assistant"]
        assistant = [rest[k] for k in positions]
        answer = next((turn.text for turn in reversed(assistant) if turn.text), "")
        corrected = next((turn.corrected for turn in reversed(assistant) if turn.corrected), None)
        if assistant and (answer or corrected or any(turn.tool_calls for turn in assistant)):
            if corrected and corrected != answer:
                # in place of the recorded answer (the last assistant text, else the last turn), so
                # later records' history shows the correction too, not the answer it corrects
                k = next((k for k in reversed(positions) if rest[k].text), positions[-1])
                rest[k] = replace(rest[k], text=corrected, recorded=rest[k].text)
                assistant = [rest[k] for k in positions]
            exchanges.append(Exchange(len(exchanges) + 1, user.text, assistant, index, corrected or answer, at=user.at))
        index = end
    if exchanges and expected:
        exchanges[-1].expected = expected
    return Conversation(meta, notes, expected, system, rest, exchanges, tokens)


def conversations(sessions) -> list[Conversation]:
    """Sessions from the database as conversations, in the order given: their messages in
    display order with parts and labels, in three queries whatever the number of sessions."""
    sessions = list(sessions)
    by_session: dict[int, list] = {session.pk: [] for session in sessions}
    messages = list(
        Message.objects.filter(session_id__in=list(by_session))
        .only("id", "session_id", "role", "text_content", "created_at", "order")
        .order_by("session_id", "created_at", "order")
    )
    # Parts as plain rows in one query: prefetch_related builds a queryset per message, which
    # was most of an export's time.
    parts: dict[int, list[PartRow]] = defaultdict(list)
    rows = (
        Part.objects.filter(message__session_id__in=list(by_session))
        .order_by("message_id", "order")
        .values_list("message_id", "type", "content")
    )
    for message_id, kind, content in rows:
        parts[message_id].append(PartRow(kind, content))
    attach_labels([m for m in messages if m.role == "assistant"])
    for message in messages:
        by_session[message.session_id].append(message)
    return [_conversation(session, by_session[session.pk], parts) for session in sessions]


def conversation(session) -> Conversation:
    """One session from the database."""
    return conversations([session])[0]


def _conversation(session, messages, parts: dict[int, list[PartRow]]) -> Conversation:
    meta = {
        "session_id": session.external_id,
        "title": session.title or "",
        "source": str(session.source),
        "model": session.model or "",
        "project": session.project_name or "",
        "tags": list(session.eval_tags),
        "eval_status": session.eval_status or "",
        "created_at": session.created_at.isoformat().replace("+00:00", "Z"),
    }
    if session.detected_language:
        meta["language"] = session.detected_language
    return build(
        turns_from_messages(messages, parts_of=lambda message: parts.get(message.pk, ())),
        meta=meta,
        notes=session.eval_notes,
        expected=session.expected_output,
        tokens=(session.prompt_tokens or 0) + (session.completion_tokens or 0),
    )
