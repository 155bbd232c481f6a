"""One session as a downloadable Markdown or JSON file, streamed message by message so a
10,000-message session never sits in memory as one string."""

import json
import re
from collections.abc import Iterable, Iterator

from .models import Message, Session
from .rendering import (
    TEXT_TYPES,
    THINKING_TYPES,
    TOOL_CALL_TYPES,
    TOOL_RESULT_TYPES,
    part_text,
    pretty,
    tool_call,
    tool_output,
)

CHUNK = 500
HEADINGS = {"user": "User", "assistant": "Assistant", "system": "System", "tool": "Tool"}


def filename(session: Session, extension: str) -> str:
    """`<title>_<YYYY-MM-DD>.<ext>`, safe on every file system."""
    title = re.sub(r'[/\\?%*:|"<>\x00-\x1f]', "-", session.title or session.external_id or "session")
    title = re.sub(r"\s+", "_", title.strip())[:100] or "session"
    return f"{title}_{session.created_at:%Y-%m-%d}.{extension}"


def iter_messages(session: Session) -> Iterator[Message]:
    """The session's messages with their parts, fetched in chunks of CHUNK."""
    yield from session.messages.order_by("created_at", "order").prefetch_related("parts").iterator(chunk_size=CHUNK)


def _fence(text: str, lang: str = "") -> str:
    # A fence longer than any backtick run inside, so content can't close it early.
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text}\n{fence}\n\n"


def message_markdown(message: Message) -> str:
    heading = HEADINGS.get(message.role, "Message")
    out = [f"## {heading}\n\n"]
    parts = list(message.parts.all())
    wrote = False
    for part in parts:
        if part.type in TEXT_TYPES:
            text = part_text(part.content).strip()
            if text:
                out.append(text + "\n\n")
                wrote = True
        elif part.type in THINKING_TYPES:
            text = part_text(part.content).strip()
            if text:
                out.append("<details><summary>Thinking</summary>\n\n" + text + "\n\n</details>\n\n")
        elif part.type in TOOL_CALL_TYPES:
            name, args = tool_call(part.content)
            text, lang = pretty(args if args is not None else {})
            out.append(f"**Tool: {name}**\n\n" + _fence(text, lang or "json"))
        elif part.type in TOOL_RESULT_TYPES:
            text, lang = pretty(tool_output(part.content))
            out.append("**Result:**\n\n" + _fence(text, lang))
    if not wrote and message.text_content:
        out.insert(1, message.text_content.strip() + "\n\n")
    return "".join(out)


def session_markdown(session: Session, messages: Iterable[Message]) -> Iterator[str]:
    cost = "—" if session.cost is None else f"${session.cost:.4f}"
    yield f"# {session.title or 'Untitled session'}\n\n"
    yield "| Property | Value |\n|----------|-------|\n"
    for name, value in (
        ("Agent", session.source_label),
        ("Project", session.project_name or session.project_path or "—"),
        ("Model", session.model or "—"),
        ("Provider", session.provider or "—"),
        ("Tokens", f"{session.total_tokens:,} ({session.prompt_tokens:,} in / {session.completion_tokens:,} out)"),
        ("Cost", cost),
        ("Messages", f"{session.message_count:,}"),
        ("Created", session.created_at.isoformat()),
    ):
        yield f"| {name} | {str(value).replace('|', '/')} |\n"
    yield "\n---\n\n"
    for message in messages:
        yield message_markdown(message)


def session_dict(session: Session) -> dict:
    return {
        "id": str(session.pk),
        "externalId": session.external_id,
        "title": session.title,
        "source": session.source,
        "projectName": session.project_name,
        "projectPath": session.project_path,
        "model": session.model,
        "provider": session.provider,
        "promptTokens": session.prompt_tokens,
        "completionTokens": session.completion_tokens,
        "totalTokens": session.total_tokens,
        "cacheReadTokens": session.cache_read_tokens,
        "cacheWriteTokens": session.cache_write_tokens,
        "cost": None if session.cost is None else float(session.cost),
        "durationMs": session.duration_ms,
        "messageCount": session.message_count,
        "endReason": session.end_reason,
        "createdAt": session.created_at.isoformat(),
        "updatedAt": session.updated_at.isoformat(),
    }


def message_dict(message: Message) -> dict:
    return {
        "id": str(message.pk),
        "externalId": message.external_id,
        "role": message.role,
        "textContent": message.text_content,
        "model": message.model,
        "promptTokens": message.prompt_tokens,
        "completionTokens": message.completion_tokens,
        "durationMs": message.duration_ms,
        "createdAt": message.created_at.isoformat(),
        "parts": [{"type": part.type, "content": part.content} for part in message.parts.all()],
    }


def session_json(session: Session, messages: Iterable[Message]) -> Iterator[str]:
    """`{"session": {...}, "messages": [...]}`, written incrementally."""
    yield '{"session": ' + json.dumps(session_dict(session), ensure_ascii=False) + ', "messages": ['
    for index, message in enumerate(messages):
        yield ("," if index else "") + "\n" + json.dumps(message_dict(message), ensure_ascii=False)
    yield "\n]}\n"
