"""What gets embedded: the text of a message, its chunks, and the text of a session.

* A message's text is sessions_app.message_text's rule (its `text_content`, then the text parts
  whose words are not already in it: the same text search, context and exports use), followed by one
  line per tool call ("Tool: <name> <arguments>", arguments cut to TOOL_ARGS_CHARS). Tool
  results and thinking are left out: they are mostly file contents and command output, which
  full-text search finds better and which would drown the message's meaning.
* Chunks are measured in characters, not tokens (no tokenizer per model needed): at most
  OPENSYNC_EMBEDDINGS_CHUNK_CHARS each (2,000 by default, about 500 tokens of English and fewer
  of code, well inside every model's window), overlapping by OPENSYNC_EMBEDDINGS_CHUNK_OVERLAP,
  cut at a paragraph, line or word boundary when one is near, and at most
  OPENSYNC_EMBEDDINGS_MAX_CHUNKS per message.
* The session-level text is the title, the summary, then the user's prompts in order, then the
  rest of the conversation, cut to SESSION_TEXT_CHARS: what the session is about, in the words
  the user asked it. (The first 8,000 characters, as upstream embeds, would be mostly the first
  assistant answer.) It is embedded on its own rather than averaged from the chunks, whose mean
  is blurred by tool chatter.
"""

import hashlib
import json
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

from sessions_app import message_text as text_rule
from sessions_app.rendering import TOOL_CALL_TYPES, tool_call

TOOL_ARGS_CHARS = 1_000
SESSION_TEXT_CHARS = 8_000


def message_text(text_content: str | None, parts: Iterable[tuple[str, Any]]) -> str:
    """The text embedded for one message; `parts` are (type, content) in display order."""
    parts = list(parts)
    text = text_rule.message_text(text_content, (SimpleNamespace(type=t, content=c) for t, c in parts)).strip()
    pieces = [text] if text else []
    for type_, content in parts:
        if type_ in TOOL_CALL_TYPES:
            name, args = tool_call(content)
            if args is None or isinstance(args, str):
                args_text = args or ""
            else:
                args_text = json.dumps(args, ensure_ascii=False, separators=(",", ":"), default=str)
            pieces.append(f"Tool: {name} {args_text[:TOOL_ARGS_CHARS]}".rstrip())
    return "\n".join(pieces)


def chunk_text(text: str, *, size: int, overlap: int, max_chunks: int) -> list[str]:
    """Overlapping chunks of at most `size` characters, cut at the last paragraph break, line
    break or space in the second half of each window (a hard cut when there is none)."""
    text = text.strip()
    if len(text) <= size:
        return [text] if text else []
    chunks: list[str] = []
    start = 0
    while start < len(text) and len(chunks) < max_chunks:
        end = start + size
        if end >= len(text):
            end = len(text)
        else:
            floor = start + size // 2
            for separator in ("\n\n", "\n", " "):
                cut = text.rfind(separator, floor, end)
                if cut > floor:
                    end = cut
                    break
        chunk = text[start:end].strip()
        if chunk:
            chunks.append(chunk)
        if end >= len(text):
            break
        # The next chunk starts `overlap` characters back, at a word start when there is one.
        start = end - overlap
        space = text.find(" ", start, end)
        if overlap and 0 <= space < end - 1:
            start = space + 1
    return chunks


def chunk_at(text: str, index: int, *, size: int, overlap: int) -> str:
    """Chunk `index` of `text` as `chunk_text` cuts it (the last chunk if there are fewer).

    `text` may be only the start of the whole text, as long as it holds `prefix_chars(index, ...)`
    characters (or is the whole text): chunk k starts before k * size, and where it starts
    depends only on the text before that."""
    chunks = chunk_text(text, size=size, overlap=overlap, max_chunks=index + 1)
    return chunks[min(index, len(chunks) - 1)] if chunks else ""


def prefix_chars(index: int, *, size: int, extra: int) -> int:
    """How much of a text `chunk_at(..., index)` needs to return that chunk's first `extra` characters."""
    return index * size + extra


def text_hash(text: str, *, model: str, dimensions: int) -> str:
    """sha256 of what determines a vector: the model, its dimensions and the text."""
    return hashlib.sha256(f"{model}\n{dimensions}\n{text}".encode()).hexdigest()


class SessionText:
    """Collects the session-level text while the messages stream past (see the module docstring)."""

    def __init__(self, *, title: str | None, summary: str | None, limit: int = SESSION_TEXT_CHARS) -> None:
        self.limit = limit
        self.head = "\n".join(filter(None, ((title or "").strip(), (summary or "").strip())))
        self._prompts: list[str] = []
        self._others: list[str] = []
        self._prompt_chars = self._other_chars = len(self.head)

    def add(self, role: str, text: str) -> None:
        if not text:
            return
        if role == "user":
            if self._prompt_chars < self.limit:
                self._prompts.append(text[: self.limit])
                self._prompt_chars += len(text) + 2
        elif self._other_chars < self.limit:
            self._others.append(text[: self.limit])
            self._other_chars += len(text) + 2

    def text(self) -> str:
        return "\n\n".join(filter(None, [self.head, *self._prompts, *self._others]))[: self.limit].strip()
