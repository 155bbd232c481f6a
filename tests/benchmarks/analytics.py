"""Analytics benchmark: the Analytics page and /api/analytics at 1,000,000 sessions against the
same at 10,000, against the bare SQL that computes the same figures from the sessions table, and
re-pricing 100,000 sessions.

    .venv/bin/python tests/benchmarks/analytics.py [--sessions 1000000] [--small 10000]
                                                   [--reprice 100000] [--repeat 15] [--keep]

On one fresh database (`bench_analytics` on the embedded server, dropped at the end unless --keep):

* three team workspaces of 25 people, 40 projects, 10 models and 6 agents over the year before
  NOW, each person working mostly in a few projects with a few models and agents (as teams do):
  A holds --sessions sessions, B --small, C --reprice. Their usage follows each agent's real
  convention, and they are priced by the cost engine (sessions_app.pricing) while generated, so
  the stored figures are the sync's; 3% are reviewed. Rows are COPYed, then each workspace's
  rollups are built (`rollups.rebuild`, timed) and the tables VACUUM ANALYZEd;
* in-process with Django's test client (DEBUG off), A and B interleaved so the machine's noise
  hits both alike, the median over --repeat requests of three pages and three API calls;
* for A, the bare SQL that computes each page's (or call's) figures from the sessions table
  (the totals, the breakdown with its percentiles, the series, the review outcome; psycopg, no
  Django), in the same run;
* a price override for every model of C, and C's re-pricing job run to the end (sessions/s),
  against one bare SQL UPDATE writing the new costs of the same rows (rolled back).

Figures: A/B per page (1.0 = the page does not grow with the workspace), page(A)/bare SQL(A), the
rollup rows of each workspace, re-pricing sessions/s and its ratio to the bare UPDATE. Last line:
one JSON object; the headline `ratio` is the worst A/B ratio over the pages and API calls.
"""

import argparse
import gc
import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(BASE_DIR))
# The benchmark measures the work, not the per-key API budgets: its thousands of requests a minute
# from one key would run into them by design (their cost is one Redis round trip, ~0.6 ms).
# Inherited by the servers it starts.
for _scope in ("SYNC", "READ", "SEARCH", "EXPORT"):
    os.environ.setdefault(f"OPENSYNC_RATE_LIMIT_{_scope}", "off")

from tests.benchmarks.ingest import run_in_child, setup_django  # noqa: E402

DATABASE = "bench_analytics"
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
PEOPLE, PROJECT_COUNT = 25, 40
MODELS = {  # model -> (provider, agents that use it)
    "claude-sonnet-4-5-20250929": ("anthropic", ("claude-code", "opencode", "pi", "factory-droid")),
    "claude-opus-4-5-20251101": ("anthropic", ("claude-code", "opencode", "factory-droid")),
    "claude-haiku-4-5-20251001": ("anthropic", ("claude-code", "opencode")),
    "gpt-5-codex": ("openai", ("codex-cli",)),
    "gpt-5": ("openai", ("codex-cli", "opencode")),
    "gpt-5-mini": ("openai", ("codex-cli", "opencode")),
    "gemini-2.5-pro": ("google", ("opencode",)),
    "gemini-2.5-flash": ("google", ("opencode",)),
    "grok-code-fast-1": ("x-ai", ("opencode",)),
    "in-house-coder-7b": ("self-hosted", ("opencode",)),  # not in the price book: unpriced / reported
}
SOURCES = ("claude-code", "opencode", "codex-cli", "factory-droid", "pi", "cursor-sync")
PAGES = {
    "page_default": "/analytics/",  # 30 days, by model, tokens per day
    "page_people_all": "/analytics/?range=all&by=owner",
    "page_projects_12m_cost": "/analytics/?range=12m&by=project&metric=cost&interval=week",
    "api_summary_all": "/api/analytics/summary?range=all",
    "api_breakdown_90d": "/api/analytics/breakdown?range=90d&by=model",
    "api_timeseries_12m": "/api/analytics/timeseries?range=12m&metric=cost",
}


