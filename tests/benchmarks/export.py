"""Export benchmark: eval exports of 10,000 sessions against dumping the same rows to JSON.

    .venv/bin/python tests/benchmarks/export.py [--sessions 10000] [--repeat 3] [--formats deepeval,openai,...]
                                                [--profile [FORMATS]] [--keep]

On one fresh database (`bench_export` on the embedded server, dropped at the end unless --keep):
one workspace holds --sessions eval-ready sessions of 6-12 messages each (coding conversations:
prompts, some with a fenced code block; assistant notes with tool calls and their results as
separate tool messages, Read results of whole files, Bash output; Markdown answers with code; about
3 KB of message text and 5 KB of parts per session), COPYed from a pool of generated conversations (fixed seed), with a
spread of statuses, tags, languages and expected outputs; then VACUUM ANALYZE.

Then, in-process (production settings, DEBUG off), in rounds that interleave every kind so the
shared machine's noise hits them alike, the median over --repeat rounds (after one warm-up round
of the baseline) of:

* baseline: the rows an export reads, read and written as plainly as Django can: per chunk of
  evals.services.EXPORT_CHUNK sessions, the sessions' fields the export uses, their messages and
  their parts as `.values()` (three queries, like the export's loader), grouped per session and
  `json.dumps`ed one session per line to a temporary file;
* each format: services.export_build of the same session ids to a temporary file (the formats'
  default options; deepeval in per-turn mode, `deepeval-conversational` is its multi-turn mode);
* job: services.export_job_run of a queued deepeval job end to end (the scope query, the build,
  the save to Django's storage in a temporary MEDIA_ROOT, the job row with its session ids).

Prints sessions/s of each, ratios export time / baseline time, records and file sizes. For the
formats given to --profile, and for the headline and the worst format when their ratio is over
PROFILE_ABOVE, prints the top functions of a cProfile of one build. Last line: one JSON object;
the headline `ratio` is deepeval's (per-turn) build time over the baseline's (`ratio_format`
names it), `worst_ratio` the worst format's (`worst_format`).
"""

import argparse
import gc
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(BASE_DIR))

from tests.benchmarks.dashboard import ANSWER, BASH_OUTPUT, TS_CODE  # noqa: E402 - no Django
from tests.benchmarks.ingest import CODE, TOOLS, run_in_child, setup_django, text  # noqa: E402

DATABASE = "bench_export"
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
FORMATS = (
    "deepeval", "deepeval-conversational", "openai", "openai-evals-api", "promptfoo", "promptfoo-yaml", "chat",
    "filesystem",
)  # fmt: skip
HEADLINE = "deepeval"
PROFILE_ABOVE = 5.0
POOL = 400  # distinct conversations; sessions cycle through them
SESSION_FIELDS = (  # what evals.exchanges reads of a session
    "id", "external_id", "title", "source", "model", "project_name", "eval_tags", "eval_status", "created_at",
    "detected_language", "eval_notes", "expected_output", "prompt_tokens", "completion_tokens",
)  # fmt: skip
MESSAGE_FIELDS = ("id", "session_id", "role", "text_content", "created_at", "order")  # the export's .only()
PART_FIELDS = ("message_id", "type", "content", "order")

# --- data -----------------------------------------------------------------------------------------


def conversation(rng: random.Random) -> list[tuple[str, str | None, list[tuple[str, object]]]]:
    """6-12 messages (role, text_content, parts) of a coding session: a prompt, tool calls each
    answered by a tool message, a Markdown answer with code; again until the size is reached."""
    size, out, calls = rng.randint(6, 12), [], 0
    while len(out) < size:
        prompt = text(rng, 40, 600)
        if rng.random() < 0.2:
            prompt += "\n\n```python\n" + CODE + "```"
        if rng.random() < 0.1:
            prompt += "\n\nthe log is in /home/dev/proj/logs/sync.log and the key is sk-proj-" + "x" * 24
        out.append(("user", prompt, [("text", {"text": prompt})]))
        for _ in range(rng.choice((0, 1, 1, 2, 3))):
            calls += 1
            tool, call_id = rng.choice(TOOLS), f"toolu_{calls:04d}"
            args = {"file_path": f"/home/dev/proj/src/app/module_{rng.randint(1, 90)}.py", "limit": 200}
            if tool == "Bash":
                args, result = {"command": "pytest -q tests/test_sync.py", "timeout": 120000}, BASH_OUTPUT
            elif tool == "Read":
                result = CODE * rng.randint(1, 8)
            else:
                result = text(rng, 100, 1200)
            note = text(rng, 30, 160)
            call = {"toolName": tool, "args": args, "toolCallId": call_id}
            out.append(("assistant", note, [("text", {"text": note}), ("tool-call", call)]))
            out.append(("tool", None, [("tool-result", {"toolCallId": call_id, "output": result})]))
        lang, code = rng.choice([("python", CODE), ("typescript", TS_CODE), ("bash", BASH_OUTPUT)])
        answer = text(rng, 100, 900) + "\n\n" + ANSWER.replace("{lang}", lang).replace("{code}", code)
        out.append(("assistant", answer, [("text", {"text": answer})]))
    return out[:size]


