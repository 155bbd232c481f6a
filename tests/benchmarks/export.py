"""Export benchmark: eval exports of 10,000 sessions against dumping the same rows to JSON.

    .venv/bin/python tests/benchmarks/export.py [--sessions 10000] [--repeat 3] [--formats deepeval,openai,...]
                                                [--profile [FORMATS]] [--keep] [--database NAME]
    .venv/bin/python tests/benchmarks/export.py --long 1000,2000,10000 [--repeat 1] [--budget 150]

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
  evals.export_jobs.EXPORT_CHUNK sessions, the sessions' fields the export uses, their messages and
  their parts as `.values()` (three queries, like the export's loader), grouped per session and
  `json.dumps`ed one session per line to a temporary file;
* each format: export_jobs.export_build of the same session ids to a temporary file (the formats'
  default options; deepeval in per-turn mode, `deepeval-conversational` is its multi-turn mode);
* job: export_jobs.export_job_run of a queued deepeval job end to end (the scope query, the build,
  the save to Django's storage in a temporary MEDIA_ROOT, the job row with its session ids).

Prints sessions/s of each, ratios export time / baseline time, records and file sizes. For the
formats given to --profile, and for the headline and the worst format when their ratio is over
PROFILE_ABOVE, prints the top functions of a cProfile of one build. Last line: one JSON object;
the headline `ratio` is deepeval's (per-turn) build time over the baseline's (`ratio_format`
names it), `worst_ratio` the worst format's (`worst_format`).

--long SIZES measures long sessions instead: one session of each size (in messages, the same
coding conversations one after another, ~0.4 KB of message text and ~1 KB of parts per message),
each exported on its own in every format, against the baseline of the same session (its rows
read and dumped as above). A per-turn record carries the conversation before it, so a format that
repeats the whole history grows with the square of the session; the table shows time and size per
size, and `growth` = (time at the largest size / time at the smallest) / (largest / smallest),
1.0 being linear. A (format, size) that runs past --budget seconds or --memory-gb is reported as
such, and the format's larger sizes are skipped. Last line: one JSON object, `ratio` deepeval's
(per-turn) time over the baseline's at the largest size, `worst_growth` the worst format's growth.
"""

import argparse
import gc
import json
import os
import random
import resource
import signal
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
    from evals.export_jobs import EXPORT_CHUNK
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
    from evals.export_jobs import export_build, export_job_run, export_options
    from evals.formats import Options
    from evals.models import ExportJob
    from evals.selectors import filter_scope
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
    from evals.export_jobs import export_build
    from evals.formats import Options

    fmt, options = resolve(name, Options())
    profiler = cProfile.Profile()
    with tempfile.TemporaryFile() as out:
        profiler.runcall(export_build, workspace, fmt, options, session_ids, out)
    text_out = io.StringIO()
    stats = pstats.Stats(profiler, stream=text_out).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return text_out.getvalue()


# --- long sessions --------------------------------------------------------------------------------


