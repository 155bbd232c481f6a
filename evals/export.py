"""Writing an export: the records of many conversations into one file (a JSON array, JSONL, YAML
or a zip of text files), with what a dataset version records: the sessions that went in, counts,
validation warnings and a content hash.

The content hash covers the records themselves (canonical JSON, in order), not the file bytes, so
two exports of the same data compare equal even though a zip's manifest carries its build time.
"""

import hashlib
import json
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import IO

import yaml

from .exchanges import Conversation
from .formats import ALIASES, FORMATS, Format, Options, kept_exchanges
from .next_steps import readme

OVERSIZED_CHARS = 100_000  # a record this long rarely fits a grader's context window
EXAMPLES = 5  # session ids kept per warning

# code -> (singular, plural) sentence after the count
WARNINGS = {
    "no_answer": (
        "session has no assistant answer and is left out",
        "sessions have no assistant answer and are left out",
    ),
    "filtered_out": (
        "session has no exchange left after the length and code-block options and is left out",
        "sessions have no exchange left after the length and code-block options and are left out",
    ),
    "empty_turns": ("session has empty messages", "sessions have empty messages"),
    "oversized": (
        f"record is over {OVERSIZED_CHARS:,} characters",
        f"records are over {OVERSIZED_CHARS:,} characters",
    ),
    "missing_expected": ("session has no expected output", "sessions have no expected output"),
}


# The warnings that mean a session has no record in the file.
LEFT_OUT = ("no_answer", "filtered_out")


@dataclass
class Report:
    """What an export (or its preview) found. `warnings`: code -> {"count", "examples"}."""

    sessions: int = 0
    records: int = 0
    skipped: int = 0
    session_ids: list[int] = field(default_factory=list)  # the sessions with at least one record
    warnings: dict = field(default_factory=dict)
    sources: dict = field(default_factory=dict)  # source -> sessions written (write() only)
    models: list[str] = field(default_factory=list)
    content_hash: str = ""

    def warn(self, code: str, session_id: str) -> None:
        entry = self.warnings.setdefault(code, {"count": 0, "examples": []})
        entry["count"] += 1
        if len(entry["examples"]) < EXAMPLES and session_id not in entry["examples"]:
            entry["examples"].append(session_id)

    def warning_lines(self) -> list[str]:
        return warning_lines(self.warnings)


def warning_lines(warnings: dict) -> list[str]:
    lines = []
    for code, (one, many) in WARNINGS.items():
        if code in warnings:
            n = warnings[code]["count"]
            examples = ", ".join(warnings[code]["examples"])
            lines.append(f"{n:,} {one if n == 1 else many}" + (f" (e.g. {examples})" if examples else ""))
    return lines


def resolve(name: str, options: Options) -> tuple[Format, Options]:
    """(format, options) for a format name, aliases included; ValueError for an unknown name or a
    turn mode the format has no use for."""
    if name in ALIASES:
        name, mode = ALIASES[name]
        options = replace(options, turn_mode=mode)
    if name not in FORMATS:
        raise ValueError(f"Unknown format {name!r}. Use one of: {', '.join([*FORMATS, *ALIASES])}.")
    fmt = FORMATS[name]
    if fmt.turn_modes and options.turn_mode not in fmt.turn_modes:
        modes = ", ".join(fmt.turn_modes)
        raise ValueError(f"{fmt.label} has no turn mode {options.turn_mode!r}. Use one of: {modes}.")
    return fmt, options


def check(
    conversation: Conversation, records: list, sizes: list[int], fmt: Format, options: Options, report: Report
) -> None:
    """Add this session's validation warnings to `report` (`records`: its records or its plan;
    `sizes`: the length of each record built, as canonical JSON)."""
    session_id = conversation.meta["session_id"]
    if not conversation.exchanges:
        report.warn("no_answer", session_id)
    elif not records:  # filtered out, or no answer to write (e.g. only tool calls, for an `ideal`)
        report.warn("no_answer" if kept_exchanges(conversation, options) else "filtered_out", session_id)
    if any(not turn.text and not turn.tool_calls for turn in conversation.turns):
        report.warn("empty_turns", session_id)
    for size in sizes:
        if size > OVERSIZED_CHARS:
            report.warn("oversized", session_id)
    if records and fmt.uses_expected and not conversation.expected:
        report.warn("missing_expected", session_id)


def _test_cases(fmt: Format, conversation: Conversation, options: Options, records: list[dict]) -> int:
    """The records, except for the zip: its one file per session counts as the session's exchanges."""
    if fmt.name == "filesystem" and records:
        return len(kept_exchanges(conversation, options))
    return len(records)


def _count(fmt: Format, options: Options, conversation: Conversation, records: list, sizes, report) -> None:
    """Count and check one session into `report`: `records` its records or its plan (the count is
    the same), `sizes` the canonical JSON length of those built."""
    report.sessions += 1
    check(conversation, records, sizes, fmt, options, report)
    report.records += _test_cases(fmt, conversation, options, records)
    report.skipped += not records


