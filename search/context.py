"""Context for a prompt: past sessions, or messages picked from them, as one block of plain text,
Markdown or XML-tagged text (or a list of chat messages) that fits a token budget. Used by the
/context page and GET /api/context.

A picked session contributes its first message (the task), the messages that matched or were
picked one by one, and its last `last` messages, oldest first; each stretch left out between
them is marked. A message's content is its text (sessions_app.message_text: the text content,
then the text parts not already in it) without `<thinking>` blocks; messages with neither (tool
plumbing) are skipped. In Markdown, content can't make a heading that looks like a message's.

Fitting the budget: sessions are taken in the order given (pick order on the page, rank order
in the API). Within a session, messages go in by priority: picked or matched ones, then the
first message, then the newest backwards. At the first message that doesn't fit, the session
stops and the next one is tried with what remains; only when not even a session's most
important message fits is it cut at a token boundary (if at least MIN_PIECE tokens are left).
The token count reported is tiktoken's count of the exact text returned (for `messages`, of
each content plus MESSAGE_OVERHEAD per message).
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from xml.sax.saxutils import quoteattr

from django.db.models import Count, F, Q, Window
from django.db.models.functions import RowNumber

from sessions_app.exports import escape_headings
from sessions_app.message_text import message_text
from sessions_app.models import Message, Session
from sessions_app.rendering import strip_thinking

from . import tokens

TEXT, MARKDOWN, XML, MESSAGES = "text", "markdown", "xml", "messages"
FORMATS = (TEXT, MARKDOWN, XML, MESSAGES)
DEFAULT_BUDGET = 8_000
MAX_BUDGET = 200_000
MIN_BUDGET = 100
DEFAULT_LAST = 10
MAX_LAST = 100
MAX_MESSAGE_CHARS = 40_000  # one pasted log can't crowd out everything else before trimming
MIN_PIECE = 48
MESSAGE_OVERHEAD = 4  # chat format: role and delimiters per message (OpenAI's counting rule)


@dataclass(frozen=True)
class Pick:
    session_id: int
    whole: bool = True  # the session's first and last messages, not only message_ids
    message_ids: tuple[int, ...] = ()


@dataclass
class Entry:
    message_id: int
    role: str
    content: str
    position: int  # 1-based, in the session's display order
    priority: int  # lower goes in first
    cut: bool = False


@dataclass
class Block:
    session: Session
    candidates: list[Entry]  # oldest first
    total: int  # messages in the session
    entries: list[Entry] = field(default_factory=list)  # what fit, oldest first

    @property
    def trimmed(self) -> bool:
        return len(self.entries) < len(self.candidates) or any(entry.cut for entry in self.entries)

    @property
    def left_out(self) -> bool:
        return not self.entries

    def gaps(self) -> list[tuple[int, int]]:
        """(index in entries before which the gap goes, messages left out); index len(entries)
        for a gap at the end."""
        out, previous = [], 0
        for index, entry in enumerate(self.entries):
            if entry.position - previous > 1:
                out.append((index, entry.position - previous - 1))
            previous = entry.position
        if self.entries and self.total > previous:
            out.append((len(self.entries), self.total - previous))
        return out


@dataclass
class Context:
    format: str
    budget: int
    blocks: list[Block]
    text: str = ""
    messages: list[dict] = field(default_factory=list)
    tokens: int = 0

    @property
    def included(self) -> list[Block]:
        return [block for block in self.blocks if block.entries]

    @property
    def trimmed(self) -> bool:
        return any(block.trimmed for block in self.blocks)


# --- loading -----------------------------------------------------------------------------------------


def _merge(picks: Sequence[Pick]) -> dict[int, Pick]:
    merged: dict[int, Pick] = {}
    for pick in picks:
        seen = merged.get(pick.session_id)
        if seen is None:
            merged[pick.session_id] = pick
        else:
            ids = tuple(dict.fromkeys(seen.message_ids + pick.message_ids))
            merged[pick.session_id] = Pick(pick.session_id, seen.whole or pick.whole, ids)
    return merged


def hit_picks(hits) -> list[Pick]:
    """A search's hits as picks: each session whole, with the message that matched."""
    return [Pick(hit.session.pk, message_ids=(hit.message_id,) if hit.message_id else ()) for hit in hits]


