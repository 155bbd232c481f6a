"""Eval records, checked with the structural rules of eval-formats.md §9 on a session with a
system prompt, tool calls and results, an empty assistant turn, a non-assistant tail, non-ASCII
text, secrets and home paths."""

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from evals import formats
from evals.exchanges import anonymize, conversation, redact
from evals.formats import MULTI_TURN, Options
from evals.services import message_label, session_review
from sessions_app.tests.factories import MessageFactory, PartFactory, SessionFactory

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 1, 15, 10, 30, tzinfo=UTC)
SECRET = "sk-proj-abcdefghijklmnopqrstuvwx"


@pytest.fixture
def session(user):
    session = SessionFactory(owner=user, title="Fix TypeError in parse_config", external_id="ses_8f3a2c1d9e7b4a60")
    at = iter(T0 + timedelta(seconds=i) for i in range(100))

    def message(role, text="", parts=()):
        m = MessageFactory(session=session, role=role, text_content=text, created_at=next(at))
        for order, (kind, content) in enumerate(parts):
            PartFactory(message=m, type=kind, content=content, order=order)
        return m

    message("system", "You are a coding agent in /home/alice/src/acme-api.")
    message("user", f"Fix the TypeError in parse_config — naïve café ☕. My key is {SECRET}")
    message(
        "assistant",
        parts=[
            ("text", "I'll look at parse_config first."),
            ("tool-call", {"id": "call_1", "name": "read_file", "args": {"path": "/home/alice/src/config.py"}}),
        ],
    )
    message("tool", parts=[("tool-result", {"tool_call_id": "call_1", "output": "def parse_config(path): ..."})])
    message("assistant", "")  # an empty assistant message
    final = message("assistant", "Done: parse_config now returns '' for missing values.")
    message("user", "Thanks. Now add a regression test.")
    message("assistant", "Added tests/test_config.py::test_empty_value.")
    message("user", "And one more thing?")  # no answer: dropped
    session_review(
        session=session,
        actor=user,
        eval_ready=True,
        eval_status="golden",
        eval_tags=["bug-fix"],
        eval_notes="Minimal fix.",
        expected_output="A regression test for the empty value.",
    )
    session.final = final
    return session


def dump(records) -> str:
    return json.dumps(records, ensure_ascii=False)


def test_exchanges_answers_and_tool_pairing(session):
    conv = conversation(session)
    assert conv.system == ["You are a coding agent in /home/alice/src/acme-api."]
    assert [e.user[:10] for e in conv.exchanges] == ["Fix the Ty", "Thanks. No"]
    first = conv.exchanges[0]
    assert first.answer == "Done: parse_config now returns '' for missing values."  # the last, not the first
    assert [(c.name, c.input_parameters, c.output) for c in first.tool_calls] == [
        ("read_file", {"path": "/home/alice/src/config.py"}, "def parse_config(path): ...")
    ]
    assert first.expected is None and conv.exchanges[1].expected == "A regression test for the empty value."