def populate_long(conninfo: dict, sizes: list[int], workspace_id: int, owner_id: int) -> dict[int, int]:
    """One eval-ready session per size, of exactly that many messages: pool conversations one after
    another (their tool-call ids made unique). Returns size -> session pk."""
    import psycopg

    rng = random.Random(29)
    pool = [conversation(rng) for _ in range(POOL)]
    ids = {}
    with psycopg.connect(**conninfo) as conn, conn.cursor() as cur:
        for size in sizes:
            created = NOW - timedelta(days=1)
            sid = cur.execute(
                "INSERT INTO sessions_app_session (workspace_id, owner_id, external_id, title, project_path,"
                " project_name, model, provider, source, prompt_tokens, completion_tokens, cache_read_tokens,"
                " cache_write_tokens, message_count, is_public, eval_ready, eval_status, eval_tags, expected_output,"
                " created_at, updated_at) VALUES (%s, %s, %s, %s, '/home/dev/proj/api', 'api',"
                " 'claude-sonnet-4-20250514', 'anthropic', 'claude-code', 0, 0, 0, 0, %s, false, true, 'golden',"
                " '{}', %s, %s, %s) RETURNING id",
                (workspace_id, owner_id, f"long-{size:06d}", f"A {size}-message session", size, text(rng, 80, 400),
                 created, created),
            ).fetchone()[0]  # fmt: skip
            messages, n = [], 0
            while len(messages) < size:  # the pool's conversations in turn, each call id made unique
                for role, body, parts in pool[n % POOL]:
                    parts = [(kind, {**c, "toolCallId": f"{c['toolCallId']}-{n}"} if "toolCallId" in c else c)
                             for kind, c in parts]  # fmt: skip
                    messages.append((role, body, parts))
                n += 1
            messages = messages[:size]
            with cur.copy(
                "COPY sessions_app_message (session_id, external_id, role, text_content, model, created_at) FROM STDIN"
            ) as copy:
                for k, (role, body, _) in enumerate(messages):
                    model = "claude-sonnet-4-20250514" if role == "assistant" else None
                    copy.write_row((sid, f"m{k:06d}", role, body, model, created + timedelta(seconds=k)))
            by_external = dict(
                cur.execute("SELECT external_id, id FROM sessions_app_message WHERE session_id = %s", (sid,)).fetchall()
            )
            with cur.copy('COPY sessions_app_part (message_id, type, content, "order") FROM STDIN') as copy:
                for k, (_, _, parts) in enumerate(messages):
                    for order, (kind, content) in enumerate(parts):
                        copy.write_row((by_external[f"m{k:06d}"], kind, json.dumps(content), order))
            ids[size] = sid
        conn.commit()
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) sessions_app_session, sessions_app_message, sessions_app_part")
    return ids


class OverBudget(Exception):
    pass


def _alarm(signum, frame):
    raise OverBudget


def measure_long(workspace, ids: dict[int, int], formats: list[str], repeat: int, budget: int) -> dict:
    """(kind, size) -> {"seconds": median or None, "bytes", "records", "note"}; kinds: baseline, each format."""
    from evals.export import resolve
    from evals.export_jobs import export_build
    from evals.formats import Options

    out_rows: dict[tuple[str, int], dict] = {}
    given_up: dict[str, str] = {}
    signal.signal(signal.SIGALRM, _alarm)
    for size, sid in sorted(ids.items()):
        for kind in ["baseline", *formats]:
            if kind in given_up:
                out_rows[kind, size] = {"seconds": None, "note": f"skipped ({given_up[kind]} at a smaller size)"}
                continue
            seconds, row = [], {}
            for _ in range(repeat):
                with tempfile.TemporaryFile() as out:
                    gc.collect()
                    signal.alarm(budget)
                    started = time.perf_counter()
                    try:
                        if kind == "baseline":
                            baseline(workspace, [sid], out)
                            records = 1
                        else:
                            fmt, options = resolve(kind, Options())
                            records = export_build(workspace, fmt, options, [sid], out).records
                    except OverBudget:
                        row = {"seconds": None, "note": f"over {budget} s"}
                    except MemoryError:
                        row = {"seconds": None, "note": "out of memory"}
                    finally:
                        signal.alarm(0)
                    if row:
                        break
                    seconds.append(time.perf_counter() - started)
                    row_bytes = out.tell()
            if row:
                given_up[kind] = row["note"]
                out_rows[kind, size] = row
                gc.collect()
            else:
                out_rows[kind, size] = {"seconds": statistics.median(seconds), "bytes": row_bytes, "records": records}
            r = out_rows[kind, size]
            shown = f"{r['seconds']:8.2f} s {r['bytes'] / 1e6:9.1f} MB" if r["seconds"] is not None else r["note"]
            print(f"  {size:6d} messages: {kind:24} {shown}", flush=True)
    return out_rows