def populate(conninfo: dict, n: int, workspace_id: int, owner_id: int) -> tuple[int, int]:
    """n eval-ready sessions with their messages and parts. Returns (messages, parts)."""
    import psycopg

    rng = random.Random(23)
    pool = [conversation(rng) for _ in range(POOL)]
    tags = [[], [], ["regression"], ["sync", "retry"], ["ci"], ["golden-set", "python"]]
    with psycopg.connect(**conninfo) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY sessions_app_session (workspace_id, owner_id, external_id, title, project_path, project_name, model,"
            " provider, source, prompt_tokens, completion_tokens, cache_read_tokens, cache_write_tokens, message_count,"
            " is_public, eval_ready, eval_status, eval_tags, expected_output, detected_language, created_at,"
            " updated_at) FROM STDIN"
        ) as copy:
            for i in range(n):
                created = NOW - timedelta(minutes=10 * (n - i))
                expected = text(rng, 80, 400) if rng.random() < 0.2 else None
                status = rng.choice(["golden", "correct", "incorrect", None, None])
                copy.write_row((workspace_id, owner_id, f"ses-{i:06d}", text(rng, 20, 90), "/home/dev/proj/api",
                                "api", "claude-sonnet-4-20250514", "anthropic", rng.choice(["claude-code", "opencode"]),
                                rng.randint(10_000, 900_000), rng.randint(1000, 90_000), 0, 0, len(pool[i % POOL]),
                                False, True, status, rng.choice(tags), expected, rng.choice(["en", "en", "de", None]),
                                created, created))  # fmt: skip
        sessions = cur.execute("SELECT id, created_at FROM sessions_app_session ORDER BY created_at, id").fetchall()
        with cur.copy(
            "COPY sessions_app_message (session_id, external_id, role, text_content, model, created_at) FROM STDIN"
        ) as copy:
            for i, (sid, created) in enumerate(sessions):
                for k, (role, body, _) in enumerate(pool[i % POOL]):
                    model = "claude-sonnet-4-20250514" if role == "assistant" else None
                    copy.write_row((sid, f"m{k:03d}", role, body, model, created + timedelta(seconds=5 * k)))
        ids = {
            (sid, external_id): mid
            for mid, sid, external_id in cur.execute("SELECT id, session_id, external_id FROM sessions_app_message")
        }
        parts = 0
        with cur.copy('COPY sessions_app_part (message_id, type, content, "order") FROM STDIN') as copy:
            for i, (sid, _) in enumerate(sessions):
                for k, (_, _, message_parts) in enumerate(pool[i % POOL]):
                    for order, (kind, content) in enumerate(message_parts):
                        copy.write_row((ids[sid, f"m{k:03d}"], kind, json.dumps(content), order))
                        parts += 1
        conn.commit()
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) sessions_app_session, sessions_app_message, sessions_app_part")
    return len(ids), parts


# --- measuring ------------------------------------------------------------------------------------


def baseline(workspace, session_ids: list[int], out) -> None:
    """The same rows as the export reads, in the same chunks, dumped to JSON lines as they come."""
    from evals.services import EXPORT_CHUNK
    from sessions_app.models import Message, Part, Session

    for start in range(0, len(session_ids), EXPORT_CHUNK):
        chunk = session_ids[start : start + EXPORT_CHUNK]
        sessions = {
            s["id"]: s for s in Session.objects.filter(workspace=workspace, pk__in=chunk).values(*SESSION_FIELDS)
        }
        messages = list(
            Message.objects.filter(session_id__in=chunk)
            .order_by("session_id", "created_at", "order")
            .values(*MESSAGE_FIELDS)
        )
        parts = defaultdict(list)
        for part in Part.objects.filter(message_id__in=[m["id"] for m in messages]).values(*PART_FIELDS):
            parts[part["message_id"]].append(part)
        by_session = defaultdict(list)
        for message in messages:
            message["parts"] = parts[message["id"]]
            by_session[message["session_id"]].append(message)
        for pk in chunk:
            session = sessions[pk]
            session["messages"] = by_session[pk]
            out.write(json.dumps(session, ensure_ascii=False, default=str).encode() + b"\n")


