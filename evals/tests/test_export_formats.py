"""Export files end to end (evals.export.write / preview, evals.next_steps) with the structural
rules of eval-formats.md: OpenAI Evals API rows, Promptfoo test cases (JSONL and YAML), turn
modes, the length and code-block filters, the writers (JSON array, JSONL, YAML, zip), the
report (counts, warnings, content hash), cleaning and the what's-next commands.

Sessions: the test_formats pattern (system prompt, tool call + result, an empty assistant turn,
an unanswered tail, non-ASCII text, a secret, home paths), one with a fenced code block and a
detected language, one with no assistant answer and one whose only assistant turn is a tool call."""

import io
import json
import re
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath

import pytest
import yaml
from jsonschema import Draft202012Validator

from accounts.tests.factories import team_with
from evals import formats
from evals.exchanges import conversation
from evals.export import OVERSIZED_CHARS, preview, resolve, write
from evals.formats import FORMATS, ITEM_SCHEMA, Options, kept_exchanges
from evals.next_steps import steps
from sessions_app.models import Message, Session
from sessions_app.tests.factories import MessageFactory, PartFactory, SessionFactory

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 1, 15, 10, 30, tzinfo=UTC)
SECRET = "sk-proj-abcdefghijklmnopqrstuvwx"
NON_ASCII = "naïve café ☕"
FIRST_ANSWER = "Done: parse_config now returns '' for missing values."
SECOND_ANSWER = "Added tests/test_config.py::test_empty_value."
EXPECTED = "A regression test for the empty value in /home/alice/src/tests."
CODE_ANSWER = "Here it is:\n\n```python\ndef slugify(text):\n    return text.lower().replace(' ', '-')\n```"
SINGLE_TURN = ["deepeval", "openai", "openai-evals-api", "promptfoo", "promptfoo-yaml"]
DATE = "2026-01-17T09:00:00Z"
DEFAULTS = Options()


def make_session(owner, script, **fields):
    """A session with messages from `script`: (role, text, parts) tuples, one second apart."""
    session = SessionFactory(owner=owner, **fields)
    for i, (role, text, parts) in enumerate(script):
        message = MessageFactory(session=session, role=role, text_content=text, created_at=T0 + timedelta(seconds=i))
        for order, (kind, content) in enumerate(parts):
            PartFactory(message=message, type=kind, content=content, order=order)
    return session


def simple(owner, answer="The answer.", prompt="Explain the change please.", **fields):
    return make_session(owner, [("user", prompt, ()), ("assistant", answer, ())], **fields)


@pytest.fixture
def session(user):
    return make_session(
        user,
        [
            ("system", "You are a coding agent in /home/alice/src/acme-api.", ()),
            ("user", f"Fix the TypeError in parse_config — {NON_ASCII}. My key is {SECRET}", ()),
            (
                "assistant",
                "",
                [
                    ("text", "I'll look at parse_config first."),
                    ("tool-call", {"id": "call_1", "name": "read_file", "args": {"path": "/home/alice/src/config.py"}}),
                ],
            ),
            ("tool", "", [("tool-result", {"tool_call_id": "call_1", "output": "def parse_config(path): ..."})]),
            ("assistant", "", ()),  # an empty assistant message
            ("assistant", FIRST_ANSWER, ()),
            ("user", "Thanks. Now add a regression test.", ()),
            ("assistant", SECOND_ANSWER, ()),
            ("user", "And one more thing?", ()),  # no answer: dropped
        ],
        title="Fix TypeError in parse_config",
        external_id="ses_8f3a2c1d9e7b4a60",
        eval_ready=True,
        eval_status="golden",
        eval_tags=["bug-fix"],
        eval_notes="Minimal fix in /home/alice/src.",
        expected_output=EXPECTED,
        prompt_tokens=900,
        completion_tokens=190,
    )


@pytest.fixture
def code_session(user):
    """A fenced code block in the answer, a detected language, no expected output, no model/project."""
    return simple(
        user,
        CODE_ANSWER,
        "Write a slugify helper.",
        title="Add a slugify helper",
        external_id="ses_code",
        eval_status="correct",
        detected_language="python",
        model=None,
        project_name=None,
    )


@pytest.fixture
def no_answer(user):
    return make_session(user, [("user", "hello?", ())], external_id="ses_noanswer")


