"""`GET /api/export`: one session in upstream OpenSync's three export shapes (they differ from the
dashboard's downloads in sessions_app/exports.py, and API clients depend on them).

Each is streamed message by message, so a 10,000-message session never sits in memory whole.
Where upstream had a harmless bug it is fixed: system and tool messages get their own headings
in Markdown (upstream printed them as "Assistant"), and an unreported cost prints as "N/A".
"""

import json
import re
from collections.abc import Iterable, Iterator

from ..models import Message, Session
from ..rendering import TEXT_TYPES, part_text

MARKDOWN_HEADINGS = {"user": "User", "system": "System", "tool": "Tool"}  # anything else: "Assistant"


def filename(session: Session, extension: str) -> str:
    """Upstream's rule: every character of the title but [a-z0-9] (any case) becomes "-"; "session"
    when there is no title. Capped at 200 characters so a long title can't make a huge header."""
    if not session.title:
        return f"session.{extension}"
    return re.sub(r"[^a-z0-9]", "-", session.title[:200], flags=re.IGNORECASE) + f".{extension}"


def _text_parts(message: Message) -> list[str]:
    return [text for part in message.parts.all() if part.type in TEXT_TYPES and (text := part_text(part.content))]


def message_content(message: Message) -> str:
    """The text parts joined by newlines, else textContent, else "" (upstream's rule)."""
    return "\n".join(_text_parts(message)) or message.text_content or ""


def _json(value) -> str:
    # JSON.stringify's output: compact, non-ASCII left as is
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def session_markdown(session: Session, messages: Iterable[Message]) -> Iterator[str]:
    cost = "N/A" if session.cost is None else f"${session.cost:.4f}"
    yield (
        f"# {session.title or 'Untitled'}\n\n"
        f"- **Project:** {session.project_path or 'N/A'}\n"
        f"- **Model:** {session.model or 'N/A'}\n"
        f"- **Tokens:** {session.total_tokens}\n"
        f"- **Cost:** {cost}\n\n---\n\n"
    )
    for message in messages:
        out = [f"## {MARKDOWN_HEADINGS.get(message.role, 'Assistant')}\n\n"]
        texts = _text_parts(message)
        out.extend(f"{text}\n\n" for text in texts)
        if not texts and message.text_content:
            out.append(f"{message.text_content}\n\n")
        yield "".join(out)


def session_jsonl(session: Session, messages: Iterable[Message]) -> Iterator[str]:
    """`{"content": "<one {role, content} object per line>", "filename": "….jsonl"}`: upstream wraps
    the JSONL in JSON. The string is written piece by piece (each line JSON-escaped in place)."""
    yield '{"content":"'
    for index, message in enumerate(messages):
        line = _json({"role": message.role, "content": message_content(message)})
        yield ("\\n" if index else "") + _json(line)[1:-1]
    yield '","filename":' + _json(filename(session, "jsonl")) + "}"


def session_json(session: Session, messages: Iterable[Message]) -> Iterator[str]:
    """`{"session": {"id", "externalId", "title", "model", "source"}, "messages": [{"role", "content"}]}`."""
    head = {
        "id": str(session.pk),
        "externalId": session.external_id,
        "title": session.title,
        "model": session.model,
        "source": session.source,
    }
    yield '{"session":' + _json(head) + ',"messages":['
    for index, message in enumerate(messages):
        yield ("," if index else "") + _json({"role": message.role, "content": message_content(message)})
    yield "]}"