# --- data -----------------------------------------------------------------------------------------


def team(rng: random.Random):
    """Each person's habits: (weight, projects with weights, models, agents)."""
    projects = [f"project-{n:02d}" for n in range(PROJECT_COUNT)]
    people = []
    for _ in range(PEOPLE):
        home = rng.sample(projects, rng.randint(2, 5))
        agents = rng.sample(SOURCES[:5], rng.choice((1, 1, 2)))
        models = [m for m, (_, used_by) in MODELS.items() if set(used_by) & set(agents)]
        models = rng.sample(models, min(len(models), rng.randint(1, 3)))
        people.append((rng.lognormvariate(0, 0.8), home, models, agents))
    return projects, people


def usage_for(rng: random.Random, source: str, model: str | None) -> dict:
    """Tokens as the agent's plugin reports them (see sessions_app.pricing.CONVENTIONS)."""
    fresh = int(rng.lognormvariate(9.5, 1.2))
    output = int(fresh * rng.uniform(0.3, 2.0)) + 50
    if source == "cursor-sync":
        return {}
    if source == "codex-cli":
        cached = int(fresh * rng.uniform(3, 15))
        return {"prompt": fresh + cached, "completion": output, "cache_read": cached,
                "reasoning": int(output * rng.uniform(0, 0.6))}  # fmt: skip
    if source == "factory-droid":
        return {"prompt": fresh, "completion": output}
    read = int(fresh * rng.uniform(5, 40))
    write = int(fresh * rng.uniform(0.2, 3))
    one_hour = int(write * rng.uniform(0.6, 0.95)) if source == "claude-code" else 0
    return {"prompt": fresh, "completion": output, "cache_read": read, "cache_write": write,
            "cache_write_1h": one_hour, "cache_write_5m": write - one_hour if one_hour else 0}  # fmt: skip


def session_rows(rng: random.Random, n: int, workspace_id: int, owners: list[int], prefix: str):
    """n sessions of one workspace, priced by the cost engine, as COPY rows (columns: COLUMNS)."""
    from sessions_app.pricing import PriceBook, SessionFacts, price_session

    book = PriceBook()
    projects, people = team(rng)
    weights = [p[0] for p in people]
    for i in range(n):
        person = rng.choices(range(PEOPLE), weights=weights)[0]
        _, home, models, agents = people[person]
        routine = rng.random() < 0.9
        project = rng.choice(home) if routine else rng.choice(projects)
        source = rng.choice(agents) if routine else rng.choice(SOURCES)
        fitting = [m for m in (models if routine else MODELS) if source in MODELS[m][1]]
        model = rng.choice(fitting) if fitting and source != "cursor-sync" else None
        provider = MODELS[model][0] if model else None
        created = NOW - timedelta(seconds=rng.uniform(0, 365 * 86400))
        duration = None if rng.random() < 0.06 else int(rng.lognormvariate(13.2, 1.3))
        u = usage_for(rng, source, model)
        reported = None
        if source in ("opencode", "pi", "claude-code") and rng.random() < 0.9:
            reported = Decimal(str(round(u.get("prompt", 0) * 3e-6 + u.get("completion", 0) * 15e-6, 6)))
        facts = SessionFacts(source=source, model=model, provider=provider, created_at=created,
                             prompt_tokens=u.get("prompt", 0), completion_tokens=u.get("completion", 0),
                             cache_read_tokens=u.get("cache_read", 0), cache_write_tokens=u.get("cache_write", 0),
                             cache_write_5m_tokens=u.get("cache_write_5m", 0),
                             cache_write_1h_tokens=u.get("cache_write_1h", 0),
                             reasoning_tokens=u.get("reasoning", 0), reported_cost=reported)  # fmt: skip
        p = price_session(facts, book)
        status = (
            rng.choice(("golden", "correct", "correct", "incorrect", "needs_review")) if rng.random() < 0.03 else None
        )
        updated = created + timedelta(milliseconds=duration or 60_000)
        yield (workspace_id, owners[person], f"{prefix}-{i:07d}", f"Session {i}", f"/home/dev/{project}", project,
               model, provider, source, facts.prompt_tokens, facts.completion_tokens, facts.cache_read_tokens,
               facts.cache_write_tokens, facts.cache_write_5m_tokens, facts.cache_write_1h_tokens,
               facts.reasoning_tokens, reported, p.computed_cost, p.cost, p.cost_source, p.cost_note, p.price_model,
               NOW, p.usage.input, p.usage.output, p.usage.cache_read, p.usage.cache_write_5m, p.usage.cache_write_1h,
               p.usage.reasoning, p.subagent_usage.total, p.subagent_cost, duration, rng.randint(2, 300), False,
               status is not None, status, created, updated)  # fmt: skip