@pytest.fixture
def tools_only(user):
    """The only assistant turn is a tool call (with its result): an exchange with an empty answer."""
    return make_session(
        user,
        [
            ("user", "List the files.", ()),
            ("assistant", "", [("tool-call", {"id": "c9", "name": "ls", "args": {"path": "."}})]),
            ("tool", "", [("tool-result", {"tool_call_id": "c9", "output": "a.py\nb.py"})]),
        ],
        external_id="ses_toolsonly",
        title=None,
    )


# --- helpers -------------------------------------------------------------------------------------------


def pairs(*sessions):
    """(pk, conversation) as the export job reads them: sessions fresh from the database."""
    return [(s.pk, conversation(Session.objects.get(pk=s.pk))) for s in sessions]


def export(name, sessions, options=DEFAULTS, *, date=DATE, out=None):
    """(file bytes, report, format, options) of an export of `sessions`."""
    fmt, options = resolve(name, options)
    out = out or io.BytesIO()
    filename = fmt.filename(options, date[:10])
    report = write(fmt, options, pairs(*sessions), out, filename=filename, date=date)
    out.seek(0)
    return out.read(), report, fmt, options


def parse(fmt, data: bytes):
    """The records of a file (a zip: {member name: text})."""
    if fmt.extension == "json":
        return json.loads(data)
    if fmt.extension == "jsonl":
        if not data:
            return []
        text = data.decode()
        assert text.endswith("\n") and "\n\n" not in text and not text.startswith("\n")
        return [json.loads(line) for line in text[:-1].split("\n")]
    if fmt.extension == "yaml":
        return yaml.safe_load(data)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert len(z.namelist()) == len(set(z.namelist()))
        return {name: z.read(name).decode() for name in z.namelist()}


def rows(name, sessions, options=DEFAULTS, **kwargs):
    data, _, fmt, _ = export(name, sessions, options, **kwargs)
    return parse(fmt, data)


def nones(value, path="") -> list[str]:
    """Where None occurs in `value` (recursively)."""
    if value is None:
        return [path or "."]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in nones(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in nones(v, f"{path}[{i}]")]
    return []


# --- OpenAI Evals API -------------------------------------------------------------------------------------


def test_openai_api_rows_match_the_item_schema(session, code_session, tools_only):
    Draft202012Validator.check_schema(ITEM_SCHEMA)
    validator = Draft202012Validator(ITEM_SCHEMA)
    found = rows("openai-evals-api", [session, code_session, tools_only], Options(include_system=True))
    assert len(found) == 3  # tools_only has no answer and no expected output: no ideal, no row
    for row in found:
        assert set(row) <= {"item", "sample"} and "item" in row
        assert not list(validator.iter_errors(row["item"])), row["item"]
        assert nones(row) == []  # strings, never null
        assert isinstance(row["item"]["ideal"], str) and row["item"]["ideal"]
        assert set(row["sample"]) == {"output_text", "model"}
    first, second, code = found
    assert first["sample"]["output_text"] == FIRST_ANSWER and second["sample"]["output_text"] == SECOND_ANSWER
    assert code["sample"]["output_text"] == code["item"]["ideal"] == CODE_ANSWER
    # the expected output only on the last exchange; elsewhere the recorded answer is the ideal
    assert first["item"]["ideal"] == FIRST_ANSWER and second["item"]["ideal"] == EXPECTED
    assert [r["item"]["turn"] for r in found] == [1, 2, 1]
    assert first["item"]["history"][0] == {
        "role": "system",
        "content": "You are a coding agent in /home/alice/src/acme-api.",
    }
    assert [m["role"] for m in second["item"]["history"]] == ["system", "user", "assistant", "assistant"]
    assert code["item"]["model"] == "" and code["item"]["session_id"] == "ses_code"
    assert first["item"]["tags"] == ["bug-fix"] and first["item"]["eval_status"] == "golden"


def test_openai_api_row_without_a_recorded_answer_has_no_sample(user):
    session = make_session(
        user,
        [("user", "List the files.", ()), ("assistant", "", [("tool-call", {"id": "c", "name": "ls", "args": {}})])],
        expected_output="a.py and b.py",
    )
    (row,) = rows("openai-evals-api", [session])
    assert row == {
        "item": {
            "input": "List the files.",
            "history": [],
            "ideal": "a.py and b.py",
            "session_id": session.external_id,
            "turn": 1,
            "model": session.model,
            "source": session.source,
            "eval_status": "",
            "tags": [],
        }
    }