def test_every_plugins_tool_parts_give_arguments_and_output(user):
    """The tool-call and tool-result shapes the plugins send (sync-plugins.md §4.3, the plugins in
    plugins/), and OpenCode's own tool part, which used to give null arguments and no output."""
    session = SessionFactory(owner=user)
    at = iter(T0 + timedelta(seconds=i) for i in range(100))

    def message(role, text="", parts=()):
        m = MessageFactory(session=session, role=role, text_content=text, created_at=next(at))
        for order, (kind, content) in enumerate(parts):
            PartFactory(message=m, type=kind, content=content, order=order)

    message("user", "Go.")
    message(
        "assistant",
        "Looking.",
        [
            ("text", "Looking."),
            ("text", "```python\nx = 1\n```"),  # words the text content lacks
            ("tool", {"tool": "grep", "callID": "c1", "state": {"status": "completed", "input": {"pattern": "TODO"},
                                                               "output": "a.py:3: TODO"}}),
            ("tool", {"tool": "bash", "state": {"status": "error", "input": {"command": "make"}, "error": "exit 2"}}),
            ("tool-call", {"id": "c2", "toolName": "read", "args": {"path": "x.py"}, "output": "print(1)"}),
            ("tool_use", {"toolName": "Edit", "args": {"file_path": "y.py"}, "result": "edited"}),
            ("tool-call", {"id": "toolu_1", "toolName": "Bash", "args": {"command": "ls"}}),
            ("tool-call", {"toolName": "read", "args": {"path": "z.ts"}}),
        ],
    )  # fmt: skip
    message("tool", parts=[("tool-result", {"toolUseId": "toolu_1", "output": "a.txt", "isError": False})])
    message("assistant", parts=[("tool-result", "export {}")])  # pi: the result as a string, no id
    message("assistant", "Done.")
    (exchange,) = conversation(session).exchanges
    assert exchange.assistant[0].text == "Looking.\n```python\nx = 1\n```"
    assert [(c.name, c.input_parameters, c.output) for c in exchange.tool_calls] == [
        ("grep", {"pattern": "TODO"}, "a.py:3: TODO"),
        ("bash", {"command": "make"}, "exit 2"),
        ("read", {"path": "x.py"}, "print(1)"),
        ("Edit", {"file_path": "y.py"}, "edited"),
        ("Bash", {"command": "ls"}, "a.txt"),
        ("read", {"path": "z.ts"}, "export {}"),
    ]


def test_deepeval_goldens_follow_the_rules(session):
    rows = formats.deepeval_goldens(conversation(session), Options(include_system=True))
    assert isinstance(rows, list) and len(rows) == 2
    for row in rows:
        assert isinstance(row["input"], str) and row["input"]
        assert isinstance(row["tools_called"], list) and isinstance(row["additional_metadata"], dict)
        assert isinstance(row["context"], list) and "scenario" not in row
    assert rows[0]["tools_called"][0]["name"] == "read_file" and rows[1]["tools_called"] == []
    assert rows[0]["expected_output"] is None and rows[1]["expected_output"].startswith("A regression test")
    assert rows[0]["context"] == ["system: You are a coding agent in /home/alice/src/acme-api."]
    assert rows[1]["context"][-1].startswith("assistant: Done: parse_config")
    assert rows[0]["additional_metadata"]["turn"] == 1 and rows[0]["additional_metadata"]["tags"] == ["bug-fix"]
    assert rows[0]["comments"] == "Minimal fix." and len({row["name"] for row in rows}) == 2
    assert "metadata" not in rows[0]  # deepeval's key is additional_metadata
    assert formats.deepeval_goldens(conversation(session), Options(turn_mode="final_only"))[0]["name"].endswith("#2")


def test_deepeval_conversational_alternates_user_and_assistant(session):
    rows = formats.deepeval_conversational(conversation(session), Options(turn_mode=MULTI_TURN))
    assert len(rows) == 1
    row = rows[0]
    assert row["scenario"] == "Fix TypeError in parse_config"
    assert [t["role"] for t in row["turns"]] == ["user", "assistant", "user", "assistant"]
    assert row["turns"][1]["tools_called"][0]["output"] == "def parse_config(path): ..."
    assert row["expected_outcome"].startswith("A regression test") and row["context"] == []
    session.title = None
    assert formats.deepeval_conversational(conversation(session), Options())[0]["scenario"].startswith("Fix the")


def test_openai_samples_end_with_the_user_message(session):
    rows = formats.openai_samples(conversation(session), Options(include_system=True))
    for row in rows:
        roles = [m["role"] for m in row["input"]]
        assert roles[-1] == "user" and set(roles) <= {"system", "user", "assistant"}
        assert isinstance(row["ideal"], str) and row["ideal"]
    assert rows[0]["input"][0]["role"] == "system"
    assert rows[1]["ideal"] == "A regression test for the empty value."  # the expected output wins
    history = rows[1]["input"][2]["content"]
    assert "[TOOL_CALL: read_file]" in history and "[TOOL_RESULT: read_file]" in history
    lines = "\n".join(json.dumps(row, ensure_ascii=False) for row in rows)
    assert "\n\n" not in lines


def test_chat_messages_end_with_the_assistant(session):
    (row,) = formats.chat_messages(conversation(session), Options())
    roles = [m["role"] for m in row["messages"]]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert row["messages"][1]["content"].endswith("Done: parse_config now returns '' for missing values.")


