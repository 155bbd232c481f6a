"""`GET /api/export`: one session in upstream OpenSync's three export shapes (they differ from the
dashboard's downloads in sessions_app/exports.py, and API clients depend on them): hence the
`upstream_*` names, beside that module's `download_*` ones.

Each is streamed message by message, so a 10,000-message session never sits in memory whole.
Where upstream had a harmless bug it is fixed: system and tool messages get their own headings
in Markdown (upstream printed them as "Assistant"), an unreported cost prints as "N/A", the
project is its path or else its name, and message content can't make a heading that looks like
a turn. A message's content is sessions_app.message_text's: the text content, then the text parts
not already in it (upstream took the text parts, else the text content, and lost the rest).
"""

import json
import re
from collections.abc import Iterable, Iterator

from ..exports import escape_headings, one_line, visible
from ..message_text import message_text
from ..models import Message, Session

MARKDOWN_HEADINGS = {"user": "User", "system": "System", "tool": "Tool"}  # anything else: "Assistant"


def upstream_filename(session: Session, extension: str) -> str:
    """Upstream's rule: every character of the title but [a-z0-9] (any case) becomes "-"; "session"
    when there is no title. Capped at 200 characters so a long title can't make a huge header.
    Control and format characters (a bidi override) are dropped first, as in every file name."""
    title = visible(session.title or "")
    if not title:
        return f"session.{extension}"
    return re.sub(r"[^a-z0-9]", "-", title[:200], flags=re.IGNORECASE) + f".{extension}"


def message_content(message: Message) -> str:
    """The text of the message (sessions_app.message_text), "" when it has none."""
    return message_text(message.text_content, message.parts.all())


def _json(value) -> str:
    # JSON.stringify's output: compact, non-ASCII left as is
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def upstream_markdown(session: Session, messages: Iterable[Message]) -> Iterator[str]:
    cost = "N/A" if session.cost is None else f"${session.cost:.4f}"
    yield (
        f"# {one_line(session.title or '') or 'Untitled'}\n\n"
        f"- **Project:** {one_line(session.project_path or session.project_name or '') or 'N/A'}\n"
        f"- **Model:** {one_line(session.model or '') or 'N/A'}\n"
        f"- **Tokens:** {session.total_tokens}\n"
        f"- **Cost:** {cost}\n\n---\n\n"
    )
    for message in messages:
        heading = f"## {MARKDOWN_HEADINGS.get(message.role, 'Assistant')}\n\n"
        text = message_content(message)
        yield heading + (f"{escape_headings(text)}\n\n" if text else "")


def upstream_jsonl(session: Session, messages: Iterable[Message]) -> Iterator[str]:
    """`{"content": "<one {role, content} object per line>", "filename": "….jsonl"}`: upstream wraps
    the JSONL in JSON. The string is written piece by piece (each line JSON-escaped in place)."""
    yield '{"content":"'
    for index, message in enumerate(messages):
        line = _json({"role": message.role, "content": message_content(message)})
        yield ("\\n" if index else "") + _json(line)[1:-1]
    yield '","filename":' + _json(upstream_filename(session, "jsonl")) + "}"


def upstream_json(session: Session, messages: Iterable[Message]) -> Iterator[str]:
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
