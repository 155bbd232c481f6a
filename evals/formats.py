"""Eval records from conversations (evals.exchanges), exactly as the real tools load them
(eval-formats.md): DeepEval goldens (single-turn) and conversational goldens (multi-turn),
OpenAI Evals registry samples and API items, Promptfoo test cases, chat JSONL and one text
file per session (filesystem).

Every function takes one Conversation and Options and returns that session's records; the
export job writes them out. Cleaning (anonymized paths, redacted secrets) is applied to every
string of every record, keys included.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from .exchanges import Conversation, Exchange, Turn, clean_value

PER_TURN, FINAL_ONLY, FULL, MULTI_TURN = "per_turn", "final_only", "full", "multi_turn"
TURN_MODES = {
    PER_TURN: "One record per exchange",
    FINAL_ONLY: "The last exchange only",
    FULL: "One record per session (all prompts, all answers)",
    MULTI_TURN: "One multi-turn conversation per session",
}
FENCE = re.compile(r"```[\s\S]*?```")


@dataclass(frozen=True)
class Options:
    turn_mode: str = PER_TURN
    include_tools: bool = True
    include_system: bool = False
    anonymize_paths: bool = False
    redact_secrets: bool = True
    min_length: int = 0  # exchanges whose prompt or answer is shorter are left out
    code_blocks_only: bool = False  # only exchanges whose prompt or answer has a fenced code block
    replay: bool = True  # Promptfoo: the recorded answer as `providerOutput`


def _clean(record, options: Options):
    return clean_value(record, anonymize_paths=options.anonymize_paths, redact_secrets=options.redact_secrets)


def kept_exchanges(conversation: Conversation, options: Options) -> list[Exchange]:
    """The exchanges that pass the minimum length and code-blocks-only options."""
    exchanges = conversation.exchanges
    if options.min_length:
        exchanges = [e for e in exchanges if min(len(e.user), len(e.answer)) >= options.min_length]
    if options.code_blocks_only:
        exchanges = [e for e in exchanges if FENCE.search(e.user) or FENCE.search(e.answer)]
    if conversation.expected and exchanges and exchanges[-1] is not conversation.exchanges[-1]:
        # the session's last exchange was left out: the expected output goes on the last one kept
        exchanges = [*exchanges[:-1], replace(exchanges[-1], expected=conversation.expected)]
    return exchanges


def _exchanges(conversation: Conversation, options: Options) -> list[Exchange]:
    """The exchanges a single-turn format writes, by turn mode. `full` merges the session into
    one exchange: every prompt, and every exchange's answer, in order."""
    exchanges = kept_exchanges(conversation, options)
    if not exchanges or options.turn_mode in (PER_TURN, MULTI_TURN):
        return exchanges
    if options.turn_mode == FINAL_ONLY:
        return exchanges[-1:]
    return [
        Exchange(
            number=1,
            user="\n\n".join(e.user for e in exchanges if e.user),
            assistant=[turn for e in exchanges for turn in e.assistant],
            history=[],
            answer="\n\n".join(e.answer for e in exchanges if e.answer),
            expected=conversation.expected,
            at=exchanges[0].at,
        )
    ]


def _folded(turn: Turn, options: Options) -> str:
    """An assistant turn's text with its tool activity folded in (formats with no tool slot)."""
    pieces = [turn.text] if turn.text else []
    if options.include_tools:
        pieces += [call.as_text() for call in turn.tool_calls]
    return "\n\n".join(pieces)


def _chat_history(conversation: Conversation, turns: list[Turn], options: Options) -> list[dict]:
    """Chat messages: the system prompts (when included), then `turns` with tool activity folded
    into the assistant text; empty messages left out."""
    messages = [{"role": "system", "content": text} for text in conversation.system] if options.include_system else []
    for turn in turns:
        content = _folded(turn, options) if turn.role == "assistant" else turn.text
        if content:
            messages.append({"role": turn.role, "content": content})
    return messages