def timed(fn) -> tuple[float, object]:
    gc.collect()
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def measure(workspace, user, session_ids: list[int], formats: list[str], repeat: int) -> dict:
    """kind -> {"seconds": [...], "records", "bytes"}; kinds: baseline, each format, job."""
    from evals.export import resolve
    from evals.formats import Options
    from evals.models import ExportJob
    from evals.selectors import filter_scope
    from evals.services import export_build, export_job_run, export_options
    from sessions_app.selectors import SessionFilters

    resolved = {name: resolve(name, Options()) for name in formats}
    samples: dict[str, dict] = {kind: {"seconds": []} for kind in ("baseline", *formats, "job")}

    def run_baseline():
        with tempfile.TemporaryFile() as out:
            baseline(workspace, session_ids, out)
            return out.tell()

    def run_format(name):
        fmt, options = resolved[name]
        with tempfile.TemporaryFile() as out:
            report = export_build(workspace, fmt, options, session_ids, out)
            return report.records, out.tell()

    def run_job():
        fmt, options = resolved[HEADLINE] if HEADLINE in resolved else resolve(HEADLINE, Options())
        job = ExportJob.objects.create(
            workspace=workspace, created_by=user, format=fmt.name, options=export_options(options),
            scope=filter_scope(SessionFilters()), total=len(session_ids),
        )  # fmt: skip
        seconds, job = timed(lambda: export_job_run(job_id=job.pk))
        assert job.status == "done" and job.sessions == len(session_ids), (job.status, job.error)
        size, records = job.size, job.records
        job.file.delete(save=False)
        job.delete()
        return seconds, (records, size)

    run_baseline()  # warm-up: the rows in PostgreSQL's cache, Django's code paths loaded
    for r in range(repeat):
        kinds = ["baseline", *formats, "job"]
        if r % 2:
            kinds.reverse()
        for kind in kinds:
            if kind == "baseline":
                seconds, size = timed(run_baseline)
                samples[kind].update(records=len(session_ids), bytes=size)
            elif kind == "job":
                seconds, (records, size) = run_job()
                samples[kind].update(records=records, bytes=size)
            else:
                seconds, (records, size) = timed(lambda kind=kind: run_format(kind))
                samples[kind].update(records=records, bytes=size)
            samples[kind]["seconds"].append(seconds)
            print(f"  round {r + 1}: {kind:24} {seconds:7.2f} s", flush=True)
    return samples


def profile(workspace, session_ids: list[int], name: str, top: int = 25) -> str:
    import cProfile
    import io
    import pstats

    from evals.export import resolve
    from evals.formats import Options
    from evals.services import export_build

    fmt, options = resolve(name, Options())
    profiler = cProfile.Profile()
    with tempfile.TemporaryFile() as out:
        profiler.runcall(export_build, workspace, fmt, options, session_ids, out)
    text_out = io.StringIO()
    stats = pstats.Stats(profiler, stream=text_out).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return text_out.getvalue()