def run_long(args, conninfo: dict) -> dict:
    setup_django(args.database)
    from django.test import override_settings

    from accounts.models import User
    from accounts.services import workspace_ensure_personal

    if args.memory_gb:  # a format that keeps the square of the session in memory fails, not the machine
        limit = int(args.memory_gb * 1024**3)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    user = User.objects.create_user("export-long@bench.example", name="Bench Export")
    workspace = workspace_ensure_personal(user=user)
    started = time.perf_counter()
    ids = populate_long(conninfo, args.long, workspace.pk, user.pk)
    print(
        f"data: sessions of {', '.join(map(str, args.long))} messages; loaded in {time.perf_counter() - started:.1f} s"
    )
    with tempfile.TemporaryDirectory(prefix="bench-export-media-") as media, override_settings(MEDIA_ROOT=media):
        rows = measure_long(workspace, ids, args.formats, args.repeat, args.budget)

    small, large = min(args.long), max(args.long)
    print(f"\n{'kind':24} {'messages':>8} {'s':>8} {'x base':>7} {'MB':>9} {'KB/msg':>7} {'records':>8}")
    for (kind, size), r in rows.items():
        if r["seconds"] is None:
            print(f"{kind:24} {size:8d} {r['note']}")
            continue
        base = rows["baseline", size]["seconds"]
        print(f"{kind:24} {size:8d} {r['seconds']:8.2f} {r['seconds'] / base:7.2f} {r['bytes'] / 1e6:9.1f}"
              f" {r['bytes'] / size / 1e3:7.2f} {r['records']:8d}")  # fmt: skip
    figures = {"sizes": args.long, "repeat": args.repeat, "budget_s": args.budget}
    growth = {}
    for kind in ["baseline", *args.formats]:
        key = kind.replace("-", "_")
        for size in args.long:
            r = rows[kind, size]
            figures[f"{key}_{size}_s"] = round(r["seconds"], 3) if r["seconds"] is not None else r["note"]
            if r["seconds"] is not None:
                figures[f"{key}_{size}_mb"] = round(r["bytes"] / 1e6, 2)
                if kind != "baseline":
                    figures[f"{key}_{size}_ratio"] = round(r["seconds"] / rows["baseline", size]["seconds"], 2)
        a, b = rows[kind, small], rows[kind, large]
        if large > small and a["seconds"] is not None and b["seconds"] is not None:
            growth[kind] = (b["seconds"] / a["seconds"]) / (large / small)
            figures[f"{key}_growth"] = round(growth[kind], 2)
            figures[f"{key}_bytes_growth"] = round((b["bytes"] / a["bytes"]) / (large / small), 2)
    print(f"(growth = (time at {large} / time at {small}) / {large / small:g}; 1.0 is linear, higher grows faster)")
    headline = rows[HEADLINE, large]
    base = rows["baseline", large]["seconds"]
    figures["ratio"] = round(headline["seconds"] / base, 3) if headline["seconds"] is not None else None
    figures["ratio_format"] = f"{HEADLINE} per_turn at {large} messages"
    formats = [kind for kind in args.formats if kind in growth]
    if formats:
        worst = max(formats, key=growth.get)
        figures["worst_growth"], figures["worst_growth_format"] = round(growth[worst], 2), worst
    figures["unfinished"] = sorted({kind for (kind, _), r in rows.items() if r["seconds"] is None})
    for name in [name.strip() for name in args.profile.split(",") if name.strip()]:
        print(f"\n--- cProfile of one {name} build of the {large}-message session\n")
        print(profile(workspace, [ids[large]], name))
    return figures


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
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument("--database", default=DATABASE, help=f"the benchmark database's name (default {DATABASE})")
    parser.add_argument("--long", default="", help="long sessions instead: their sizes in messages, comma-separated")
    parser.add_argument("--budget", type=int, default=150, help="--long: seconds one build may take")
    parser.add_argument("--memory-gb", type=float, default=4.0, help="--long: the process's memory limit (0: none)")
    parser.add_argument("--data-dir", default=str(BASE_DIR / "data"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.formats = [name.strip() for name in args.formats.split(",") if name.strip()]
    args.long = sorted({int(size) for size in args.long.split(",") if size.strip()})
    if HEADLINE not in args.formats:
        parser.error(f"--formats must include {HEADLINE} (the headline)")

    if args.child:
        conninfo = {"host": os.environ["BENCH_SOCKET"], "user": "postgres", "dbname": args.database}
        results = (run_long if args.long else run)(args, conninfo)
        print(json.dumps(results))
        return

    # Importing opensync.settings.embedded evaluates the settings package with the embedded
    # database, so Django runs in a child process whose environment names the benchmark database.
    run_in_child(
        __file__, args.database, Path(args.data_dir), {"DJANGO_SETTINGS_MODULE": "opensync.settings"}, keep=args.keep
    )


def run(args, conninfo: dict) -> dict:
    setup_django(args.database)
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