def load_blocks(workspace, picks: Sequence[Pick], *, last: int = DEFAULT_LAST) -> list[Block]:
    """The picked sessions of `workspace` (others' ids are ignored) with their candidate
    messages, in pick order. Two queries plus the parts' prefetch, whatever the number of picks."""
    merged = _merge(picks)
    sessions = Session.objects.filter(workspace=workspace).in_bulk(list(merged))
    pinned = {m for pick in merged.values() for m in pick.message_ids}
    whole = [pick.session_id for pick in merged.values() if pick.whole]
    partition = [F("session_id")]
    messages = (
        Message.objects.filter(session_id__in=list(sessions))
        .annotate(
            position=Window(RowNumber(), partition_by=partition, order_by=[F("created_at").asc(), F("order").asc()]),
            from_end=Window(RowNumber(), partition_by=partition, order_by=[F("created_at").desc(), F("order").desc()]),
            in_session=Window(Count("*"), partition_by=partition),
        )
        .filter(Q(pk__in=pinned) | (Q(session_id__in=whole) & (Q(position=1) | Q(from_end__lte=last))))
        .order_by("session_id", "position")
        .prefetch_related("parts")
    )
    candidates: dict[int, list[Entry]] = {}
    totals: dict[int, int] = {}
    for message in messages:
        totals[message.session_id] = message.in_session
        content = strip_thinking(message_text(message.text_content, message.parts.all())).strip()
        if not content:
            continue
        if len(content) > MAX_MESSAGE_CHARS:
            content = content[:MAX_MESSAGE_CHARS] + tokens.TRUNCATED
        priority = 0 if message.pk in pinned else 1 if message.position == 1 else 2 + message.from_end
        entry = Entry(message.pk, message.role, content, message.position, priority)
        candidates.setdefault(message.session_id, []).append(entry)
    return [
        Block(sessions[pk], candidates.get(pk, []), totals.get(pk, sessions[pk].message_count))
        for pk in merged
        if pk in sessions
    ]


# --- formats ---------------------------------------------------------------------------------------------

_CLOSING_TAG = re.compile(r"</(context|session|message)", re.IGNORECASE)
HEADINGS = {"user": "User", "assistant": "Assistant", "system": "System", "tool": "Tool"}


def _plural(n: int) -> str:
    return f"{n} message{'s' if n != 1 else ''}"


class TextFormat:
    """Upstream's /api/context text, with gaps marked."""

    def head(self, query: str) -> str:
        return f'Relevant coding sessions for: "{query}"\n\n' if query else "Relevant coding sessions:\n\n"

    def open(self, session: Session) -> str:
        return (
            f"--- Session: {session.title or 'Untitled'} ---\n"
            f"Project: {session.project_path or session.project_name or 'N/A'}\n"
            f"Model: {session.model or 'N/A'}\n\n"
        )

    def entry(self, entry: Entry) -> str:
        return f"[{entry.role.upper()}]\n{entry.content}\n\n"

    def gap(self, n: int) -> str:
        return f"[… {_plural(n)} left out …]\n\n"

    def close(self, session: Session) -> str:
        return "\n"

    def foot(self, query: str) -> str:
        return ""


class MarkdownFormat(TextFormat):
    def head(self, query: str) -> str:
        return f"# Context: {query}\n\n" if query else "# Context from past coding sessions\n\n"

    def open(self, session: Session) -> str:
        return (
            f"## {session.title or 'Untitled'}\n\n"
            f"- **Agent:** {session.source_label}\n"
            f"- **Project:** {session.project_path or session.project_name or 'N/A'}\n"
            f"- **Model:** {session.model or 'N/A'}\n"
            f"- **Date:** {session.created_at:%Y-%m-%d}\n\n"
        )

    def entry(self, entry: Entry) -> str:
        return f"### {HEADINGS.get(entry.role, 'Message')}\n\n{escape_headings(entry.content)}\n\n"

    def gap(self, n: int) -> str:
        return f"*… {_plural(n)} left out …*\n\n"

    def close(self, session: Session) -> str:
        return "---\n\n"


class XmlFormat(TextFormat):
    """XML-tagged blocks for prompts. Content stays as written (code keeps its `<` and `&`); only
    a closing tag of our own elements inside it is broken (`&lt;/message`) so it can't end a
    block early."""

    def head(self, query: str) -> str:
        return f"<context query={quoteattr(query)}>\n" if query else "<context>\n"

    def open(self, session: Session) -> str:
        attrs = {
            "id": str(session.pk),
            "title": session.title or "Untitled",
            "agent": session.source,
            "project": session.project_path or session.project_name or "",
            "model": session.model or "",
            "date": f"{session.created_at:%Y-%m-%d}",
        }
        return "<session " + " ".join(f"{k}={quoteattr(v)}" for k, v in attrs.items() if v) + ">\n"

    def entry(self, entry: Entry) -> str:
        content = _CLOSING_TAG.sub(lambda m: "&lt;/" + m.group(1), entry.content)
        return f'<message role="{entry.role}">\n{content}\n</message>\n'

    def gap(self, n: int) -> str:
        return f'<omitted messages="{n}"/>\n'

    def close(self, session: Session) -> str:
        return "</session>\n"

    def foot(self, query: str) -> str:
        return "</context>\n"


class MessagesFormat(TextFormat):
    """Chat messages: only contents cost tokens (plus MESSAGE_OVERHEAD each); no headers, no gaps."""

    def head(self, query: str) -> str:
        return ""

    def open(self, session: Session) -> str:
        return ""

    def entry(self, entry: Entry) -> str:
        return entry.content

    def gap(self, n: int) -> str:
        return ""

    def close(self, session: Session) -> str:
        return ""


