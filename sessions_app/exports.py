"""One session as the dashboard's download (Markdown or JSON), streamed message by message so a
10,000-message session never sits in memory as one string.

The `download_*` names tell these apart from `GET /api/export`'s `upstream_*` ones
(sessions_app/api/exports.py), which keep upstream OpenSync's wire formats and file names."""

import json
import re
import unicodedata
from collections.abc import Iterable, Iterator

from .message_text import text_pieces
from .models import Message, Session
from .rendering import (
    THINKING_TYPES,
    TOOL_CALL_TYPES,
    TOOL_RESULT_TYPES,
    call_output,
    part_text,
    pretty,
    tool_call,
    tool_output,
)

CHUNK = 500
HEADINGS = {"user": "User", "assistant": "Assistant", "system": "System", "tool": "Tool"}
# Control and format characters (Cc, Cf: bidi overrides and isolates U+202A-202E, U+2066-2069,
# U+200E/F, zero-width ones) and line/paragraph separators: a title with U+202E shows
# "exe.txt" as "txt.exe"; none of them belongs in a file name.
_INVISIBLE = {"Cc", "Cf", "Zl", "Zp"}


def visible(text: str) -> str:
    """`text` without control and format characters (the rule for every download's file name)."""
    return "".join(ch for ch in text if unicodedata.category(ch) not in _INVISIBLE)


def download_filename(session: Session, extension: str) -> str:
    """`<title>_<YYYY-MM-DD>.<ext>`, safe on every file system."""
    title = one_line(session.title or "") or one_line(session.external_id or "") or "session"
    title = re.sub(r'[/\\?%*:|"<>]', "-", title).replace(" ", "_")[:100]
    return f"{title}_{session.created_at:%Y-%m-%d}.{extension}"


# Markdown that message content could use to look like one of our turn headings: ATX headings
# ("## Assistant", also inside a quote or a list item), setext underlines ("Assistant" over
# "---") and HTML heading tags. Fenced code is left as written (a "# comment" in it is code).
_ATX = re.compile(r"^((?:[ ]{0,3}(?:>|[-+*]|\d{1,9}[.)])[ \t]*)*[ ]{0,3})(#{1,6})(?=[ \t]|$)")
_SETEXT = re.compile(r"^([ ]{0,3})(=+|-+)([ \t]*)$")
_HTML_HEADING = re.compile(r"<(/?h[1-6])\b", re.IGNORECASE)
_FENCE_OPEN = re.compile(r"^[ ]{0,3}(`{3,}|~{3,})")


def escape_headings(text: str) -> str:
    """Message content that can't make a heading: outside fenced code, a heading marker is
    backslash-escaped (it shows as written) and an HTML heading tag as `&lt;h2`. A fence the
    content leaves open is closed, so it can't swallow the turns after it."""
    out, fence = [], ""
    for line in text.split("\n"):
        if fence:
            out.append(line)
            closing = _FENCE_OPEN.match(line)
            if closing and closing.group(1)[0] == fence[0] and len(closing.group(1)) >= len(fence):
                fence = fence if line[closing.end() :].strip() else ""
            continue
        opening = _FENCE_OPEN.match(line)
        if opening and not (opening.group(1)[0] == "`" and "`" in line[opening.end() :]):
            fence = opening.group(1)
            out.append(line)
            continue
        line = _ATX.sub(r"\1\\\2", line)
        line = _SETEXT.sub(r"\1\\\2\3", line)
        out.append(_HTML_HEADING.sub(r"&lt;\1", line))
    if fence:
        out.append(fence)
    return "\n".join(out)


def one_line(text: str) -> str:
    """A title or a name on one line (a newline in it would end our heading or table row), its
    runs of white space one space, without control and format characters."""
    return visible(" ".join(text.split())).strip()


def iter_messages(session: Session) -> Iterator[Message]:
    """The session's messages with their parts, fetched in chunks of CHUNK."""
    yield from session.messages.order_by("created_at", "order").prefetch_related("parts").iterator(chunk_size=CHUNK)


def _fence(text: str, lang: str = "") -> str:
    # A fence longer than any backtick run inside, so content can't close it early.
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text}\n{fence}\n\n"


def message_markdown(message: Message) -> str:
    """One message under a `## Role` heading its content can't imitate (escape_headings): its
    text (sessions_app.message_text: the text content, then the text parts not already in it),
    thinking, and tool calls with their results, in order."""
    heading = HEADINGS.get(message.role, "Message")
    out = [f"## {heading}\n\n"]
    parts = list(message.parts.all())
    pieces = dict(text_pieces(message.text_content, parts))
    if None in pieces:
        out.append(escape_headings(pieces[None].strip()) + "\n\n")
    for index, part in enumerate(parts):
        if index in pieces:
            out.append(escape_headings(pieces[index].strip()) + "\n\n")
        elif part.type in THINKING_TYPES:
            text = part_text(part.content).strip()
            if text:
                out.append("<details><summary>Thinking</summary>\n\n" + escape_headings(text) + "\n\n</details>\n\n")
        elif part.type in TOOL_CALL_TYPES:
            name, args = tool_call(part.content)
            text, lang = pretty(args if args is not None else {})
            out.append(f"**Tool: {one_line(name)}**\n\n" + _fence(text, lang or "json"))
            if (output := call_output(part.content)) is not None:
                text, lang = pretty(output)
                out.append("**Result:**\n\n" + _fence(text, lang))
        elif part.type in TOOL_RESULT_TYPES:
            text, lang = pretty(tool_output(part.content))
            out.append("**Result:**\n\n" + _fence(text, lang))
    return "".join(out)


def download_markdown(session: Session, messages: Iterable[Message]) -> Iterator[str]:
    cost = "—" if session.cost is None else f"${session.cost:.4f}"
    yield f"# {one_line(session.title or '') or 'Untitled session'}\n\n"
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
        yield f"| {name} | {one_line(str(value)).replace('|', '/')} |\n"
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


def download_json(session: Session, messages: Iterable[Message]) -> Iterator[str]:
    """`{"session": {...}, "messages": [...]}`, written incrementally."""
    yield '{"session": ' + json.dumps(session_dict(session), ensure_ascii=False) + ', "messages": ['
    for index, message in enumerate(messages):
        yield ("," if index else "") + "\n" + json.dumps(message_dict(message), ensure_ascii=False)
    yield "\n]}\n"