def test_a_corrected_answer_replaces_the_turns_answer(session, user):
    message_label(message=session.final, actor=user, corrected_answer="Return '' and add a test.")
    rows = formats.deepeval_goldens(conversation(session), Options())
    assert rows[0]["actual_output"] == "Return '' and add a test."


@pytest.mark.parametrize("name", sorted(formats.FORMATS))
def test_every_string_is_cleaned_and_non_ascii_survives(session, name):
    build = formats.FORMATS[name].records
    text = dump(build(conversation(session), Options(include_system=True, anonymize_paths=True)))
    assert SECRET not in text and "[REDACTED]" in text
    assert "/home/alice" not in text and "naïve café ☕" in text
    raw = dump(build(conversation(session), Options(redact_secrets=False, include_system=True)))
    assert SECRET in raw


def test_a_session_without_an_answer_gives_no_records(user):
    session = SessionFactory(owner=user)
    MessageFactory(session=session, role="user", text_content="hello?")
    for fmt in formats.FORMATS.values():
        assert fmt.records(conversation(session), Options()) == []


@pytest.mark.parametrize(
    "text, expected",
    [
        ("/Users/jane/x and /home/bob/y", "/Users/user/x and /home/user/y"),
        ("C:\\Users\\Jane\\code", "C:\\Users\\user\\code"),
    ],
)
def test_anonymize(text, expected):
    assert anonymize(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "key sk-ant-abcdefghijklmnopqrstuvwxyz",
        "ghp_abcdefghijklmnopqrstuvwxyz0123",
        "AKIAABCDEFGHIJKLMNOP",
        "password=hunter2hunter2",
        "API_KEY: 'abcdef123456'",
        "-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----",
    ],
)
def test_redact(text):
    assert "[REDACTED]" in redact(text)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("OPENAI_API_KEY=abcdef123456", "OPENAI_API_KEY=[REDACTED]"),
        ("export GITHUB_TOKEN=abcd1234efgh", "export GITHUB_TOKEN=[REDACTED]"),
        ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG", "AWS_SECRET_ACCESS_KEY=[REDACTED]"),
        ('{"db_password": "hunter2x"}', '{"db_password": "[REDACTED]"}'),
        ("Authorization: Bearer abcdefghijklmnop.qrs", "Authorization: Bearer [REDACTED]"),
        ("total_tokens: 123456", "total_tokens: 123456"),  # a count, not a secret
        ("the token is valid", "the token is valid"),
    ],
)
def test_redact_prefixed_names_json_and_bearer(text, expected):
    assert redact(text) == expected


# The plugins (claude-code-sync's redact.py, opencode-sync's redact.js) run the same corpus: the
# three redactors give the same text for every entry.
REDACTION_CORPUS = json.loads(
    (Path(__file__).resolve().parents[2] / "tests/fixtures/redaction_corpus.json").read_text()
)


@pytest.mark.parametrize("entry", REDACTION_CORPUS, ids=range(len(REDACTION_CORPUS)))
def test_the_shared_redaction_corpus(entry):
    assert redact(entry["input"]) == entry["expected"]
    # what the exports run: every string of a record, cached
    from evals.exchanges import clean_value

    assert clean_value([entry["input"]], anonymize_paths=False, redact_secrets=True) == [entry["expected"]]


def test_a_secret_named_argument_is_redacted_whole():
    from evals.exchanges import clean_value

    value = {"password": "correct horse", "github_token": "abcdefgh", "tokens": 12, "tokenizer": "cl100k_base"}
    cleaned = clean_value(value, anonymize_paths=False, redact_secrets=True)
    assert cleaned == {"password": "[REDACTED]", "github_token": "[REDACTED]", "tokens": 12, "tokenizer": "cl100k_base"}


def _conv(*turns, expected=None):
    from evals.exchanges import build

    meta = {"session_id": "s1", "title": "t", "source": "claude-code", "model": "", "project": "", "tags": [],
            "eval_status": "", "created_at": "2026-01-01T00:00:00Z"}  # fmt: skip
    return build(list(turns), meta=meta, expected=expected)