# --- Promptfoo --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["promptfoo", "promptfoo-yaml"])
def test_promptfoo_rows(name, session, code_session, tools_only, no_answer):
    found = rows(name, [session, code_session, tools_only, no_answer])
    assert len(found) == 4
    for row in found:
        assert isinstance(row["description"], str) and row["description"]
        assert nones(row["vars"]) == [] and nones(row["metadata"]) == []
        assert {"input", "history", "recorded_output", "task_type"} <= set(row["vars"])
        assert all(isinstance(v, str) for v in row["vars"].values())
    first, second, code, tools = found
    assert first["description"] == "Fix TypeError in parse_config (turn 1)"
    assert tools["description"] == "ses_toolsonly (turn 1)"  # no title: the session id
    assert first["vars"]["task_type"] == "bug_fix" and code["vars"]["task_type"] == "code_generation"
    assert second["vars"]["history"].startswith("user: Fix the TypeError")
    assert [r["vars"]["recorded_output"] for r in found] == [FIRST_ANSWER, SECOND_ANSWER, CODE_ANSWER, ""]
    # the expected output (a var, referenced from the rubric) only where it is set: the last exchange
    assert [("expected_output" in r["vars"]) for r in found] == [False, True, False, False]
    assert second["vars"]["expected_output"] == EXPECTED
    assert second["assert"] == [{"type": "llm-rubric", "value": formats.RUBRIC_EXPECTED}]
    assert "{{expected_output}}" in formats.RUBRIC_EXPECTED
    # golden / correct without an expected output: the generic rubric; otherwise no assertion
    assert first["assert"] == code["assert"] == [{"type": "llm-rubric", "value": formats.RUBRIC_GENERIC}]
    assert "{{expected_output}}" not in formats.RUBRIC_GENERIC
    assert "assert" not in tools
    # replay: the recorded answer as providerOutput (none to replay for a tool-only turn)
    assert [r.get("providerOutput") for r in found] == [FIRST_ANSWER, SECOND_ANSWER, CODE_ANSWER, None]
    assert "providerOutput" not in tools
    # the language only where one was detected
    assert code["vars"]["language"] == "python" and code["metadata"]["language"] == "python"
    assert all("language" not in r["vars"] and "language" not in r["metadata"] for r in (first, second, tools))
    assert first["metadata"]["session_id"] == "ses_8f3a2c1d9e7b4a60" and first["metadata"]["turn"] == 1
    assert code["metadata"]["model"] == "" and code["metadata"]["project"] == ""


@pytest.mark.parametrize("name", ["promptfoo", "promptfoo-yaml"])
def test_promptfoo_without_replay_has_no_provider_output(name, session, code_session):
    found = rows(name, [session, code_session], Options(replay=False))
    assert found and all("providerOutput" not in row for row in found)
    assert found[0]["vars"]["recorded_output"] == FIRST_ANSWER  # still there, as a var


def test_promptfoo_yaml_equals_the_jsonl(session, code_session, tools_only):
    sessions = [session, code_session, tools_only]
    for options in (Options(), Options(include_system=True, anonymize_paths=True, turn_mode="full")):
        data, _, _, _ = export("promptfoo-yaml", sessions, options)
        assert isinstance(yaml.safe_load(data), list)
        assert yaml.safe_load(data) == rows("promptfoo", sessions, options)
    assert NON_ASCII in data.decode()  # allow_unicode


# --- turn modes ------------------------------------------------------------------------------------------


def _prompt_and_answer(name, row):
    if name == "deepeval":
        return row["input"], row["actual_output"]
    if name == "openai":
        return row["input"][-1]["content"], row["ideal"]
    if name == "openai-evals-api":
        return row["item"]["input"], row["sample"]["output_text"]
    return row["vars"]["input"], row["vars"]["recorded_output"]


