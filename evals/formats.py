"""Eval records from conversations (evals.exchanges), exactly as the real tools load them
(eval-formats.md): DeepEval goldens (single-turn) and conversational goldens (multi-turn),
OpenAI Evals registry samples and API items, Promptfoo test cases, chat JSONL and one text
file per session (filesystem).

Every format function takes one Conversation and Options and returns that session's records; the
export job writes them out. Its `plan` gives the same records unbuilt (each built when called), so
a preview builds only those it shows. Cleaning (anonymized paths, redacted secrets) is applied to
every string of every record, keys included.

A per-turn record carries the conversation before it only up to a window (History): with the
whole history in every record, a file grew with the square of the session.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

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
            start=0,  # no history: the record is the whole session
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


# --- history: what a per-turn record carries of the conversation before it ---------------------------

CHARS_PER_TOKEN = 4  # the usual estimate for English text and code (no tokenizer needed)


def history_window() -> tuple[int, int]:
    """(messages, tokens): the most of the conversation before an exchange that its record carries
    (the settings OPENSYNC_EXPORT_HISTORY_TURNS and OPENSYNC_EXPORT_HISTORY_TOKENS)."""
    from django.conf import settings

    return settings.OPENSYNC_EXPORT_HISTORY_TURNS, settings.OPENSYNC_EXPORT_HISTORY_TOKENS


def left_out(n: int) -> str:
    """The history's first message when its `n` earlier messages are cut."""
    return f"[{n:,} earlier message{'s' if n != 1 else ''} of this conversation left out]"


class History:
    """Each exchange's history as chat messages: the system prompts (when included), then the turns
    before it with tool activity folded into the assistant text, empty ones left out, cut to a
    window: the nearest messages, at most `turns` of them and `tokens` of text.

    The cut is marked inside the history in a shape every tool takes: a system message
    `[N earlier messages of this conversation left out]` before the window (a chat message for
    OpenAI and Promptfoo, a `context` line for DeepEval), and a message too long for the window on
    its own keeps its beginning and ends with `[… N more characters of this message left out]`.

    The turns become messages once per session (when the first record is built: a preview builds
    few) and each record takes its window of them."""

    def __init__(self, conversation: Conversation, options: Options):
        self.conversation, self.options = conversation, options
        self.turns, tokens = history_window()
        self.chars = tokens * CHARS_PER_TOKEN
        self.messages: list[dict] | None = None
        self.before: list[int] = []  # before[i]: how many messages come from turns[:i]

    def _render(self) -> None:
        self.messages = []
        for turn in self.conversation.turns:
            self.before.append(len(self.messages))
            content = _folded(turn, self.options) if turn.role == "assistant" else turn.text
            if content:
                self.messages.append({"role": turn.role, "content": content})
        self.before.append(len(self.messages))

    def of(self, exchange: Exchange) -> tuple[list[dict], int]:
        """(the history of `exchange` as chat messages, how many earlier messages it leaves out)."""
        if self.messages is None:
            self._render()
        first = self.before[exchange.start]  # walking back from the exchange, `first` ends on the window's start
        taken, budget = [], self.chars
        while first and len(taken) < self.turns and budget > 0:
            message = self.messages[first - 1]
            size = len(message["content"])
            if size > budget:
                if not taken:  # the nearest message alone is over the window: its beginning
                    cut = f"\n[… {size - budget:,} more characters of this message left out]"
                    taken.append({"role": message["role"], "content": message["content"][:budget] + cut})
                    first -= 1
                break
            taken.append(message)
            budget -= size
            first -= 1
        system = self.options.include_system
        messages = [{"role": "system", "content": text} for text in self.conversation.system] if system else []
        if first:
            messages.append({"role": "system", "content": left_out(first)})
        return messages + taken[::-1], first


def _cut(left: int) -> dict:
    """The metadata of a record whose history leaves `left` earlier messages out."""
    return {"history_left_out": left} if left else {}