def _canonical(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


# --- writers -----------------------------------------------------------------------------------------


class _Writer:
    def __init__(self, out: IO[bytes]):
        self.out = out

    def write(self, record: dict) -> None:
        raise NotImplementedError

    def close(self, report: Report, fmt: Format, options: Options, filename: str, date: str) -> None:
        pass


class _JsonArray(_Writer):
    """A top-level JSON array (DeepEval's loader does `json.load`), written record by record, one
    per line (indenting would take the JSON encoder's slow path)."""

    first = True

    def write(self, record):
        self.out.write(b"[\n" if self.first else b",\n")
        self.first = False
        self.out.write(json.dumps(record, ensure_ascii=False).encode())

    def close(self, *args):
        self.out.write(b"[]\n" if self.first else b"\n]\n")


class _JsonLines(_Writer):
    def write(self, record):
        self.out.write(json.dumps(record, ensure_ascii=False).encode() + b"\n")


_YamlDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _YamlList(_Writer):
    """A YAML list of test cases: each record is dumped as a one-item list, and those concatenate."""

    first = True

    def write(self, record):
        self.first = False
        text = yaml.dump([record], Dumper=_YamlDumper, allow_unicode=True, sort_keys=False, width=100)
        self.out.write(text.encode())

    def close(self, *args):
        if self.first:
            self.out.write(b"[]\n")


class _Zip(_Writer):
    """sessions/session-<full id>.txt per session, then manifest.json and README.txt."""

    def __init__(self, out):
        super().__init__(out)
        self.zip = zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED)
        self.files: list[str] = []
        self.taken: set[str] = set()

    def write(self, record):
        path, n = record["path"], 1
        while path in self.taken:  # two members' sessions with the same plugin id
            path = record["path"].removesuffix(".txt") + f"-{n}.txt"
            n += 1
        self.taken.add(path)
        self.files.append(path)
        self.zip.writestr(path, record["text"])

    def close(self, report, fmt, options, filename, date):
        manifest = {
            "opensync_metadata": {
                "export_version": "1.0",
                "export_date": date,
                "total_sessions": report.sessions - report.skipped,
                "total_test_cases": report.records,
                "skipped_sessions": report.skipped,
                "content_hash": report.content_hash,
            },
            # why the skipped sessions are not in the zip: reason -> {"count", "examples"}
            "left_out": {code: report.warnings[code] for code in LEFT_OUT if code in report.warnings},
            "sources": report.sources,
            "models": report.models,
            "files": self.files,
        }
        self.zip.writestr("manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2))
        self.zip.writestr("README.txt", readme(fmt, options, filename, report))
        self.zip.close()


WRITERS = {"json": _JsonArray, "jsonl": _JsonLines, "yaml": _YamlList, "zip": _Zip}


def write(
    fmt: Format,
    options: Options,
    conversations: Iterable[tuple[int, Conversation]],
    out: IO[bytes],
    *,
    filename: str,
    date: str,
    progress: Callable[[Report], None] | None = None,
) -> Report:
    """Write the records of `conversations` ((session pk, conversation) pairs) to `out` in
    `fmt`; `progress` is called after every session."""
    report = Report()
    writer = WRITERS[fmt.extension](out)
    digest = hashlib.sha256()
    models: set[str] = set()
    for pk, conversation in conversations:
        plan = fmt.records.plan(conversation, options)
        if plan:
            # per agent and model: the sessions in the file, not the ones left out
            source = conversation.meta["source"]
            report.sources[source] = report.sources.get(source, 0) + 1
            if conversation.meta["model"]:
                models.add(conversation.meta["model"])
        sizes = []
        for make in plan:  # one record in memory at a time: a session's records are many times its size
            record = make()
            text = _canonical(record)
            sizes.append(len(text))
            digest.update(text.encode())
            digest.update(b"\n")
            writer.write(record)
        if plan:
            report.session_ids.append(pk)
        _count(fmt, options, conversation, plan, sizes, report)
        if progress:
            progress(report)
    report.models = sorted(models)
    report.content_hash = digest.hexdigest()
    writer.close(report, fmt, options, filename, date)
    return report


def preview(
    fmt: Format, options: Options, conversations: Iterable[Conversation], *, show: int = 3
) -> tuple[list[str], Report]:
    """The first `show` records as the file shows them, and the counts and warnings over
    `conversations`. Only the records shown are built (the others are counted from the sessions'
    plans: a preview that built them all took a minute for one long session), so the warning
    about long records covers the records shown; the export itself checks them all."""
    report, shown = Report(), []
    for conversation in conversations:
        plan = fmt.records.plan(conversation, options)
        records = [make() for make in plan[: max(0, show - len(shown))]]
        shown += [_show(fmt, record) for record in records]
        _count(fmt, options, conversation, plan, [len(_canonical(record)) for record in records], report)
    return shown, report


def _show(fmt: Format, record: dict) -> str:
    if fmt.extension == "zip":
        return f"{record['path']}\n\n{record['text']}"
    if fmt.extension == "yaml":
        return yaml.dump([record], Dumper=_YamlDumper, allow_unicode=True, sort_keys=False, width=100)
    if fmt.extension == "jsonl":
        return json.dumps(record, ensure_ascii=False)
    return json.dumps(record, ensure_ascii=False, indent=2)