COLUMNS = (
    "workspace_id, owner_id, external_id, title, project_path, project_name, model, provider, source, prompt_tokens,"
    " completion_tokens, cache_read_tokens, cache_write_tokens, cache_write_5m_tokens, cache_write_1h_tokens,"
    " reasoning_tokens, reported_cost, computed_cost, cost, cost_source, cost_note, price_model, priced_at,"
    " usage_input_tokens, usage_output_tokens, usage_cache_read_tokens, usage_cache_write_5m_tokens,"
    " usage_cache_write_1h_tokens, usage_reasoning_tokens, subagent_tokens, subagent_cost, duration_ms,"
    " message_count, is_public, eval_ready, eval_status, created_at, updated_at"
)


def populate(conninfo: dict, plan: list[tuple[int, list[int], int, str]]) -> dict:
    """COPY each workspace's sessions; build its rollups; VACUUM ANALYZE. Returns timings."""
    import psycopg

    from sessions_app import rollups

    timings = {}
    rng = random.Random(7)
    started = time.perf_counter()
    with psycopg.connect(**conninfo) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY sessions_app_session ({COLUMNS}) FROM STDIN") as copy:
            for workspace_id, owners, n, prefix in plan:
                # in arrival order, as the sync stores them (ids follow time)
                for row in sorted(session_rows(rng, n, workspace_id, owners, prefix), key=lambda r: r[-2]):
                    copy.write_row(row)
        conn.commit()
    timings["load_s"] = time.perf_counter() - started
    for workspace_id, _, _, prefix in plan:
        started = time.perf_counter()
        rows = rollups.rebuild(workspace_id)
        timings[f"rollup_rows_{prefix}"] = rows
        timings[f"rollup_rebuild_{prefix}_s"] = time.perf_counter() - started
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) sessions_app_session, sessions_app_usagerollup")
    return timings


# --- the bare SQL of the same figures ----------------------------------------------------------------

PROJECT = "COALESCE(NULLIF(project_name, ''), NULLIF(project_path, ''), '')"
TOTALS = """count(*), sum(message_count), sum(usage_input_tokens), sum(usage_output_tokens),
    sum(usage_cache_read_tokens), sum(usage_cache_write_5m_tokens), sum(usage_cache_write_1h_tokens),
    sum(usage_reasoning_tokens), sum(subagent_tokens), sum(cost), sum(computed_cost), sum(reported_cost),
    count(*) FILTER (WHERE cost_source = 'computed'), count(*) FILTER (WHERE cost_source = 'reported'),
    count(*) FILTER (WHERE cost IS NULL),
    sum(usage_input_tokens + usage_output_tokens + usage_cache_read_tokens + usage_cache_write_5m_tokens
        + usage_cache_write_1h_tokens) FILTER (WHERE cost IS NOT NULL),
    sum(duration_ms), count(duration_ms),
    percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms), percentile_cont(0.9) WITHIN GROUP (ORDER BY duration_ms)"""