# --- plans: a session's records, each built when called ------------------------------------------------

Plan = list[Callable[[], dict]]


class Records:
    """A format's records function: called with (conversation, options), the session's records;
    its `plan` gives them unbuilt, one callable per record, which is cheap (no record is built)."""

    def __init__(self, plan: Callable[[Conversation, Options], Plan]):
        self.plan = plan

    def __call__(self, conversation: Conversation, options: Options) -> list[dict]:
        return [make() for make in self.plan(conversation, options)]


def per_exchange(record, keep: Callable[[Exchange], bool] | None = None) -> Records:
    """One record per exchange the turn mode writes (those `keep` accepts): record(conversation,
    exchange, history, options), sharing one History."""

    def plan(conversation: Conversation, options: Options) -> Plan:
        history = History(conversation, options)
        exchanges = _exchanges(conversation, options)
        return [partial(record, conversation, e, history, options) for e in exchanges if keep is None or keep(e)]

    return Records(plan)


def per_session(record) -> Records:
    """One record per session with an exchange left: record(conversation, kept exchanges, options)."""

    def plan(conversation: Conversation, options: Options) -> Plan:
        exchanges = kept_exchanges(conversation, options)
        return [partial(record, conversation, exchanges, options)] if exchanges else []

    return Records(plan)


def _as_lines(messages: list[dict]) -> list[str]:
    """Messages as DeepEval `context` strings: "role: text"."""
    return [f"{message['role']}: {message['content']}" for message in messages]


def _metadata(conversation: Conversation, **extra) -> dict:
    return {**conversation.meta, **extra}


# --- DeepEval ---------------------------------------------------------------------------------------


def _deepeval_plan(conversation: Conversation, options: Options) -> Plan:
    """Goldens, or conversational goldens in multi-turn mode (one file never mixes the two)."""
    if options.turn_mode == MULTI_TURN:
        return deepeval_conversational.plan(conversation, options)
    return deepeval_goldens.plan(conversation, options)


deepeval = Records(_deepeval_plan)


def _golden(conversation: Conversation, exchange: Exchange, history: History, options: Options) -> dict:
    """A single-turn Golden (§2.2): `tools_called` always a list, `context` the prior conversation."""
    context, left = history.of(exchange)
    record = {
        "name": f"{conversation.meta['session_id']}#{exchange.number}",
        "input": exchange.user,
        "actual_output": exchange.answer,
        "expected_output": exchange.expected,
        "context": _as_lines(context),
        "retrieval_context": None,
        "tools_called": [call.as_deepeval() for call in exchange.tool_calls] if options.include_tools else [],
        "comments": conversation.notes or None,
        "additional_metadata": _metadata(conversation, turn=exchange.number, **_cut(left)),
    }
    return _clean(record, options)


deepeval_goldens = per_exchange(_golden)


def _conversational(conversation: Conversation, exchanges: list[Exchange], options: Options) -> dict:
    """One ConversationalGolden (§2.2) per session: strict user/assistant turns (an exchange's
    assistant messages merged, tool calls as `tools_called`), a non-empty `scenario`."""
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
    return _clean(record, options)


deepeval_conversational = per_session(_conversational)


# --- OpenAI Evals (registry) and chat JSONL ------------------------------------------------------------


def _has_ideal(exchange: Exchange) -> bool:
    return bool(exchange.expected or exchange.answer)  # Match/Includes need a non-empty ideal


def _openai_sample(conversation: Conversation, exchange: Exchange, history: History, options: Options) -> dict:
    """An openai/evals registry sample (§3.2): `input` ends with the user message, `ideal` is the
    expected output on the last exchange when set, else the recorded answer."""
    messages, left = history.of(exchange)
    messages.append({"role": "user", "content": exchange.user})
    metadata = _metadata(conversation, turn=exchange.number, **_cut(left))
    return _clean({"input": messages, "ideal": exchange.expected or exchange.answer, "metadata": metadata}, options)


openai_samples = per_exchange(_openai_sample, keep=_has_ideal)


