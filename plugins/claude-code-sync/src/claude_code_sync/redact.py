"""Client-side secret redaction, applied to every string sent (text, tool arguments, outputs).

The text rules are the server's (evals.exchanges.redact) and the OpenCode plugin's
(plugins/opencode-sync/src/redact.js), in the same order: tests/fixtures/redaction_corpus.json is
run through all three, so a change here needs the same change there.
"""

import re
from typing import Any

MARK = "[REDACTED]"
# A name is a secret's when it ends in one of these (DB_PASSWORD, api_key, GITHUB_TOKEN,
# STRIPE_SECRET_KEY, client_secret); max_tokens, token_count, AUTHOR or PWD are not.
SECRET_WORDS = r"(?:password|passwd|passphrase|secret|token|credentials?|(?:api|access|private|secret|auth)[_-]?key)"  # noqa: S105 - a pattern, not a password
# re.ASCII: \b, \w and IGNORECASE as JavaScript has them, so the three redactors agree.
_FLAGS = re.ASCII

# Whole-token secrets: the match is replaced by MARK.
TOKENS = [
    re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----", _FLAGS),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", _FLAGS),  # JWT
    re.compile(r"\bsk-[A-Za-z0-9_-]{16,}", _FLAGS),  # OpenAI / Anthropic (sk-ant-...)
    re.compile(r"\bosk_[A-Za-z0-9_-]{16,}", _FLAGS),  # OpenSync
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}", _FLAGS),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}", _FLAGS),  # GitHub tokens
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", _FLAGS),  # AWS access key ids
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}", _FLAGS),  # Slack
]
BEARER = re.compile(r"\b(bearer[ \t]+)[A-Za-z0-9._~+/=-]{12,}", _FLAGS | re.IGNORECASE)
# scheme://user:password@host (postgres://app:s3cret@db/x, redis://:pass@host): the password goes.
# The scheme is at most 32 characters: unbounded, every `-`/`.` in a long a-b-c-... run started a
# scan of the rest of the run for "://", quadratic in its length.
URL_PASSWORD = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]{0,31}://[^ \t\r\n:/@'\"`]*:)[^ \t\r\n/@'\"`]+@", _FLAGS)
# DB_PASSWORD=..., api_key: ..., "password": "...", {'client_secret': '...'}: the value goes, its
# quotes stay. The name starts where a run of name characters starts, never inside one: with `\b`
# there, every `-`/`.` in a long run (base64url, a-b-c-...) started a new scan of the run,
# quadratic in its length. A bare value stops at a backtick, so "`TOKEN=abc`" keeps its closing one.
ASSIGNMENT = re.compile(
    r"""(?<![A-Za-z0-9_.-])(["']?)([A-Za-z0-9_.-]*?""" + SECRET_WORDS + r""")\b\1[ \t]*[:=][ \t]*"""
    r"""("[^"\n]*"|'[^'\n]*'|[^ \t\r\n"'`,;&|()}<>]+)""",
    _FLAGS | re.IGNORECASE,
)
# Values that are not secrets even under a secret's name: numbers, booleans, $VARIABLES, empty.
HARMLESS_VALUE = re.compile(
    r"(?:\d+(?:\.\d+)?|true|false|null|none|undefined|\$\{?\w+\}?|\[REDACTED\])?", _FLAGS | re.IGNORECASE
)
SECRET_KEY = re.compile(SECRET_WORDS + "$", re.IGNORECASE)


def _assignment(match: re.Match) -> str:
    value = match.group(3)
    quote = value[0] if value[0] in "\"'" else ""
    if HARMLESS_VALUE.fullmatch(value[1:-1] if quote else value):
        return match.group(0)
    return match.group(0)[: match.start(3) - match.start(0)] + quote + MARK + quote


def redact_text(text: str) -> str:
    for pattern in TOKENS:
        text = pattern.sub(MARK, text)
    text = BEARER.sub(lambda m: m.group(1) + MARK, text)
    text = URL_PASSWORD.sub(lambda m: m.group(1) + MARK + "@", text)
    return ASSIGNMENT.sub(_assignment, text)


def redact(value: Any) -> Any:
    """A copy of `value` with secrets masked in every string; dict values under a secret-looking
    key (e.g. {"api_key": "..."}) are masked whole."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list):
        return [redact(item) for item in value]
    if isinstance(value, dict):
        return {
            key: MARK if isinstance(item, str) and item and SECRET_KEY.search(str(key)) else redact(item)
            for key, item in value.items()
        }
    return value