def bare_sql(kind: str, workspace_id: int) -> list[tuple[str, list]]:
    """The statements that compute `kind`'s figures straight from the sessions table."""
    day = "(created_at AT TIME ZONE 'UTC')::date"
    since = {"30d": 29, "90d": 89, "12m": 364, "all": None}
    rng_ = {"page_default": "30d", "page_people_all": "all", "page_projects_12m_cost": "12m",
            "api_summary_all": "all", "api_breakdown_90d": "90d", "api_timeseries_12m": "12m"}[kind]  # fmt: skip
    where = "workspace_id = %s"
    params = [workspace_id]
    if since[rng_] is not None:
        where += f" AND {day} >= %s"
        params.append(NOW.date() - timedelta(days=since[rng_]))
    key = {"page_default": "model", "page_people_all": "owner_id", "page_projects_12m_cost": PROJECT,
           "api_breakdown_90d": "model"}.get(kind)  # fmt: skip
    tokens = ("usage_input_tokens + usage_output_tokens + usage_cache_read_tokens + usage_cache_write_5m_tokens"
              " + usage_cache_write_1h_tokens")  # fmt: skip
    statements = []
    if kind.startswith("page") or kind == "api_summary_all":
        statements.append((f"SELECT {TOTALS}, count(DISTINCT model), count(DISTINCT {PROJECT}), "
                           f"count(DISTINCT owner_id) FROM sessions_app_session WHERE {where}", params))  # fmt: skip
    if key:
        statements.append((f"SELECT {key}, {TOTALS} FROM sessions_app_session WHERE {where} GROUP BY 1", params))
        statements.append((f"SELECT {key}, eval_status, count(*) FROM sessions_app_session WHERE {where} "
                           "AND eval_status IS NOT NULL GROUP BY 1, 2", params))  # fmt: skip
    if kind.startswith("page") or kind == "api_timeseries_12m":
        bucket = "date_trunc('week', created_at AT TIME ZONE 'UTC')" if kind == "page_projects_12m_cost" else day
        value = "sum(cost)" if "cost" in kind else f"sum({tokens})"
        statements.append((f"SELECT {bucket}, model, {value} FROM sessions_app_session WHERE {where} GROUP BY 1, 2",
                           params))  # fmt: skip
    return statements


def time_bare(conninfo: dict, statements: list[tuple[str, list]], repeat: int) -> float:
    import psycopg

    samples = []
    with psycopg.connect(**conninfo) as conn, conn.cursor() as cur:
        for r in range(repeat + 2):
            started = time.perf_counter()
            for sql, params in statements:
                cur.execute(sql, params)
                cur.fetchall()
            if r >= 2:
                samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


# --- measuring ------------------------------------------------------------------------------------


def get(client, url: str, headers: dict) -> float:
    started = time.perf_counter()
    response = client.get(url, headers=headers)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise SystemExit(f"GET {url} answered {response.status_code}: {response.content[:300]!r}")
    return elapsed


def measure(sides: list[tuple], repeat: int, warmup: int = 2) -> dict:
    """sides: [(client, api headers)] for A and B; every round runs each URL on both sides,
    alternating which goes first."""
    samples = {kind: ([], []) for kind in PAGES}
    for r in range(warmup + repeat):
        gc.collect()
        for k, (kind, url) in enumerate(PAGES.items()):
            for side in (0, 1) if (r + k) % 2 == 0 else (1, 0):
                client, api = sides[side]
                ms = get(client, url, api if url.startswith("/api/") else {})
                if r >= warmup:
                    samples[kind][side].append(ms)
    return {kind: (statistics.median(a), statistics.median(b)) for kind, (a, b) in samples.items()}