@pytest.mark.parametrize("name", SINGLE_TURN)
def test_final_only_gives_the_last_exchange(name, session, code_session):
    found = rows(name, [session, code_session], Options(turn_mode="final_only"))
    assert len(found) == 2
    prompt, answer = _prompt_and_answer(name, found[0])
    assert prompt == "Thanks. Now add a regression test."
    assert answer == (EXPECTED if name == "openai" else SECOND_ANSWER)


@pytest.mark.parametrize("name", SINGLE_TURN)
def test_full_gives_one_record_per_session_with_everything_joined(name, session, code_session):
    found = rows(name, [session, code_session], Options(turn_mode="full"))
    assert len(found) == 2
    prompt, answer = _prompt_and_answer(name, found[0])
    assert prompt.startswith("Fix the TypeError") and prompt.endswith("Thanks. Now add a regression test.")
    if name == "openai":
        assert answer == EXPECTED  # the session's expected output is the ideal
    else:
        assert answer == f"{FIRST_ANSWER}\n\n{SECOND_ANSWER}"
    assert "And one more thing?" not in prompt  # unanswered
    if name == "deepeval":
        assert found[0]["expected_output"] == EXPECTED and found[1]["expected_output"] is None
        assert [t["name"] for t in found[0]["tools_called"]] == ["read_file"]