# --- main -----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=10_000, help="eval-ready sessions to export")
    parser.add_argument("--repeat", type=int, default=3, help="measured rounds (the median is reported)")
    parser.add_argument("--formats", default=",".join(FORMATS), help="formats to measure, comma-separated")
    parser.add_argument(
        "--profile",
        nargs="?",
        const=HEADLINE,
        default="",
        help=f"print a cProfile of one build of these formats (comma-separated; default {HEADLINE})",
    )
    parser.add_argument("--keep", action="store_true", help=f"keep the {DATABASE} database")
    parser.add_argument("--data-dir", default=str(BASE_DIR / "data"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.formats = [name.strip() for name in args.formats.split(",") if name.strip()]
    if HEADLINE not in args.formats:
        parser.error(f"--formats must include {HEADLINE} (the headline)")

    if args.child:
        results = run(args, {"host": os.environ["BENCH_SOCKET"], "user": "postgres", "dbname": DATABASE})
        print(json.dumps(results))
        return

    # Importing opensync.settings.embedded evaluates the settings package with the embedded
    # database, so Django runs in a child process whose environment names the benchmark database.
    run_in_child(
        __file__, DATABASE, Path(args.data_dir), {"DJANGO_SETTINGS_MODULE": "opensync.settings"}, keep=args.keep
    )


def run(args, conninfo: dict) -> dict:
    setup_django(DATABASE)
    from django.db import connection
    from django.test import override_settings

    from accounts.models import User
    from accounts.services import workspace_ensure_personal
    from evals.selectors import filter_scope, scope_sessions
    from sessions_app.selectors import SessionFilters

    user = User.objects.create_user("export@bench.example", name="Bench Export")
    workspace = workspace_ensure_personal(user=user)
    started = time.perf_counter()
    messages, parts = populate(conninfo, args.sessions, workspace.pk, user.pk)
    load = time.perf_counter() - started
    session_ids = list(scope_sessions(workspace, filter_scope(SessionFilters())).values_list("pk", flat=True))
    assert len(session_ids) == args.sessions, len(session_ids)
    with connection.cursor() as cur:
        cur.execute(
            "SELECT sum(length(m.text_content)) FROM sessions_app_message m JOIN sessions_app_session s"
            " ON s.id = m.session_id WHERE s.workspace_id = %s",
            [workspace.pk],
        )
        text_chars = cur.fetchone()[0] or 0
        cur.execute("SELECT sum(length(content::text)) FROM sessions_app_part")
        part_chars = cur.fetchone()[0] or 0
    print(f"data: {args.sessions} sessions, {messages} messages, {parts} parts ({text_chars / args.sessions / 1000:.1f}"
          f" KB of message text, {part_chars / args.sessions / 1000:.1f} KB of parts per session); loaded in"
          f" {load:.1f} s")  # fmt: skip

    with tempfile.TemporaryDirectory(prefix="bench-export-media-") as media, override_settings(MEDIA_ROOT=media):
        samples = measure(workspace, user, session_ids, args.formats, args.repeat)

    base = statistics.median(samples["baseline"]["seconds"])
    rows = {}
    for kind, s in samples.items():
        seconds = statistics.median(s["seconds"])
        rows[kind] = {"seconds": seconds, "rate": args.sessions / seconds, "ratio": seconds / base,
                      "records": s["records"], "mb": s["bytes"] / 1e6}  # fmt: skip

    labels = {"baseline": "baseline: rows -> JSON lines", "job": f"job: {HEADLINE} end to end"}
    print(f"\n{'kind':30} {'median s':>9} {'sessions/s':>11} {'ratio':>6} {'records':>8} {'MB':>7}")
    for kind, r in rows.items():
        label = labels.get(kind, kind + (" (per_turn)" if kind == HEADLINE else ""))
        print(f"{label:30} {r['seconds']:9.2f} {r['rate']:11.0f} {r['ratio']:6.2f} {r['records']:8d} {r['mb']:7.1f}")
    print(f"(median of {args.repeat} rounds over {args.sessions} sessions; ratio = time / baseline time)")

    formats = [kind for kind in rows if kind not in ("baseline", "job")]
    worst = max(formats, key=lambda kind: rows[kind]["ratio"])
    profiled = [name.strip() for name in args.profile.split(",") if name.strip()]
    profiled += [kind for kind in (HEADLINE, worst) if rows[kind]["ratio"] > PROFILE_ABOVE and kind not in profiled]
    for name in profiled:
        print(f"\n--- cProfile of one {name} build of {args.sessions} sessions\n")
        print(profile(workspace, session_ids, name))

    figures = {"sessions": args.sessions, "messages": messages, "parts": parts, "repeat": args.repeat,
               "load_s": round(load, 1)}  # fmt: skip
    for kind, r in rows.items():
        key = kind.replace("-", "_")
        figures[f"{key}_s"] = round(r["seconds"], 3)
        figures[f"{key}_sessions_per_s"] = round(r["rate"], 1)
        if kind != "baseline":
            figures[f"{key}_ratio"] = round(r["ratio"], 3)
        figures[f"{key}_mb"] = round(r["mb"], 2)
    figures["ratio"] = round(rows[HEADLINE]["ratio"], 3)
    figures["ratio_format"] = f"{HEADLINE} per_turn"
    figures["worst_ratio"] = round(rows[worst]["ratio"], 3)
    figures["worst_format"] = worst
    return figures


if __name__ == "__main__":
    main()
