"""Claude Code transcripts (JSONL, one entry per line) -> OpenSync sessions and messages.

Read incrementally: the byte offset after the last complete line of each file is kept in the
session's state, so a half-written last line is read again next time, never skipped. Everything
that must survive between reads (token usage per API message id, first/last timestamps, title
candidates) lives in that state too.

Rules:
- `user` lines with text -> role `user`; with `tool_result` blocks -> role `tool` with
  `tool-result` parts (only when tool calls are synced). `isMeta`, compact-summary and
  transcript-only lines are skipped: Claude Code wrote them, not the person.
- `assistant` lines -> role `assistant`: `text` blocks (parts and textContent), `thinking` blocks
  (only when thinking is synced; `redacted_thinking` never), `tool_use` blocks as `tool-call`
  parts (only when tool calls are synced). A line left empty by these filters is not sent.
- Sidechains (`isSidechain: true` lines, and `<session>/subagents/*.jsonl`) are a subagent's
  conversation: its "user" lines are the prompt the main agent wrote, so they are never messages
  of the session; their token usage and cost do count in the session totals.
- Tokens: streaming writes one line per content block, each repeating the message's `usage`, so
  each API `message.id` is counted once with the maximum of each field. Cache writes keep their
  5-minute / 1-hour split (`usage.cache_creation.ephemeral_*_input_tokens`: a 1-hour write costs
  60% more), and the session sends its usage per model and per main agent / subagents
  (`modelUsage`), so the server prices each model at its own rates and shows subagents apart.
"""

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from . import SOURCE, pricing
from .redact import redact

TITLE_LENGTH = 80
SKIPPED_USER_FLAGS = ("isMeta", "isCompactSummary", "isVisibleInTranscriptOnly")
# Prompts that are not a person's words: slash-command echoes, command output, interruptions.
NOT_A_TITLE = ("<", "[Request interrupted", "Caveat:")
# usage entry: [model, input, output, cache read, cache write (all), cache write (1h), credited,
# subagent] (state files written before `subagent` existed have 7 items: main agent)
MODEL, INPUT, OUTPUT, CACHE_READ, CACHE_WRITE, CACHE_WRITE_1H, CREDITED, SUBAGENT = range(8)


@dataclass(frozen=True)
class Options:
    tool_calls: bool = True
    thinking: bool = False
    redact: bool = True


def new_lines(path: Path, offset: int) -> Iterator[tuple[int, int, bytes]]:
    """(start, end, line) for each complete line after `offset`. An unfinished last line is left
    for the next read; a file now shorter than `offset` was rewritten and is read from the start."""
    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size < offset:
            offset = 0
        handle.seek(offset)
        position = offset
        for line in handle:
            if not line.endswith(b"\n"):
                return
            yield position, position + len(line), line
            position += len(line)


def parse_line(line: bytes) -> tuple[dict | None, str | None]:
    """(entry, None), (None, None) for a blank line, or (None, reason) for a corrupt one."""
    if not line.strip():
        return None, None
    try:
        entry = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        return None, "not UTF-8"
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON ({exc.msg})"
    if not isinstance(entry, dict):
        return None, f"a JSON {type(entry).__name__}, not an object"
    return entry, None