def _as_lines(messages: list[dict]) -> list[str]:
    """Messages as DeepEval `context` strings: "role: text"."""
    return [f"{message['role']}: {message['content']}" for message in messages]


def _metadata(conversation: Conversation, **extra) -> dict:
    return {**conversation.meta, **extra}


# --- DeepEval ---------------------------------------------------------------------------------------


def deepeval(conversation: Conversation, options: Options) -> list[dict]:
    """Goldens, or conversational goldens in multi-turn mode (one file never mixes the two)."""
    if options.turn_mode == MULTI_TURN:
        return deepeval_conversational(conversation, options)
    return deepeval_goldens(conversation, options)


def deepeval_goldens(conversation: Conversation, options: Options) -> list[dict]:
    """Single-turn Goldens (§2.2): `tools_called` always a list, `context` the prior conversation."""
    records = []
    for exchange in _exchanges(conversation, options):
        records.append(
            {
                "name": f"{conversation.meta['session_id']}#{exchange.number}",
                "input": exchange.user,
                "actual_output": exchange.answer,
                "expected_output": exchange.expected,
                "context": _as_lines(_chat_history(conversation, exchange.history, options)),
                "retrieval_context": None,
                "tools_called": [call.as_deepeval() for call in exchange.tool_calls] if options.include_tools else [],
                "comments": conversation.notes or None,
                "additional_metadata": _metadata(conversation, turn=exchange.number),
            }
        )
    return [_clean(record, options) for record in records]


def deepeval_conversational(conversation: Conversation, options: Options) -> list[dict]:
    """One ConversationalGolden (§2.2) per session: strict user/assistant turns (an exchange's
    assistant messages merged, tool calls as `tools_called`), a non-empty `scenario`."""
    exchanges = kept_exchanges(conversation, options)
    if not exchanges:
        return []
    turns = []
    for exchange in exchanges:
        turns.append({"role": "user", "content": exchange.user})
        assistant = {"role": "assistant", "content": "\n\n".join(text for text in exchange.assistant_texts() if text)}
        if options.include_tools and exchange.tool_calls:
            assistant["tools_called"] = [call.as_deepeval() for call in exchange.tool_calls]
        turns.append(assistant)
    first_prompt = exchanges[0].user
    scenario = conversation.meta.get("title") or first_prompt[:200] or conversation.meta["session_id"]
    record = {
        "scenario": scenario,
        "expected_outcome": conversation.expected,
        "turns": turns,
        "context": _as_lines(_chat_history(conversation, [], options)),
        "name": conversation.meta["session_id"],
        "comments": conversation.notes or None,
        "additional_metadata": _metadata(conversation),
    }
    return [_clean(record, options)]


# --- OpenAI Evals (registry) and chat JSONL ------------------------------------------------------------


def openai_samples(conversation: Conversation, options: Options) -> list[dict]:
    """openai/evals registry samples (§3.2): `input` ends with the user message, `ideal` is the
    expected output on the last exchange when set, else the recorded answer."""
    records = []
    for exchange in _exchanges(conversation, options):
        ideal = exchange.expected or exchange.answer
        if not ideal:
            continue  # Match/Includes need a non-empty ideal
        messages = _chat_history(conversation, exchange.history, options)
        messages.append({"role": "user", "content": exchange.user})
        records.append({"input": messages, "ideal": ideal, "metadata": _metadata(conversation, turn=exchange.number)})
    return [_clean(record, options) for record in records]


def chat_messages(conversation: Conversation, options: Options) -> list[dict]:
    """One fine-tuning style record per session: `{"messages": [...]}` ending with an assistant
    message (its corrected answer where a reviewer gave one)."""
    messages = _chat_history(conversation, [], options)
    for exchange in kept_exchanges(conversation, options):
        messages.append({"role": "user", "content": exchange.user})
        pieces = []
        for turn, text in zip(exchange.assistant, exchange.assistant_texts(), strict=True):
            pieces.append(text)
            if options.include_tools:
                pieces += [call.as_text() for call in turn.tool_calls]
        messages.append({"role": "assistant", "content": "\n\n".join(piece for piece in pieces if piece)})
    if not messages or messages[-1]["role"] != "assistant":
        return []
    return [_clean({"messages": messages}, options)]


