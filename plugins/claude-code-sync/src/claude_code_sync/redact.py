"""Client-side secret redaction, applied to every string sent (text, tool arguments, outputs)."""

import re
from typing import Any

MARK = "[REDACTED]"
# Words that mark a name as a secret's (DB_PASSWORD, api_key, GITHUB_TOKEN, ...).
SECRET_NAMES = ("password", "passwd", "passphrase", "pwd", "secret", "token", "api[_-]?key", "access[_-]?key")
SECRET_WORDS = "(?:" + "|".join((*SECRET_NAMES, "private[_-]?key", "credentials?", "auth")) + ")"

# Whole-token secrets: the match is replaced by MARK.
TOKENS = [
    re.compile(
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----",
        re.DOTALL,
    ),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),  # JWT
    re.compile(r"\bsk-[A-Za-z0-9_-]{20,}"),  # OpenAI / Anthropic (sk-ant-...)
    re.compile(r"\bosk_[A-Za-z0-9_-]{16,}"),  # OpenSync
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"),  # GitHub tokens
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}"),
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key ids
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),  # Slack
]
BEARER = re.compile(r"\b(Bearer\s+)[A-Za-z0-9._~+/=-]{12,}")
# "password": "hunter2" (JSON or Python dicts)
QUOTED_PAIR = re.compile(
    rf"""(?P<name>(?P<q>["'])[^"'\n]*?{SECRET_WORDS}[^"'\n]*?(?P=q)\s*:\s*)(?P<vq>["'])(?P<value>[^"'\n]+)(?P=vq)""",
    re.IGNORECASE,
)
# DB_PASSWORD=..., api_key: ..., GITHUB_TOKEN="..." (the name must end in the secret word). The
# name starts where a run of name characters starts, never inside one: with `\b` there, every
# `-`/`.` in a long run (base64url, a-b-c-...) started a new scan of the run, quadratic in its length.
ASSIGNMENT = re.compile(
    rf"""(?P<name>(?<![A-Za-z0-9_.-])[A-Za-z0-9_.-]*?{SECRET_WORDS}\b\s*[:=]\s*)(?P<vq>["']?)(?P<value>[^\s"'(),;]{{4,}})(?P=vq)""",
    re.IGNORECASE,
)
SECRET_KEY = re.compile(rf"{SECRET_WORDS}$", re.IGNORECASE)


def redact_text(text: str) -> str:
    for pattern in TOKENS:
        text = pattern.sub(MARK, text)
    text = BEARER.sub(lambda m: m.group(1) + MARK, text)
    text = QUOTED_PAIR.sub(lambda m: f"{m.group('name')}{m.group('vq')}{MARK}{m.group('vq')}", text)
    return ASSIGNMENT.sub(lambda m: f"{m.group('name')}{m.group('vq')}{MARK}{m.group('vq')}", text)


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