def _chat(conversation: Conversation, exchanges: list[Exchange], options: Options) -> dict:
    """One fine-tuning style record per session: `{"messages": [...]}` ending with an assistant
    message (its corrected answer where a reviewer gave one)."""
    messages = _chat_history(conversation, [], options)
    for exchange in exchanges:
        messages.append({"role": "user", "content": exchange.user})
        pieces = []
        for turn, text in zip(exchange.assistant, exchange.assistant_texts(), strict=True):
            pieces.append(text)
            if options.include_tools:
                pieces += [call.as_text() for call in turn.tool_calls]
        messages.append({"role": "assistant", "content": "\n\n".join(piece for piece in pieces if piece)})
    return _clean({"messages": messages}, options)


chat_messages = per_session(_chat)


def _openai_api_item(conversation: Conversation, exchange: Exchange, history: History, options: Options) -> dict:
    """An OpenAI Evals API row (§4): `{"item": {...}, "sample": {...}}`; `item` matches ITEM_SCHEMA
    (strings, never null) and `sample.output_text` carries the recorded answer for grading."""
    meta = conversation.meta
    messages, left = history.of(exchange)
    item = {
        "input": exchange.user,
        "history": messages,
        "ideal": exchange.expected or exchange.answer,
        "session_id": meta["session_id"],
        "turn": exchange.number,
        "model": meta["model"],
        "source": meta["source"],
        "eval_status": meta["eval_status"],
        "tags": meta["tags"],
        **_cut(left),
    }
    record = {"item": item}
    if exchange.answer:
        record["sample"] = {"output_text": exchange.answer, "model": meta["model"]}
    return _clean(record, options)


openai_api_items = per_exchange(_openai_api_item, keep=_has_ideal)


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
        "history_left_out": {"type": "integer"},  # earlier messages cut from `history`, when any
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


def _promptfoo_test(conversation: Conversation, exchange: Exchange, history: History, options: Options) -> dict:
    """A Promptfoo test case (§5.2): vars input/history/recorded_output/task_type, expected_output
    and language only when known (a null var fails promptfoo's validation), an llm-rubric
    assertion, and the recorded answer as `providerOutput` when replaying."""
    meta = conversation.meta
    label = meta["title"] or meta["session_id"]
    messages, left = history.of(exchange)
    variables = {
        "input": exchange.user,
        "history": "",  # below: cleaned message by message
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
    metadata = _metadata(conversation, turn=exchange.number, **_cut(left))
    record["metadata"] = {k: v for k, v in metadata.items() if v is not None}
    record = _clean(record, options)
    # Each message is cleaned on its own (cached, as it recurs in the next records' windows) and
    # then joined: the joined text is new in every record, and cleaning it whole was most of the build.
    record["vars"]["history"] = "\n\n".join(_as_lines(_clean(messages, options)))
    return record


promptfoo_tests = per_exchange(_promptfoo_test)


# --- filesystem ----------------------------------------------------------------------------------------

RULE = "=" * 80


def _session_file(conversation: Conversation, exchanges: list[Exchange], options: Options) -> dict:
    """One text file per session (§7): upstream's header and `[time] ROLE:` blocks, with the tool
    calls and results under the assistant message that made them. Named by the full id."""
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
            if text:  # a reviewer's correction stands in place of the answer it corrects, named so
                block(turn.at, "assistant" if turn.recorded is None else "corrected answer", text)
    lines += [RULE, "END SESSION", RULE, ""]
    path = f"sessions/session-{_safe_name(meta['session_id'])}.txt"
    return _clean({"path": path, "text": "\n".join(lines)}, options)


session_file = per_session(_session_file)


def _safe_name(external_id: str) -> str:
    """The full id, with only the characters that are safe in a file name on every system."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", external_id)[:200] or "session"


@dataclass(frozen=True)
class Format:
    name: str
    label: str
    records: Records  # called: a session's records; its `plan`: the same, unbuilt
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
