"""The text of a message: one rule for search (search_text.SEARCH_TEXT_SQL does the same in SQL),
language detection, the context builder and the exports.

Plugins send a message's words as `textContent`, as text parts, or as both: often the same words
twice (claude-code-sync, pi), sometimes not (a client that puts only the last text part, or a
summary, in `textContent`). So the text is `textContent`, then every text part whose words are
not already in it, in order. Nothing is lost and nothing is said twice.
"""

from collections.abc import Iterable
from typing import Any

from .rendering import TEXT_TYPES, part_text

# What counts as blank around a part's text: what SQL's btrim(text, E' \t\r\n') strips.
BLANK = " \t\r\n"


def text_pieces(text_content: str | None, parts: Iterable[Any]) -> list[tuple[int | None, str]]:
    """(index of the part, or None for `textContent`, text) for each piece of the message's text,
    in order. `parts` are objects with `type` and `content` (Part rows, PartRow tuples)."""
    text_content = text_content or ""
    pieces: list[tuple[int | None, str]] = [(None, text_content)] if text_content.strip(BLANK) else []
    for index, part in enumerate(parts):
        if part.type in TEXT_TYPES:
            text = part_text(part.content)
            words = text.strip(BLANK)
            if words and words not in text_content:
                pieces.append((index, text))
    return pieces


def message_text(text_content: str | None, parts: Iterable[Any]) -> str:
    """The text of a message: its pieces (text_pieces) joined by newlines; "" when it has none."""
    return "\n".join(text for _, text in text_pieces(text_content, parts))
