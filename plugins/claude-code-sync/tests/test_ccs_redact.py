"""Client-side secret redaction."""

import json
import time
from pathlib import Path

import pytest
from claude_code_sync.redact import MARK, redact, redact_text

SECRETS = [
    "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz012345",
    "sk-proj-abcdefghijklmnopqrstuvwxyz",
    "osk_AbCdEfGhIjKlMnOpQrStUvWxYz012345",
    "ghp_" + "A1b2" * 9,
    "gho_" + "x" * 36,
    "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
    "AKIAIOSFODNN7EXAMPLE",
    "xoxb-123456789012-123456789012-abcdefghijkl",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----",
]


# The server (evals/exchanges.py) and opencode-sync (test/redact.test.js) run the same corpus: the
# three redactors give the same text for every entry.
CORPUS = json.loads((Path(__file__).resolve().parents[3] / "tests/fixtures/redaction_corpus.json").read_text())


@pytest.mark.parametrize("entry", CORPUS, ids=range(len(CORPUS)))
def test_the_shared_redaction_corpus(entry):
    assert redact_text(entry["input"]) == entry["expected"]


@pytest.mark.parametrize("secret", SECRETS)
def test_token_shaped_secrets_are_masked(secret):
    text = f"before {secret} after"
    assert redact_text(text) == f"before {MARK} after"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def-ghi_jkl123", f"Authorization: Bearer {MARK}"),
        ("DB_PASSWORD=hunter22", f"DB_PASSWORD={MARK}"),
        ('export GITHUB_TOKEN="abcd1234"', f'export GITHUB_TOKEN="{MARK}"'),
        ("api_key: abcd1234", f"api_key: {MARK}"),
        ('{"password": "s3cr3t!", "user": "bob"}', f'{{"password": "{MARK}", "user": "bob"}}'),
        ("{'client_secret': 'xyzzy'}", f"{{'client_secret': '{MARK}'}}"),
    ],
)
def test_name_value_secrets_keep_the_name(text, expected):
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    ["max_tokens=1000", "token_count = 5", "author = bob", "pwd = $(pwd)", "the sky is blue", "sk-short", "Bearer x"],
)
def test_ordinary_text_is_left_alone(text):
    assert redact_text(text) == text


def test_structures_are_redacted_recursively_and_secret_keys_masked():
    value = {
        "command": "curl -H 'Authorization: Bearer abcdefghijklmnop'",
        "api_key": "plain",
        "n": 3,
        "l": ["osk_" + "a" * 20],
    }
    assert redact(value) == {
        "command": f"curl -H 'Authorization: Bearer {MARK}'",
        "api_key": MARK,
        "n": 3,
        "l": [MARK],
    }


def test_long_runs_of_name_characters_take_linear_time():
    """A base64url blob or an a-b-c-... run in a tool output must not stall a hook: the NAME=value and
    scheme:// patterns used to rescan the run from every `-` or `.` in it (20 KB took 15 s; 200 KB,
    hours). Ten times the text takes about ten times as long, not a hundred: a ratio, so a busy
    machine slows both sizes alike."""

    def seconds(text: str) -> float:
        best = float("inf")
        for _ in range(3):  # the best of three: one run can take a neighbour's hit
            started = time.process_time()
            redact_text(text)
            best = min(best, time.process_time() - started)
        return best

    tail = " postgres://app:s3cret@db/x api_key=abcd1234"
    for unit in ("a-", "Zx9_-Q", "a.b."):
        small, large = (unit * (size // len(unit)) for size in (10_000, 100_000))
        assert redact_text(small + tail) == small + f" postgres://app:{MARK}@db/x api_key={MARK}"
        ratio = seconds(large + tail) / seconds(small + tail)
        assert ratio <= 30, (unit, ratio)  # linear: ~10; the quadratic scan: ~100