RENDERERS = {TEXT: TextFormat(), MARKDOWN: MarkdownFormat(), XML: XmlFormat(), MESSAGES: MessagesFormat()}


@lru_cache(maxsize=4096)
def _cost(piece: str) -> int:
    return tokens.count(piece) if piece else 0


# --- fitting ---------------------------------------------------------------------------------------------


def _entry_cost(renderer, fmt: str, entry: Entry) -> int:
    piece = renderer.entry(entry)
    return tokens.count(piece) + (MESSAGE_OVERHEAD if fmt == MESSAGES else 0)


def _block_cost(renderer, fmt: str, block: Block, costs: dict[int, int]) -> int:
    if not block.entries:
        return 0
    fixed = _cost(renderer.open(block.session)) + _cost(renderer.close(block.session))
    gaps = sum(_cost(renderer.gap(n)) for _, n in block.gaps())
    return fixed + gaps + sum(costs[entry.message_id] for entry in block.entries)


def _fit(renderer, fmt: str, block: Block, available: int) -> int:
    """Fill block.entries within `available` tokens; returns the tokens used."""
    costs: dict[int, int] = {}
    block.entries = []
    for candidate in sorted(block.candidates, key=lambda entry: entry.priority):
        costs[candidate.message_id] = _entry_cost(renderer, fmt, candidate)
        chosen = sorted([*block.entries, candidate], key=lambda entry: entry.position)
        trial = Block(block.session, block.candidates, block.total, chosen)
        needed = _block_cost(renderer, fmt, trial, costs)
        if needed <= available:
            block.entries = chosen
            continue
        # The session's most important message alone is too long: cut it to what is left, if
        # that is worth having. (Later messages are left out instead, keeping room for the
        # next sessions.)
        spare = available - (needed - costs[candidate.message_id])
        empty = _entry_cost(renderer, fmt, Entry(candidate.message_id, candidate.role, "", 0, 0))
        if not block.entries and spare - empty >= MIN_PIECE:
            cut = Entry(
                candidate.message_id,
                candidate.role,
                tokens.truncate(candidate.content, spare - empty),
                candidate.position,
                candidate.priority,
                cut=True,
            )
            costs[cut.message_id] = _entry_cost(renderer, fmt, cut)
            chosen = sorted([*block.entries, cut], key=lambda entry: entry.position)
            trial = Block(block.session, block.candidates, block.total, chosen)
            if _block_cost(renderer, fmt, trial, costs) <= available:
                block.entries = chosen
        break
    return _block_cost(renderer, fmt, block, costs)


def _render(renderer, fmt: str, query: str, blocks: list[Block]) -> tuple[str, list[dict]]:
    if fmt == MESSAGES:
        messages = [
            {
                "role": entry.role,
                "content": entry.content,
                "metadata": {"sessionId": str(block.session.pk), "sessionTitle": block.session.title},
            }
            for block in blocks
            for entry in block.entries
        ]
        return "", messages
    out = [renderer.head(query)]
    for block in blocks:
        if not block.entries:
            continue
        out.append(renderer.open(block.session))
        gaps = dict(block.gaps())
        for index, entry in enumerate(block.entries):
            if index in gaps:
                out.append(renderer.gap(gaps[index]))
            out.append(renderer.entry(entry))
        if len(block.entries) in gaps:
            out.append(renderer.gap(gaps[len(block.entries)]))
        out.append(renderer.close(block.session))
    out.append(renderer.foot(query))
    return "".join(out), []


def build(blocks: list[Block], *, fmt: str = TEXT, budget: int = DEFAULT_BUDGET, query: str = "") -> Context:
    """The context of `blocks` (from load_blocks) in `fmt`, within `budget` tokens."""
    renderer = RENDERERS[fmt]
    used = _cost(renderer.head(query)) + _cost(renderer.foot(query))
    for block in blocks:
        fixed = _cost(renderer.open(block.session)) + _cost(renderer.close(block.session))
        if used + fixed + MIN_PIECE > budget:
            block.entries = []
            continue
        used += _fit(renderer, fmt, block, budget - used)
    text, messages = _render(renderer, fmt, query, blocks)
    if fmt == MESSAGES:
        count = sum(tokens.count(m["content"]) + MESSAGE_OVERHEAD for m in messages)
    else:
        count = tokens.count(text)
        # Pieces counted apart can merge differently where they meet; drop the least important
        # message of the last session until the exact count fits.
        while count > budget and any(block.entries for block in blocks):
            last = next(block for block in reversed(blocks) if block.entries)
            last.entries.remove(max(last.entries, key=lambda entry: entry.priority))
            text, messages = _render(renderer, fmt, query, blocks)
            count = tokens.count(text)
    return Context(fmt, budget, blocks, text=text, messages=messages, tokens=count)