def openai_api_items(conversation: Conversation, options: Options) -> list[dict]:
    """OpenAI Evals API rows (§4): `{"item": {...}, "sample": {...}}`; `item` matches ITEM_SCHEMA
    (strings, never null) and `sample.output_text` carries the recorded answer for grading."""
    records = []
    meta = conversation.meta
    for exchange in _exchanges(conversation, options):
        ideal = exchange.expected or exchange.answer
        if not ideal:
            continue
        item = {
            "input": exchange.user,
            "history": _chat_history(conversation, exchange.history, options),
            "ideal": ideal,
            "session_id": meta["session_id"],
            "turn": exchange.number,
            "model": meta["model"],
            "source": meta["source"],
            "eval_status": meta["eval_status"],
            "tags": meta["tags"],
        }
        record = {"item": item}
        if exchange.answer:
            record["sample"] = {"output_text": exchange.answer, "model": meta["model"]}
        records.append(record)
    return [_clean(record, options) for record in records]


ITEM_SCHEMA = {
    "type": "object",
    "properties": {
        "input": {"type": "string"},
        "history": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "role": {"type": "string", "enum": ["system", "user", "assistant"]},
                    "content": {"type": "string"},
                },
                "required": ["role", "content"],
            },
        },
        "ideal": {"type": "string"},
        "session_id": {"type": "string"},
        "turn": {"type": "integer"},
        "model": {"type": "string"},
        "source": {"type": "string"},
        "eval_status": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["input", "ideal", "session_id"],
}


# --- Promptfoo ---------------------------------------------------------------------------------------


def task_type(prompt: str) -> str:
    """Upstream's keyword heuristic on the user's prompt."""
    text = prompt.lower()
    for words, kind in (
        (("fix", "bug", "error"), "bug_fix"),
        (("write", "create", "implement"), "code_generation"),
        (("explain", "what"), "explanation"),
        (("refactor", "improve"), "refactoring"),
    ):
        if any(word in text for word in words):
            return kind
    return "general"


RUBRIC_EXPECTED = "The response should match this reference answer in substance: {{expected_output}}"
RUBRIC_GENERIC = "The response should be helpful, correct and complete for the user's request."


def promptfoo_tests(conversation: Conversation, options: Options) -> list[dict]:
    """Promptfoo test cases (§5.2): vars input/history/recorded_output/task_type, expected_output
    and language only when known (a null var fails promptfoo's validation), an llm-rubric
    assertion, and the recorded answer as `providerOutput` when replaying."""
    records = []
    meta = conversation.meta
    label = meta["title"] or meta["session_id"]
    for exchange in _exchanges(conversation, options):
        history = _chat_history(conversation, exchange.history, options)
        variables = {
            "input": exchange.user,
            "history": "\n\n".join(_as_lines(history)),
            "recorded_output": exchange.answer,
            "task_type": task_type(exchange.user),
        }
        if exchange.expected:
            variables["expected_output"] = exchange.expected
        if meta.get("language"):
            variables["language"] = meta["language"]
        record = {"description": f"{label[:120]} (turn {exchange.number})", "vars": variables}
        if exchange.expected:
            record["assert"] = [{"type": "llm-rubric", "value": RUBRIC_EXPECTED}]
        elif meta["eval_status"] in ("golden", "correct"):
            record["assert"] = [{"type": "llm-rubric", "value": RUBRIC_GENERIC}]
        if options.replay and exchange.answer:
            record["providerOutput"] = exchange.answer
        record["metadata"] = {k: v for k, v in _metadata(conversation, turn=exchange.number).items() if v is not None}
        records.append(record)
    return [_clean(record, options) for record in records]