def test_multi_turn_deepeval_gives_conversational_goldens(session, code_session, tools_only, no_answer):
    data, report, fmt, options = export("deepeval-conversational", [session, code_session, tools_only, no_answer])
    assert (fmt.name, options.turn_mode) == ("deepeval", "multi_turn")
    assert fmt.filename(options, "2026-01-17") == "opensync-deepeval-conversational-2026-01-17.json"
    found = json.loads(data)
    assert len(found) == report.records == 3
    for row in found:
        assert isinstance(row["scenario"], str) and row["scenario"].strip()
        roles = [turn["role"] for turn in row["turns"]]
        assert set(roles) <= {"user", "assistant"}
        assert roles == ["user", "assistant"] * (len(roles) // 2) and roles
        assert all(isinstance(turn["content"], str) for turn in row["turns"])
        assert "input" not in row and "actual_output" not in row  # never mixed with single-turn rows
    assert [row["scenario"] for row in found] == [
        "Fix TypeError in parse_config",
        "Add a slugify helper",
        "List the files.",
    ]
    assert found[0]["expected_outcome"] == EXPECTED
    assert found[2]["turns"][1]["tools_called"] == [
        {"name": "ls", "input_parameters": {"path": "."}, "output": "a.py\nb.py"}
    ]
    # per-turn deepeval files never carry conversational rows
    assert all("scenario" not in row and "turns" not in row for row in rows("deepeval", [session, code_session]))


@pytest.mark.parametrize("name", ["openai", "openai-evals-api", "promptfoo", "promptfoo-yaml"])
def test_resolve_rejects_multi_turn_for_single_turn_formats(name):
    with pytest.raises(ValueError, match=r"has no turn mode 'multi_turn'\. Use one of: per_turn, final_only, full"):
        resolve(name, Options(turn_mode="multi_turn"))


def test_resolve_aliases_and_unknown_names():
    fmt, options = resolve("deepeval-conversational", Options(turn_mode="per_turn", min_length=5))
    assert fmt is FORMATS["deepeval"] and options.turn_mode == "multi_turn" and options.min_length == 5
    assert resolve("deepeval", Options(turn_mode="multi_turn"))[1].turn_mode == "multi_turn"
    with pytest.raises(ValueError, match="Unknown format 'deepevals'.*deepeval-conversational"):
        resolve("deepevals", Options())
    with pytest.raises(ValueError, match="has no turn mode 'sideways'"):
        resolve("deepeval", Options(turn_mode="sideways"))


# --- filters -----------------------------------------------------------------------------------------------


def test_min_length_drops_exchanges_with_a_short_prompt_or_answer(session):
    conv = conversation(session)
    # exchange 1: prompt ~80, answer 53 characters; exchange 2: prompt 34, answer 45
    assert [e.number for e in kept_exchanges(conv, Options(min_length=40))] == [1]
    assert [e.number for e in kept_exchanges(conv, Options(min_length=34))] == [1, 2]
    assert [e.number for e in kept_exchanges(conv, Options(min_length=54))] == []
    found = rows("deepeval", [session], Options(min_length=40))
    assert [row["name"] for row in found] == ["ses_8f3a2c1d9e7b4a60#1"]


def test_code_blocks_only_keeps_exchanges_with_a_fence(user, code_session):
    session = make_session(
        user,
        [
            ("user", "Show me ```ls -la``` output explained", ()),  # a fence in the prompt
            ("assistant", "It lists files.", ()),
            ("user", "Thanks", ()),
            ("assistant", "You're welcome.", ()),
        ],
    )
    assert [e.number for e in kept_exchanges(conversation(session), Options(code_blocks_only=True))] == [1]
    assert len(kept_exchanges(conversation(code_session), Options(code_blocks_only=True))) == 1


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_a_session_with_nothing_left_is_skipped_as_filtered_out(name, session, code_session, no_answer):
    data, report, fmt, _ = export(name, [session, code_session, no_answer], Options(code_blocks_only=True))
    assert report.skipped == 2 and report.session_ids == [code_session.pk]
    assert report.warnings["filtered_out"] == {"count": 1, "examples": ["ses_8f3a2c1d9e7b4a60"]}
    assert report.warnings["no_answer"] == {"count": 1, "examples": ["ses_noanswer"]}
    text = data.decode() if fmt.extension != "zip" else json.dumps(parse(fmt, data), ensure_ascii=False)
    assert "parse_config" not in text and "slugify" in text


# --- writers -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_format_writes_a_parseable_file(name, session, code_session, tmp_path):
    with open(tmp_path / "out", "w+b") as out:
        data, report, fmt, _ = export(name, [session, code_session], out=out)
    found = parse(fmt, data)
    if fmt.extension == "zip":
        assert len([n for n in found if n.startswith("sessions/")]) == 2
        assert report.records == 3  # exchanges
    else:
        assert isinstance(found, list) and len(found) == report.records
        assert all(isinstance(row, dict) for row in found)
    if fmt.extension == "json":
        assert data.startswith(b"[\n") and data.endswith(b"\n]\n")


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_an_empty_export_is_still_a_valid_file(name, no_answer):
    for sessions in ([], [no_answer]):
        data, report, fmt, _ = export(name, sessions)
        assert report.records == 0 and report.session_ids == []
        found = parse(fmt, data)
        if fmt.extension == "zip":
            manifest = json.loads(found["manifest.json"])
            assert manifest["files"] == [] and set(found) == {"manifest.json", "README.txt"}
            assert manifest["opensync_metadata"]["total_sessions"] == 0
        else:
            assert found == []
    assert export("deepeval", [])[0] == b"[]\n"


def test_zip_layout(session, code_session, no_answer):
    # the session left out is another agent's, with another model: neither is in the manifest
    Session.objects.filter(pk=no_answer.pk).update(source="opencode", model="gpt-5")
    no_answer.refresh_from_db()
    data, report, fmt, options = export("filesystem", [session, code_session, no_answer])
    files = parse(fmt, data)
    names = ["sessions/session-ses_8f3a2c1d9e7b4a60.txt", "sessions/session-ses_code.txt"]
    assert set(files) == {"manifest.json", "README.txt", *names}
    manifest = json.loads(files["manifest.json"])
    meta = manifest["opensync_metadata"]
    assert meta == {
        "export_version": "1.0",
        "export_date": DATE,
        "total_sessions": 2,
        "total_test_cases": 3,
        "skipped_sessions": 1,
        "content_hash": report.content_hash,
    }
    assert manifest["sources"] == {"claude-code": 2} and manifest["models"] == ["claude-sonnet-4-20250514"]
    assert manifest["left_out"] == {"no_answer": {"count": 1, "examples": ["ses_noanswer"]}}
    assert manifest["files"] == names
    readme = files["README.txt"]
    assert "What's next" in readme and "unzip opensync-filesystem-2026-01-17.zip" in readme
    assert f"Content hash (sha256 of the records): {report.content_hash}" in readme
    assert "1 session has no assistant answer" in readme

    lines = files[names[0]].split("\n")
    rule = "=" * 80
    assert lines[:10] == [
        rule,
        "SESSION: ses_8f3a2c1d9e7b4a60",
        "SOURCE: claude-code",
        "MODEL: claude-sonnet-4-20250514",
        f"DATE: {session.created_at.isoformat().replace('+00:00', 'Z')}",
        "TOKENS: 1090",
        "STATUS: golden",
        "TAGS: bug-fix",
        "PROJECT: demo-app",
        rule,
    ]
    assert lines[-4:] == [rule, "END SESSION", rule, ""]
    text = files[names[0]]
    user1 = text.index("[2026-01-15T10:30:01Z] USER:\nFix the TypeError")
    assistant1 = text.index("[2026-01-15T10:30:02Z] ASSISTANT:\nI'll look at parse_config first.")
    call = text.index('[TOOL_CALL: read_file] {"path": "/home/alice/src/config.py"}')
    result = text.index("[TOOL_RESULT: read_file]\ndef parse_config(path): ...")
    final = text.index(f"[2026-01-15T10:30:05Z] ASSISTANT:\n{FIRST_ANSWER}")
    user2 = text.index("[2026-01-15T10:30:06Z] USER:\nThanks. Now add a regression test.")
    assert user1 < assistant1 < call < result < final < user2 < text.index(SECOND_ANSWER)
    assert "(empty)" not in text  # the empty assistant message is left out
    code_lines = files[names[1]].split("\n")
    assert "MODEL: unknown" in code_lines and "STATUS: correct" in code_lines
    assert not any(line.startswith(("TAGS:", "PROJECT:")) for line in code_lines[:10])


def test_zip_names_use_the_full_id(user):
    a, b = (
        simple(user, external_id="ses_aaaa1"),
        simple(user, external_id="ses_aaaa2"),
    )  # upstream: session-ses_aaaa.txt twice
    data, _, fmt, _ = export("filesystem", [a, b])
    files = parse(fmt, data)
    assert json.loads(files["manifest.json"])["files"] == [
        "sessions/session-ses_aaaa1.txt",
        "sessions/session-ses_aaaa2.txt",
    ]
    assert "SESSION: ses_aaaa2" in files["sessions/session-ses_aaaa2.txt"]


def test_zip_keeps_two_members_sessions_with_the_same_id(user, other_user):
    team = team_with(user, member=other_user)
    mine = simple(user, "Mine.", external_id="ses_same", workspace=team)
    theirs = simple(other_user, "Theirs.", external_id="ses_same", workspace=team)
    data, report, fmt, _ = export("filesystem", [mine, theirs])
    files = parse(fmt, data)
    listed = json.loads(files["manifest.json"])["files"]
    assert len(listed) == len(set(listed)) == 2 and set(listed) <= set(files)
    assert {"Mine." in files[listed[0]], "Mine." in files[listed[1]]} == {True, False}
    assert {"Theirs." in files[name] for name in listed} == {True, False}
    assert report.session_ids == [mine.pk, theirs.pk]


def test_zip_renamed_duplicates_never_collide(user, other_user):
    # the second "ses_x" must not be renamed to the name of the first session, "session-ses_x-2.txt"
    sessions = [
        simple(user, "Answer 0.", external_id="ses_x-2"),
        simple(user, "Answer 1.", external_id="ses_x"),
        simple(other_user, "Answer 2.", external_id="ses_x"),
    ]
    data, _, fmt, _ = export("filesystem", sessions)
    files = parse(fmt, data)
    listed = json.loads(files["manifest.json"])["files"]
    assert len(listed) == len(set(listed)) == 3 and set(listed) <= set(files)
    answers = [next(line for line in files[name].split("\n") if line.startswith("Answer")) for name in listed]
    assert answers == ["Answer 0.", "Answer 1.", "Answer 2."]


@pytest.mark.parametrize("external_id", ["../x", "../../etc/passwd", "/abs/path", "a\\..\\..\\b", "..", "C:evil"])
def test_unsafe_ids_stay_in_the_sessions_folder(user, tmp_path, external_id):
    data, _, fmt, _ = export("filesystem", [simple(user, external_id=external_id)])
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        (name,) = [n for n in z.namelist() if n not in ("manifest.json", "README.txt")]
        assert PurePosixPath(name).parent == PurePosixPath("sessions") and "\\" not in name and ":" not in name
        assert ".." not in PurePosixPath(name).parts
        z.extractall(tmp_path)
    extracted = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all(p.resolve().is_relative_to(tmp_path.resolve()) for p in extracted)
    assert len([p for p in extracted if p.parent == tmp_path / "sessions"]) == 1
    assert f"SESSION: {external_id}" in (tmp_path / name).read_text()


# --- report ------------------------------------------------------------------------------------------------


def test_report_counts_and_session_ids(session, code_session, no_answer, tools_only):
    sessions = [session, code_session, no_answer, tools_only]
    _, report, _, _ = export("deepeval", sessions)
    assert (report.sessions, report.records, report.skipped) == (4, 4, 1)  # a tool-only turn is a golden
    assert report.session_ids == [session.pk, code_session.pk, tools_only.pk]
    assert report.warnings["no_answer"] == {"count": 1, "examples": ["ses_noanswer"]}
    assert report.sources == {"claude-code": 3} and report.models == ["claude-sonnet-4-20250514"]  # written only
    _, report, _, _ = export("openai", sessions)
    assert (report.sessions, report.records, report.skipped) == (4, 3, 2)  # no ideal: no sample
    assert report.session_ids == [session.pk, code_session.pk]
    assert report.warnings["no_answer"] == {"count": 2, "examples": ["ses_noanswer", "ses_toolsonly"]}
    _, report, _, _ = export("chat", sessions)
    assert (report.sessions, report.records, report.skipped) == (4, 3, 1)


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_report_warnings(name, user, session, code_session, no_answer):
    huge = simple(user, prompt="x" * OVERSIZED_CHARS, external_id="ses_huge", expected_output="Short.")
    _, report, fmt, _ = export(name, [session, code_session, no_answer, huge])
    assert report.warnings["no_answer"] == {"count": 1, "examples": ["ses_noanswer"]}
    assert report.warnings["empty_turns"] == {"count": 1, "examples": ["ses_8f3a2c1d9e7b4a60"]}
    assert report.warnings["oversized"]["examples"] == ["ses_huge"]
    if fmt.uses_expected:
        assert name in SINGLE_TURN
        assert report.warnings["missing_expected"] == {"count": 1, "examples": ["ses_code"]}
    else:
        assert name in ("chat", "filesystem") and "missing_expected" not in report.warnings
    lines = report.warning_lines()
    assert "1 session has no assistant answer and is left out (e.g. ses_noanswer)" in lines
    assert any(line.startswith("1 record is over 100,000 characters") for line in lines)


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_content_hash_is_stable_across_dates_and_follows_the_records(name, session, code_session):
    data1, first, _, _ = export(name, [session, code_session], date="2026-01-17T09:00:00Z")
    data2, second, _, _ = export(name, [session, code_session], date="2026-03-02T18:45:12Z")
    assert first.content_hash == second.content_hash and re.fullmatch(r"[0-9a-f]{64}", first.content_hash)
    if name == "filesystem":
        assert data1 != data2  # the manifest's date differs, the hash does not
    Message.objects.filter(session=code_session, role="assistant").update(text_content="Something else.")
    _, changed, _, _ = export(name, [session, code_session])
    assert changed.content_hash != first.content_hash
    _, reordered, _, _ = export(name, [code_session, session])
    assert reordered.content_hash != changed.content_hash


# --- preview -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_preview_shows_the_files_rendering(name, session, code_session, no_answer):
    sessions = [session, code_session, no_answer]
    data, report, fmt, options = export(name, sessions)
    shown, previewed = preview(fmt, options, [c for _, c in pairs(*sessions)], show=2)
    assert (previewed.sessions, previewed.records, previewed.skipped) == (
        report.sessions,
        report.records,
        report.skipped,
    )
    assert previewed.warnings == report.warnings
    assert len(shown) == 2
    if fmt.extension == "jsonl":
        assert shown == data.decode().split("\n")[:2]
    elif fmt.extension == "json":
        assert [json.loads(s) for s in shown] == json.loads(data)[:2]
        assert all(json.dumps(json.loads(s), ensure_ascii=False) in data.decode() for s in shown)  # one per line
    elif fmt.extension == "yaml":
        assert data.decode().startswith(shown[0] + shown[1])
    else:
        files = parse(fmt, data)
        for text in shown:
            path, body = text.split("\n\n", 1)
            assert files[path] == body
    assert preview(fmt, options, [conversation(session)], show=0)[0] == []


# --- cleaning and non-ASCII ------------------------------------------------------------------------------------


def _text(fmt, data: bytes) -> str:
    if fmt.extension == "zip":
        return "\n".join(parse(fmt, data).values())
    return data.decode()


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_string_is_cleaned_in_every_file(name, session, code_session):
    options = Options(include_system=True, anonymize_paths=True)
    data, _, fmt, options = export(name, [session, code_session], options)
    text = _text(fmt, data)
    assert SECRET not in text and "[REDACTED]" in text
    assert "/home/alice" not in text and "alice" not in text
    assert NON_ASCII in text  # unescaped: ensure_ascii=False / allow_unicode
    assert "\\u00ef" not in text.lower()
    assert "/home/user/src" in text  # anonymized, not dropped
    data, _, fmt, _ = export(name, [session], Options(include_system=True, redact_secrets=False))
    raw = _text(fmt, data)
    assert SECRET in raw and "/home/alice/src" in raw


# --- what's next -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*sorted(FORMATS), "deepeval-conversational"])
def test_next_steps_mention_the_file(name):
    fmt, options = resolve(name, Options())
    filename = fmt.filename(options, "2026-01-17")
    found = steps(fmt, options, filename)
    assert found and all(step.title and step.code for step in found)
    assert filename in "\n".join(step.code for step in found)


@pytest.mark.parametrize("name", ["deepeval", "deepeval-conversational"])
def test_deepeval_steps_write_a_test_file(name):
    fmt, options = resolve(name, Options())
    filename = fmt.filename(options, "2026-01-17")
    install, test_file, run = steps(fmt, options, filename)
    assert f'add_goldens_from_json_file(file_path="{filename}")' in test_file.code
    assert "test_opensync.py" in test_file.title
    compile(test_file.code, "test_opensync.py", "exec")
    assert ("ConversationalTestCase" in test_file.code) == (name == "deepeval-conversational")
    assert run.code == "deepeval test run test_opensync.py"


def test_openai_steps_register_and_run_oaieval():
    fmt, options = resolve("openai", Options())
    filename = fmt.filename(options, "2026-01-17")
    code = "\n".join(step.code for step in steps(fmt, options, filename))
    assert "pip install evals" in code
    assert re.search(r"^oaieval \S+ opensync-\S+ --registry_path registry$", code, re.MULTILINE)
    assert f"cp {filename} registry/data/opensync/samples.jsonl" in code
    registry = yaml.safe_load(code.split("<<'EOF'\n", 1)[1].split("\nEOF", 1)[0])
    assert {spec["args"]["samples_jsonl"] for key, spec in registry.items() if "args" in spec} == {
        "opensync/samples.jsonl"
    }


def test_openai_api_steps_are_runnable_python():
    fmt, options = resolve("openai-evals-api", Options())
    code = steps(fmt, options, "f.jsonl")[-1].code
    compile(code, "run.py", "exec")
    assert json.loads(re.search(r'json\.loads\("""(.*?)"""\)', code).group(1)) == ITEM_SCHEMA
    assert 'open("f.jsonl", "rb"), purpose="evals"' in code and "{{sample.output_text}}" in code


@pytest.mark.parametrize("name", ["promptfoo", "promptfoo-yaml"])
def test_promptfoo_steps_write_a_config_and_run_eval(name):
    fmt, options = resolve(name, Options())
    filename = fmt.filename(options, "2026-01-17")
    found = steps(fmt, options, filename)
    code = "\n".join(step.code for step in found)
    assert re.search(r"promptfoo(@\S+)? eval -c promptfooconfig\.yaml", code)
    config = yaml.safe_load(code.split("<<'EOF'\n", 1)[1].split("\nEOF", 1)[0])
    assert config["tests"] == f"file://{filename}" and config["prompts"] == ["{{history}}\n\nuser: {{input}}"]
    assert "providerOutput" in found[-1].note
    assert "providerOutput" not in steps(fmt, Options(replay=False), filename)[-1].note


def test_zip_readme_has_the_next_steps(session):
    data, _, fmt, options = export("filesystem", [session])
    readme = parse(fmt, data)["README.txt"]
    for step in steps(fmt, options, fmt.filename(options, DATE[:10])):
        assert f"  {step.title}:" in readme
        assert all(f"    {line}" in readme for line in step.code.splitlines())