def test_chat_folds_each_assistant_message_once_and_uses_the_correction():
    from evals.exchanges import ToolCall, Turn

    conv = _conv(
        Turn("user", "Fix it"),
        Turn("assistant", "Looking.", [ToolCall("read", {"p": "a"}, "x")]),
        Turn("assistant", "Fixed it."),
        Turn("assistant", "", [ToolCall("run_tests", {}, "ok")]),  # ends on a tool call
    )
    (row,) = formats.chat_messages(conv, Options())
    content = row["messages"][1]["content"]
    assert content.count("Fixed it.") == 1 and content.index("Fixed it.") < content.index("run_tests")
    conv.exchanges[0].answer = "Fixed it properly."  # a reviewer's correction
    (row,) = formats.chat_messages(conv, Options())
    assert "Fixed it properly." in row["messages"][1]["content"] and "Fixed it." not in row["messages"][1]["content"]
    (golden,) = formats.deepeval_conversational(conv, Options(turn_mode=MULTI_TURN))
    assert golden["turns"][1]["content"] == "Looking.\n\nFixed it properly."


def test_the_expected_output_follows_the_last_exchange_kept():
    from evals.exchanges import Turn

    conv = _conv(
        Turn("user", "Write:\n```py\nx\n```"),
        Turn("assistant", "Done:\n```py\ny\n```"),
        Turn("user", "thanks"),
        Turn("assistant", "You're welcome."),
        expected="The reference.",
    )
    rows = formats.deepeval_goldens(conv, Options(code_blocks_only=True))
    assert len(rows) == 1 and rows[0]["expected_output"] == "The reference."
    assert conv.exchanges[0].expected is None  # the conversation itself is unchanged


def test_a_result_with_an_unknown_id_does_not_take_another_call():
    from types import SimpleNamespace

    from evals.exchanges import PartRow, turns_from_messages

    def message(role, *parts):
        return SimpleNamespace(role=role, text_content="", created_at=None, parts=list(parts))

    messages = [
        message("assistant", PartRow("tool-call", {"id": "a", "name": "read", "args": {}})),
        message("tool", PartRow("tool-result", {"tool_call_id": "zzz", "output": "stray"})),
        message("tool", PartRow("tool-result", {"tool_call_id": "a", "output": "mine"})),
    ]
    (turn,) = turns_from_messages(messages, parts_of=lambda m: m.parts)
    assert turn.tool_calls[0].output == "mine"


def test_a_call_part_carrying_its_own_output_or_error_is_answered():
    """opencode-sync sends the tool's state inside the call part: `output`, or `error` when it failed."""
    from types import SimpleNamespace

    from evals.exchanges import PartRow, turns_from_messages

    message = SimpleNamespace(role="assistant", text_content="", created_at=None, parts=[
        PartRow("tool-call", {"id": "a", "toolName": "bash", "args": {}, "status": "completed", "output": "ok"}),
        PartRow("tool-call", {"id": "b", "toolName": "bash", "args": {}, "status": "error", "error": "exit 1"}),
    ])  # fmt: skip
    (turn,) = turns_from_messages([message], parts_of=lambda m: m.parts)
    assert [call.output for call in turn.tool_calls] == ["ok", "exit 1"]


def test_redaction_of_long_runs_of_name_characters_is_linear():
    """A base64url blob or an a-b-c-... run: the NAME=value and scheme:// patterns used to rescan it
    from every `-` or `.` (quadratic). Ten times the text takes about ten times as long."""

    def seconds(text: str) -> float:
        best = float("inf")
        for _ in range(3):  # the best of three: one run can take a neighbour's hit
            started = time.process_time()
            redact(text)
            best = min(best, time.process_time() - started)
        return best

    tail = " postgres://app:s3cret@db/x api_key=abcd1234"
    for unit in ("a-", "Zx9_-Q", "a.b."):
        small, large = (unit * (size // len(unit)) for size in (10_000, 100_000))
        assert redact(small + tail) == small + " postgres://app:[REDACTED]@db/x api_key=[REDACTED]"
        ratio = seconds(large + tail) / seconds(small + tail)
        assert ratio <= 30, (unit, ratio)  # linear: ~10; the quadratic scan: ~100