def print_queries(sides: list[tuple]) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for kind, url in PAGES.items():
        for name, (client, api) in zip("AB", sides, strict=True):
            get(client, url, api if url.startswith("/api/") else {})
            with CaptureQueriesContext(connection) as ctx:
                total = get(client, url, api if url.startswith("/api/") else {})
            print(f"{kind} {name}: {total:.1f} ms, {len(ctx.captured_queries)} queries")
            for query in sorted(ctx.captured_queries, key=lambda q: -float(q["time"]))[:4]:
                print(f"   {float(query['time']) * 1000:7.1f} ms  {query['sql'][:150]}")


def reprice(workspace_id: int, conninfo: dict, sessions: int) -> dict:
    """An override for every model of the workspace, then its re-pricing job, against one bare
    UPDATE of the same rows (rolled back)."""
    import psycopg

    from sessions_app import services
    from sessions_app.models import PriceOverride, RepricingJob

    for model in MODELS:
        PriceOverride.objects.create(workspace_id=workspace_id, model_pattern=model, input_per_m=Decimal("1.1"),
                                     output_per_m=Decimal("4.4"), cache_read_per_m=Decimal("0.11"),
                                     effective_from=NOW - timedelta(days=400))  # fmt: skip
    with psycopg.connect(**conninfo) as conn, conn.cursor() as cur:
        started = time.perf_counter()
        cur.execute(
            "UPDATE sessions_app_session SET cost = (usage_input_tokens * 1.1 + usage_output_tokens * 4.4 "
            "+ usage_cache_read_tokens * 0.11 + (usage_cache_write_5m_tokens + usage_cache_write_1h_tokens) * 1.1)"
            " / 1000000, computed_cost = cost, cost_source = 'computed', priced_at = now() WHERE workspace_id = %s",
            [workspace_id],
        )
        bare = time.perf_counter() - started
        updated = cur.rowcount
        conn.rollback()
    job = RepricingJob.objects.create(workspace_id=workspace_id, reason="benchmark")
    started = time.perf_counter()
    job = services.repricing_job_run(job_id=job.pk)
    elapsed = time.perf_counter() - started
    assert job.processed == sessions == updated, (job.processed, sessions, updated)
    return {
        "reprice_sessions": job.processed,
        "reprice_changed": job.changed,
        "reprice_s": round(elapsed, 2),
        "reprice_sessions_per_s": round(job.processed / elapsed),
        "reprice_bare_update_s": round(bare, 2),
        "reprice_ratio": round(elapsed / bare, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=1_000_000, help="sessions in the large workspace")
    parser.add_argument("--small", type=int, default=10_000, help="sessions in the small workspace")
    parser.add_argument("--reprice", type=int, default=100_000, help="sessions re-priced")
    parser.add_argument("--repeat", type=int, default=15, help="measured requests per page and workspace")
    parser.add_argument("--keep", action="store_true", help=f"keep the {DATABASE} database")
    parser.add_argument("--queries", action="store_true", help="print each page's queries and their times")
    parser.add_argument("--reuse", action="store_true", help="measure again on the data a --keep run left")
    parser.add_argument("--data-dir", default=str(BASE_DIR / "data"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        results = run(args, {"host": os.environ["BENCH_SOCKET"], "user": "postgres", "dbname": DATABASE})
        print(json.dumps(results))
        return
    run_in_child(
        __file__,
        DATABASE,
        Path(args.data_dir),
        {"DJANGO_SETTINGS_MODULE": "opensync.settings.test"},
        keep=args.keep or args.reuse,
        fresh=not args.reuse,
    )


def run(args, conninfo: dict) -> dict:
    setup_django(DATABASE)
    from django.core.management import call_command
    from django.test import Client
    from django.utils import timezone

    from accounts.models import Membership, Role, User, Workspace
    from accounts.services import api_key_create

    timezone.now = lambda: NOW  # "today" is the data's today (the ranges end there)
    plan, sides = [], []
    reuse = args.reuse and Workspace.objects.filter(slug="team-a").exists()
    for name, n in (("a", args.sessions), ("b", args.small), ("c", args.reprice)):
        if reuse:
            workspace = Workspace.objects.get(slug=f"team-{name}")
            people = list(User.objects.filter(memberships__workspace=workspace).order_by("pk"))
            n = workspace.sessions.count()
        else:
            workspace = Workspace.objects.create(name=f"Team {name.upper()}", slug=f"team-{name}")
            people = [
                User.objects.create_user(f"{name}{i}@bench.example", name=f"Person {name}{i}") for i in range(PEOPLE)
            ]
            Membership.objects.bulk_create(
                Membership(user=person, workspace=workspace, role=Role.ADMIN if i == 0 else Role.MEMBER)
                for i, person in enumerate(people)
            )
        plan.append((workspace.pk, [p.pk for p in people], n, name))
        if name in ("a", "b"):
            client = Client()
            client.force_login(people[0])
            client.post("/workspaces/switch/", {"workspace": workspace.pk})
            _, raw = api_key_create(user=people[0], workspace=workspace, name="bench", scope="read")
            sides.append((client, {"Authorization": f"Bearer {raw}"}))
    if reuse:
        from sessions_app.models import PriceOverride

        PriceOverride.objects.all().delete()  # the last run's re-pricing: start from the price book again
        args.sessions, args.small, args.reprice = plan[0][2], plan[1][2], plan[2][2]
        timings = {"load_s": 0, **{f"rollup_rows_{p}": 0 for p in "abc"}, "rollup_rebuild_a_s": 0}
        call_command("reprice", workspace=str(plan[2][0]), verbosity=0)
    else:
        timings = populate(conninfo, plan)
    print(f"data: A {args.sessions:,} sessions, B {args.small:,}, C {args.reprice:,}; priced and loaded in "
          f"{timings['load_s']:.0f} s; rollups: A {timings['rollup_rows_a']:,} rows in "
          f"{timings['rollup_rebuild_a_s']:.1f} s, B {timings['rollup_rows_b']:,} rows")  # fmt: skip

    if args.queries:
        print_queries(sides)
    stats = measure(sides, args.repeat)
    bare = {kind: time_bare(conninfo, bare_sql(kind, plan[0][0]), max(3, args.repeat // 3)) for kind in PAGES}
    print(f"\n{'request':28} {'A ms':>8} {'B ms':>8} {'A/B':>6} {'bare SQL A ms':>14} {'A/bare':>7}")
    figures = {}
    for kind, (a, b) in stats.items():
        print(f"{kind:28} {a:8.1f} {b:8.1f} {a / b:6.2f} {bare[kind]:14.1f} {a / bare[kind]:7.3f}")
        figures[f"{kind}_ratio"] = round(a / b, 3)
        figures[f"{kind}_vs_bare_sql"] = round(a / bare[kind], 3)
        figures[f"{kind}_a_ms"] = round(a, 1)
        figures[f"{kind}_b_ms"] = round(b, 1)
        figures[f"{kind}_bare_sql_a_ms"] = round(bare[kind], 1)
    repricing = reprice(plan[2][0], conninfo, args.reprice)
    print(f"\nre-pricing {repricing['reprice_sessions']:,} sessions: {repricing['reprice_s']} s, "
          f"{repricing['reprice_sessions_per_s']:,} sessions/s; the bare UPDATE of the same rows: "
          f"{repricing['reprice_bare_update_s']} s (ratio {repricing['reprice_ratio']})")  # fmt: skip
    figures.update(repricing)
    figures.update({key: round(value, 2) for key, value in timings.items()})
    figures.update({"sessions_large": args.sessions, "sessions_small": args.small, "repeat": args.repeat})
    figures["ratio"] = max(figures[f"{kind}_ratio"] for kind in PAGES)
    figures["vs_bare_sql_worst"] = max(figures[f"{kind}_vs_bare_sql"] for kind in PAGES)
    return figures


if __name__ == "__main__":
    main()
