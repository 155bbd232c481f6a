"""Eval records from conversations (evals.exchanges), exactly as the real tools load them
(eval-formats.md): DeepEval goldens (single-turn) and conversational goldens (multi-turn),
OpenAI Evals registry samples, and chat JSONL.

Every function takes one Conversation and Options and returns that session's records; the
export job writes them out. Cleaning (anonymized paths, redacted secrets) is applied to every
string of every record, keys included.
"""

from dataclasses import dataclass

from .exchanges import Conversation, Exchange, Turn, clean_value

PER_TURN, FINAL_ONLY, FULL = "per_turn", "final_only", "full"


@dataclass(frozen=True)
class Options:
    turn_mode: str = PER_TURN  # per_turn | final_only | full (one multi-turn record per session)
    include_tools: bool = True
    include_system: bool = False
    anonymize_paths: bool = False
    redact_secrets: bool = True


def _clean(record, options: Options):
    return clean_value(record, anonymize_paths=options.anonymize_paths, redact_secrets=options.redact_secrets)


def _exchanges(conversation: Conversation, options: Options) -> list[Exchange]:
    if options.turn_mode == FINAL_ONLY:
        return conversation.exchanges[-1:]
    return conversation.exchanges


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
    if not conversation.exchanges:
        return []
    turns = []
    for exchange in conversation.exchanges:
        turns.append({"role": "user", "content": exchange.user})
        assistant = {
            "role": "assistant",
            "content": "\n\n".join(turn.text for turn in exchange.assistant if turn.text) or exchange.answer,
        }
        if options.include_tools and exchange.tool_calls:
            assistant["tools_called"] = [call.as_deepeval() for call in exchange.tool_calls]
        turns.append(assistant)
    first_prompt = conversation.exchanges[0].user
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
    for exchange in conversation.exchanges:
        messages.append({"role": "user", "content": exchange.user})
        pieces = [_folded(turn, options) for turn in exchange.assistant[:-1]]
        if options.include_tools:
            pieces += [call.as_text() for call in exchange.assistant[-1].tool_calls]
        pieces.append(exchange.answer)
        messages.append({"role": "assistant", "content": "\n\n".join(piece for piece in pieces if piece)})
    if not messages or messages[-1]["role"] != "assistant":
        return []
    return [_clean({"messages": messages}, options)]


FORMATS = {
    "deepeval": deepeval_goldens,
    "deepeval-conversational": deepeval_conversational,
    "openai": openai_samples,
    "chat": chat_messages,
}