# --- filesystem ----------------------------------------------------------------------------------------

RULE = "=" * 80


def session_file(conversation: Conversation, options: Options) -> list[dict]:
    """One text file per session (§7): upstream's header and `[time] ROLE:` blocks, with the tool
    calls and results under the assistant message that made them. Named by the full id."""
    exchanges = kept_exchanges(conversation, options)
    if not exchanges:
        return []
    meta = conversation.meta
    lines = [
        RULE,
        f"SESSION: {meta['session_id']}",
        f"SOURCE: {meta['source']}",
        f"MODEL: {meta['model'] or 'unknown'}",
        f"DATE: {meta['created_at']}",
        f"TOKENS: {conversation.tokens}",
    ]
    if meta["eval_status"]:
        lines.append(f"STATUS: {meta['eval_status']}")
    if meta["tags"]:
        lines.append(f"TAGS: {', '.join(meta['tags'])}")
    if meta["project"]:
        lines.append(f"PROJECT: {meta['project']}")
    lines += [RULE, ""]

    def block(at: str, role: str, text: str) -> None:
        lines.extend([f"[{at}] {role.upper()}:", text or "(empty)", ""])

    if options.include_system:
        for text in conversation.system:
            block(meta["created_at"], "system", text)
    for exchange in exchanges:
        block(exchange.at, "user", exchange.user)
        for turn in exchange.assistant:
            text = _folded(turn, options)
            if text:
                block(turn.at, "assistant", text)
        if exchange.answer != exchange.recorded:
            block(exchange.assistant[-1].at, "corrected answer", exchange.answer)
    lines += [RULE, "END SESSION", RULE, ""]
    path = f"sessions/session-{_safe_name(meta['session_id'])}.txt"
    return [_clean({"path": path, "text": "\n".join(lines)}, options)]


def _safe_name(external_id: str) -> str:
    """The full id, with only the characters that are safe in a file name on every system."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", external_id)[:200] or "session"


@dataclass(frozen=True)
class Format:
    name: str
    label: str
    records: Callable[[Conversation, Options], list[dict]]
    extension: str  # json (array) | jsonl | yaml | zip
    content_type: str
    turn_modes: tuple[str, ...] = (PER_TURN, FINAL_ONLY, FULL)  # () = whole sessions, no turn mode
    uses_expected: bool = True

    def filename(self, options: Options, date: str) -> str:
        name = self.name
        if name == "deepeval" and options.turn_mode == MULTI_TURN:
            name = "deepeval-conversational"
        return f"opensync-{name}-{date}.{self.extension}"


JSON, NDJSON, YAML, ZIP = "application/json", "application/x-ndjson", "application/yaml", "application/zip"
FORMATS = {
    f.name: f
    for f in [
        Format("deepeval", "DeepEval goldens (JSON)", deepeval, "json", JSON, (*TURN_MODES,)),
        Format("openai", "OpenAI Evals registry (JSONL, input + ideal)", openai_samples, "jsonl", NDJSON),
        Format("openai-evals-api", "OpenAI Evals API (JSONL, item rows)", openai_api_items, "jsonl", NDJSON),
        Format("promptfoo", "Promptfoo test cases (JSONL)", promptfoo_tests, "jsonl", NDJSON),
        Format("promptfoo-yaml", "Promptfoo test cases (YAML)", promptfoo_tests, "yaml", YAML),
        Format("chat", "Chat messages (JSONL, fine-tuning style)", chat_messages, "jsonl", NDJSON, (), False),
        Format("filesystem", "Text files per session (zip)", session_file, "zip", ZIP, (), False),
    ]
}
# Another name for DeepEval in multi-turn mode.
ALIASES = {"deepeval-conversational": ("deepeval", MULTI_TURN)}