def epoch_ms(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return int(moment.timestamp() * 1000)


def short_title(text: str) -> str:
    """`text` on one line, cut to about TITLE_LENGTH characters at a word boundary."""
    text = " ".join(text.split())
    if len(text) <= TITLE_LENGTH:
        return text
    cut = text[:TITLE_LENGTH]
    space = cut.rfind(" ")
    if space >= TITLE_LENGTH // 2:
        cut = cut[:space]
    return cut.rstrip(" ,.;:-") + "…"


def compact(record: dict) -> dict:
    """The record without None values (the wire has no nulls)."""
    return {key: value for key, value in record.items() if value is not None}


def new_state(session_id: str) -> dict:
    return {
        "sessionId": session_id,
        "transcript": None,
        "files": {},  # path -> byte offset after the last complete line read
        "cwd": None,
        "slug": None,
        "summary": None,
        "prompt": None,  # title from the first prompt
        "model": None,
        "firstTs": None,
        "lastTs": None,
        "usage": {},  # message id -> usage entry (see MODEL...CREDITED)
        "endReason": None,
        "messages": 0,  # messages spooled so far
        "lastSession": None,  # the session fields last spooled (title apart)
        "sentTitle": None,
    }


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _tool_output(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        pieces = []
        for block in content:
            if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
                pieces.append(block["text"])
            elif isinstance(block, dict) and block.get("type") == "image":
                pieces.append("[image]")
        return "\n".join(pieces)
    return "" if content is None else json.dumps(content, ensure_ascii=False)


class SessionParser:
    """Turns one session's transcript entries into message records, keeping totals in `state`."""

    def __init__(self, state: dict, options: Options):
        self.state = state
        self.options = options

    # --- entries ----------------------------------------------------------------------------

    def feed(self, entry: dict, *, sidechain_file: bool = False) -> dict | None:
        """The message record for one transcript entry, or None."""
        if not sidechain_file:
            self._note_session(entry)
        kind = entry.get("type")
        message = entry.get("message")
        if kind not in ("user", "assistant") or not isinstance(message, dict):
            return None
        sidechain = sidechain_file or entry.get("isSidechain") is True
        usage_key = self._note_usage(entry, message, sidechain) if kind == "assistant" else None
        if sidechain:
            return None
        uuid = entry.get("uuid")
        if not isinstance(uuid, str) or not uuid:
            return None
        record = self._assistant(message) if kind == "assistant" else self._user(entry, message)
        if record is None:
            return None
        record = {
            "sessionExternalId": self.state["sessionId"],
            "externalId": uuid,
            "source": SOURCE,
            "createdAt": epoch_ms(entry.get("timestamp")),
            **record,
        }
        if usage_key is not None:
            usage = self.state["usage"][usage_key]
            if not usage[CREDITED]:
                usage[CREDITED] = 1
                record["promptTokens"] = usage[INPUT] or None
                record["completionTokens"] = usage[OUTPUT] or None
                record["cacheReadTokens"] = usage[CACHE_READ] or None
                record["cacheCreationTokens"] = usage[CACHE_WRITE] or None
                if usage[CACHE_WRITE]:
                    record["cacheWrite5mTokens"] = usage[CACHE_WRITE] - usage[CACHE_WRITE_1H] or None
                    record["cacheWrite1hTokens"] = usage[CACHE_WRITE_1H] or None
        if self.options.redact:
            record = {**record, "textContent": redact(record["textContent"]), "parts": redact(record.get("parts"))}
        self.state["messages"] += 1
        return compact(record)

    def _note_session(self, entry: dict) -> None:
        state = self.state
        stamp = epoch_ms(entry.get("timestamp"))
        if stamp is not None:
            state["firstTs"] = stamp if state["firstTs"] is None else min(state["firstTs"], stamp)
            state["lastTs"] = stamp if state["lastTs"] is None else max(state["lastTs"], stamp)
        if not state["cwd"] and isinstance(entry.get("cwd"), str) and entry["cwd"]:
            state["cwd"] = entry["cwd"]
        if not state["slug"] and isinstance(entry.get("slug"), str) and entry["slug"]:
            state["slug"] = entry["slug"]
        if entry.get("type") == "summary" and isinstance(entry.get("summary"), str) and entry["summary"].strip():
            state["summary"] = entry["summary"].strip()

    def _note_usage(self, entry: dict, message: dict, sidechain: bool) -> str | None:
        usage = message.get("usage")
        if not isinstance(usage, dict):
            return None
        key = message.get("id") if isinstance(message.get("id"), str) else entry.get("uuid")
        if not isinstance(key, str):
            return None
        split = usage.get("cache_creation") if isinstance(usage.get("cache_creation"), dict) else {}
        write_1h = _count(split.get("ephemeral_1h_input_tokens"))
        write = usage.get("cache_creation_input_tokens")
        write = _count(write) if write is not None else _count(split.get("ephemeral_5m_input_tokens")) + write_1h
        values = [
            _count(usage.get("input_tokens")),
            _count(usage.get("output_tokens")),
            _count(usage.get("cache_read_input_tokens")),
            write,
            min(write_1h, write),
        ]
        model = message.get("model") if isinstance(message.get("model"), str) else None
        if model == "<synthetic>":
            model = None
        known = self.state["usage"].get(key)
        if known is None:
            self.state["usage"][key] = [model, *values, 0, 1 if sidechain else 0]
        else:
            known[INPUT : CACHE_WRITE_1H + 1] = [
                max(a, b) for a, b in zip(known[INPUT : CACHE_WRITE_1H + 1], values, strict=True)
            ]
            known[MODEL] = known[MODEL] or model
        return key

    def _assistant(self, message: dict) -> dict | None:
        content = message.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        if not isinstance(content, list):
            return None
        parts, texts = [], []
        for block in content:
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "text" and isinstance(block.get("text"), str) and block["text"].strip():
                parts.append({"type": "text", "content": block["text"]})
                texts.append(block["text"])
            elif kind == "thinking" and self.options.thinking:
                if isinstance(block.get("thinking"), str) and block["thinking"].strip():
                    parts.append({"type": "thinking", "content": block["thinking"]})
            elif kind in ("tool_use", "server_tool_use") and self.options.tool_calls:
                call = {"id": block.get("id"), "toolName": block.get("name"), "args": block.get("input")}
                parts.append({"type": "tool-call", "content": compact(call)})
        if not parts:
            return None
        model = message.get("model") if isinstance(message.get("model"), str) else None
        if model == "<synthetic>":
            model = None
        if model and not self.state["model"]:
            self.state["model"] = model
        return {"role": "assistant", "textContent": "\n\n".join(texts) or None, "model": model, "parts": parts}

    def _user(self, entry: dict, message: dict) -> dict | None:
        if any(entry.get(flag) is True for flag in SKIPPED_USER_FLAGS):
            return None
        content = message.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        if not isinstance(content, list):
            return None
        texts = [
            block["text"]
            for block in content
            if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str)
        ]
        text = "\n".join(texts).strip() or None
        results = [block for block in content if isinstance(block, dict) and block.get("type") == "tool_result"]
        if results:
            if not self.options.tool_calls:
                return None
            parts = [
                {
                    "type": "tool-result",
                    "content": compact(
                        {
                            "toolUseId": block.get("tool_use_id"),
                            "output": _tool_output(block.get("content")),
                            "isError": block.get("is_error") is True,
                        }
                    ),
                }
                for block in results
            ]
            return {"role": "tool", "textContent": text, "parts": parts}
        if text is None:
            return None
        if self.state["prompt"] is None and not text.startswith(NOT_A_TITLE):
            self.state["prompt"] = short_title(text)
        return {"role": "user", "textContent": text}

    # --- the session --------------------------------------------------------------------------

    def totals(self) -> tuple[int, int, int, int]:
        """(uncached input, output, cache read, cache write) over every message id."""
        sums = [0, 0, 0, 0]
        for usage in self.state["usage"].values():
            for index, field in enumerate((INPUT, OUTPUT, CACHE_READ, CACHE_WRITE)):
                sums[index] += usage[field]
        return sums[0], sums[1], sums[2], sums[3]

    def cache_write_1h(self) -> int:
        return sum(usage[CACHE_WRITE_1H] for usage in self.state["usage"].values())

    def model_usage(self) -> list[dict]:
        """Usage per (model, main agent or subagents), as the server's `modelUsage` rows: input
        without cache, cache reads, and cache writes with their 5-minute / 1-hour split."""
        rows: dict[tuple, list[int]] = {}
        for usage in self.state["usage"].values():
            model = usage[MODEL] or self.state["model"]
            subagent = len(usage) > SUBAGENT and bool(usage[SUBAGENT])
            sums = rows.setdefault((model or "", subagent), [0, 0, 0, 0, 0])
            for index, field in enumerate((INPUT, OUTPUT, CACHE_READ, CACHE_WRITE, CACHE_WRITE_1H)):
                sums[index] += usage[field]
        return [
            compact(
                {
                    "model": model or None,
                    "subagent": subagent,
                    "inputTokens": sums[0],
                    "outputTokens": sums[1],
                    "cacheReadTokens": sums[2],
                    "cacheWriteTokens": sums[3],
                    "cacheWrite5mTokens": sums[3] - sums[4],
                    "cacheWrite1hTokens": sums[4],
                }
            )
            for (model, subagent), sums in sorted(rows.items())
            if any(sums)
        ]

    def cost(self) -> float | None:
        """USD over every message id; None when any usage is priced by an unknown model."""
        total, priced = 0.0, False
        for usage in self.state["usage"].values():
            if not any(usage[INPUT : CACHE_WRITE_1H + 1]):
                continue
            amount = pricing.cost(
                usage[MODEL],
                input_tokens=usage[INPUT],
                output_tokens=usage[OUTPUT],
                cache_read=usage[CACHE_READ],
                cache_write_5m=usage[CACHE_WRITE] - usage[CACHE_WRITE_1H],
                cache_write_1h=usage[CACHE_WRITE_1H],
            )
            if amount is None:
                return None
            total, priced = total + amount, True
        return round(total, 8) if priced else None

    def title(self) -> str | None:
        state = self.state
        title = state["summary"] or state["prompt"] or state["slug"]
        return redact(title) if title and self.options.redact else title

    def session_record(self) -> dict | None:
        """The session fields to send when they changed since the last record (the title only
        when it changed, so a rename in the dashboard isn't undone on every hook). None before
        the session has any message: no empty sessions on the server."""
        state = self.state
        if not state["messages"]:
            return None
        prompt, completion, cache_read, cache_write = self.totals()
        write_1h = self.cache_write_1h()
        cwd = state["cwd"]
        fields = compact(
            {
                "externalId": state["sessionId"],
                "source": SOURCE,
                "projectPath": cwd,
                "projectName": os.path.basename(cwd.rstrip("/\\")) or None if cwd else None,
                "model": state["model"],
                "provider": "anthropic",
                "createdAt": state["firstTs"],
                "durationMs": state["lastTs"] - state["firstTs"] if state["firstTs"] is not None else None,
                "promptTokens": prompt or None,
                "completionTokens": completion or None,
                "cacheReadTokens": cache_read or None,
                "cacheCreationTokens": cache_write or None,
                "cacheWrite5mTokens": cache_write - write_1h or None,
                "cacheWrite1hTokens": write_1h or None,
                "modelUsage": self.model_usage() or None,
                "cost": self.cost(),
                "endReason": state["endReason"],
            }
        )
        title = self.title()
        title_changed = bool(title) and title != state["sentTitle"]
        if fields == state["lastSession"] and not title_changed:
            return None
        state["lastSession"] = fields
        if title_changed:
            state["sentTitle"] = title
            return {**fields, "title": title}
        return dict(fields)
