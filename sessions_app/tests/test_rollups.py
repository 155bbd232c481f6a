"""The daily usage rollups stay equal to a from-scratch aggregation of the sessions, whatever
happens to the sessions: random syncs, re-sends, messages, re-pricing after price overrides,
deletions, concurrent writers, and a time zone change followed by a rebuild."""

import random
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from accounts.tests.factories import UserFactory, team_with
from evals.services import session_review
from sessions_app import rollups, services, tasks
from sessions_app.models import PriceOverride, Session, UsageRollup
from sessions_app.wire import parse_message, parse_session

MODELS = ["claude-sonnet-4-5-20250929", "claude-opus-4-5", "gpt-5-codex", "mystery-7b", None]
SOURCES = ["claude-code", "codex-cli", "opencode", "factory-droid", "pi"]
PROJECTS = [("api", "/src/api"), ("web", None), (None, "/srv/scratch"), (None, None)]
# around midnight in Los Angeles across the March DST change, so day boundaries matter
START = datetime(2026, 3, 7, 6, tzinfo=UTC)


def assert_exact(*workspaces):
    for workspace in workspaces:
        assert rollups.stored(workspace.pk) == rollups.from_scratch(workspace.pk), workspace
        assert rollups.check(workspace.pk) == 0, workspace  # the dimension rollups too


def session_body(rng: random.Random, external_id: str) -> dict:
    name, path = rng.choice(PROJECTS)
    body = {
        "externalId": external_id,
        "source": rng.choice(SOURCES),
        "model": rng.choice(MODELS),
        "projectName": name,
        "projectPath": path,
        "createdAt": int((START + timedelta(minutes=rng.randrange(0, 5 * 24 * 60))).timestamp() * 1000),
    }
    if rng.random() < 0.8:
        body |= {"promptTokens": rng.randrange(0, 50_000), "completionTokens": rng.randrange(0, 5_000)}
    if rng.random() < 0.5:
        body |= {"cacheReadTokens": rng.randrange(0, 200_000), "cacheCreationTokens": rng.randrange(0, 20_000)}
    if rng.random() < 0.3:
        body["cacheWrite1hTokens"] = rng.randrange(0, 5_000)
    if rng.random() < 0.5:
        body["cost"] = round(rng.random() * 3, 6) if rng.random() < 0.9 else 0
    if rng.random() < 0.7:
        body["durationMs"] = rng.choice([0, 400, 999, 1000, rng.randrange(1, 10**9)])
    if rng.random() < 0.2:
        body["modelUsage"] = [
            {
                "model": rng.choice(MODELS[:4]),
                "subagent": sub,
                "inputTokens": rng.randrange(0, 9_000),
                "outputTokens": rng.randrange(0, 900),
                "cacheReadTokens": rng.randrange(0, 90_000),
            }  # fmt: skip
            for sub in (False, True)
        ]
    return {k: v for k, v in body.items() if v is not None}


@pytest.fixture
def team_of_three_admins(user):
    """A team in Los Angeles time run by three admins, `user` first."""
    people = [user, UserFactory(), UserFactory()]
    return team_with(user, admin=people[1:], timezone="America/Los_Angeles"), people


@pytest.mark.django_db
def test_random_syncs_resends_repricing_and_deletions_keep_rollups_exact(
    team_of_three_admins, personal_workspace, user
):
    workspace, people = team_of_three_admins
    rng = random.Random(1307)
    targets = [(workspace, person) for person in people] + [(personal_workspace, user)]
    sent: dict[tuple, list[dict]] = {}  # (workspace id, owner id) -> every body sent
    for step in range(400):
        ws, owner = rng.choice(targets)
        history = sent.setdefault((ws.pk, owner.pk), [])
        action = rng.random()
        if action < 0.35 or not history:
            bodies = [session_body(rng, f"s{rng.randrange(0, 40)}") for _ in range(rng.randrange(1, 4))]
            services.sync(workspace_id=ws.pk, owner_id=owner.pk, sessions=[parse_session(b) for b in bodies],
                          messages=[])  # fmt: skip
            history.extend(bodies)
        elif action < 0.55:  # messages, sometimes for sessions not seen yet (auto-created)
            messages = [
                parse_message(
                    {
                        "sessionExternalId": f"s{rng.randrange(0, 45)}",
                        "externalId": f"m{rng.randrange(0, 30)}",
                        "role": rng.choice(["user", "assistant"]),
                        "textContent": "hello",
                        "model": rng.choice(MODELS),
                        "source": rng.choice(SOURCES),
                    }
                )
                for _ in range(rng.randrange(1, 6))
            ]
            services.sync(workspace_id=ws.pk, owner_id=owner.pk, sessions=[], messages=messages)
        elif action < 0.7:  # a plugin re-sending what it already sent
            body = rng.choice(history)
            services.sync(workspace_id=ws.pk, owner_id=owner.pk, sessions=[parse_session(body)], messages=[])
        elif action < 0.75:
            ids = list(Session.objects.filter(workspace=ws).order_by("?").values_list("pk", flat=True)[:3])
            services.sessions_delete(session_ids=ids)
        elif action < 0.8:  # a reviewer sets a status (Analytics counts them per model and person)
            session = Session.objects.filter(workspace=ws).order_by("?").first()
            if session is not None:
                status = rng.choice(["golden", "correct", "incorrect", "needs_review", ""])
                session_review(session=session, actor=owner, eval_status=status)
        elif action < 0.9:  # a price change, and the re-pricing it starts (the task runs eagerly)
            PriceOverride.objects.update_or_create(
                workspace=rng.choice([ws, None]),
                model_pattern=rng.choice(["claude-sonnet-4-5*", "mystery-7b", "gpt-5-codex"]),
                effective_from=START + timedelta(days=rng.randrange(0, 5)),
                defaults={"input_per_m": Decimal(rng.randrange(0, 8)), "output_per_m": Decimal(rng.randrange(0, 30))},
            )
            job = services.repricing_job_start(workspace=ws, model_pattern=rng.choice(["", "claude*", "mystery-7b"]))
            services.repricing_job_run(job_id=job.pk, batch_size=rng.choice([1, 7, 1000]))
        else:
            call_command("reprice", batch=rng.choice([3, 1000]), stdout=open("/dev/null", "w"),  # noqa: SIM115
                         stderr=open("/dev/null", "w"))  # noqa: SIM115  # fmt: skip
        if step % 25 == 0:
            assert_exact(workspace, personal_workspace)
    assert_exact(workspace, personal_workspace)
    assert UsageRollup.objects.filter(sessions__lte=0).count() == 0  # no empty or negative rows kept
    assert Session.objects.filter(workspace=workspace).count() > 20  # the run did build something
    # and the rollups compress: fewer rows than sessions
    assert UsageRollup.objects.count() <= Session.objects.count()

    # A time zone change moves day boundaries: the rebuild gives what the incremental path would.
    workspace.timezone = "Asia/Tokyo"
    workspace.save(update_fields=["timezone"])
    rollups.rebuild(workspace.pk)
    assert_exact(workspace)
    days = set(UsageRollup.objects.filter(workspace=workspace).values_list("day", flat=True))
    assert days == {
        s.created_at.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Tokyo")).date()
        for s in Session.objects.filter(workspace=workspace)
    }


@pytest.mark.django_db
def test_rollup_figures_of_one_session(user, personal_workspace):
    body = {"externalId": "one", "source": "codex-cli", "model": "gpt-5-codex", "projectName": "api",
            "promptTokens": 10_000, "completionTokens": 500, "cacheReadTokens": 8_000, "durationMs": 90_000,
            "createdAt": int(START.timestamp() * 1000), "cost": 0.02}  # fmt: skip
    services.sync(workspace_id=personal_workspace.pk, owner_id=user.pk, sessions=[parse_session(body)], messages=[])
    row = UsageRollup.objects.get()
    assert (row.day, row.model, row.source, row.owner_id, row.project, row.project_named) == (
        START.date(),
        "gpt-5-codex",
        "codex-cli",
        user.pk,
        "api",
        True,
    )
    assert (row.sessions, row.input_tokens, row.cache_read_tokens, row.output_tokens) == (1, 2_000, 8_000, 500)
    assert (row.prompt_tokens, row.completion_tokens) == (10_000, 500)
    assert (row.cost, row.computed_cost, row.reported_cost) == (Decimal("0.0085"), Decimal("0.0085"), Decimal("0.02"))
    assert (row.sessions_computed, row.sessions_cost_reported, row.priced_tokens) == (1, 1, 10_500)
    # 90 s is in the bucket [1.25^20, 1.25^21) s = [86.7 s, 108.4 s)
    assert row.duration_buckets.index(1) == 21 and sum(row.duration_buckets) == 1
    # deleting it removes the row
    services.sessions_delete(session_ids=[Session.objects.get().pk])
    assert not UsageRollup.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_syncs_sharing_rollup_rows_neither_deadlock_nor_miscount(user, personal_workspace):
    """Eight clients syncing sessions of the same day, model and project (one rollup row) at
    once, each batch touching sessions in a different order."""
    errors = []

    def client(n: int):
        try:
            rng = random.Random(n)
            for _ in range(15):
                ids = rng.sample(range(12), 4)
                bodies = [
                    {
                        "externalId": f"c{i}",
                        "source": "pi",
                        "model": "claude-sonnet-4-5",
                        "projectName": "p",
                        "createdAt": int(START.timestamp() * 1000),
                        "promptTokens": rng.randrange(1, 1000),
                        "completionTokens": rng.randrange(1, 100),
                        "durationMs": rng.randrange(1, 10**6),
                    }  # fmt: skip
                    for i in ids
                ]
                messages = [
                    parse_message({"sessionExternalId": f"c{i}", "externalId": f"m{n}-{rng.random()}", "role": "user"})
                    for i in ids
                ]
                services.sync(workspace_id=personal_workspace.pk, owner_id=user.pk,
                              sessions=[parse_session(b) for b in bodies], messages=messages)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert_exact(personal_workspace)
    row = UsageRollup.objects.get()
    assert row.sessions == 12 and row.messages == 8 * 15 * 4


@pytest.mark.django_db
def test_rollups_command_checks_and_rebuilds(user, personal_workspace, capsys):
    body = {"externalId": "x", "model": "claude-opus-4-5", "promptTokens": 5, "completionTokens": 5}
    services.sync(workspace_id=personal_workspace.pk, owner_id=user.pk, sessions=[parse_session(body)], messages=[])
    call_command("rollups")
    assert "ok (1 rows)" in capsys.readouterr().out
    UsageRollup.objects.update(sessions=7)  # drifted, e.g. by a write made straight in SQL
    with pytest.raises(Exception, match="differ"):
        call_command("rollups")
    call_command("rollups", rebuild=True)
    call_command("rollups")
    assert UsageRollup.objects.get().sessions == 1


@pytest.mark.django_db
def test_writing_rollups_takes_the_workspace_rebuild_lock(user, personal_workspace):
    """Every write of the rollups holds its workspace's shared advisory lock until it commits,
    so a rebuild (exclusive) never interleaves with it."""
    body = {"externalId": "lock", "model": "claude-opus-4-5", "promptTokens": 5, "completionTokens": 5}
    with transaction.atomic():
        services.sync(workspace_id=personal_workspace.pk, owner_id=user.pk, sessions=[parse_session(body)], messages=[])
        message = parse_message({"sessionExternalId": "lock", "externalId": "m1", "role": "user"})
        services.sync(workspace_id=personal_workspace.pk, owner_id=user.pk, sessions=[], messages=[message])
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT mode FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
                "AND classid = %s AND objid = %s",
                [rollups.LOCK_CLASS, personal_workspace.pk],
            )
            assert [row[0] for row in cursor.fetchall()] == ["ShareLock"]
    assert rollups.check(personal_workspace.pk) == 0
    assert UsageRollup.objects.get().messages == 1


@pytest.mark.django_db
def test_the_rollup_statements_are_prepared_once_per_connection(user, personal_workspace):
    """Django turns psycopg's prepared statements off unless told otherwise, which would make
    `prepare=True` a silent no-op: a one-message sync would re-plan the rollup update (~3 ms)."""
    body = {"externalId": "prep", "model": "claude-opus-4-5", "promptTokens": 5, "completionTokens": 5}
    services.sync(workspace_id=personal_workspace.pk, owner_id=user.pk, sessions=[parse_session(body)], messages=[])
    for n in range(3):
        message = parse_message({"sessionExternalId": "prep", "externalId": f"m{n}", "role": "user"})
        services.sync(workspace_id=personal_workspace.pk, owner_id=user.pk, sessions=[], messages=[message])
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements")
        prepared = {statement.strip().split("\n")[0]: runs for statement, runs in cursor.fetchall()}
    assert prepared.get("WITH locked AS MATERIALIZED (") == 4  # the rollup update, once per sync
    assert UsageRollup.objects.get().messages == 3


@pytest.mark.django_db(transaction=True)
def test_a_sync_during_a_price_change_waits_for_it_and_uses_the_new_price(user, personal_workspace, monkeypatch):
    """A sync that prices while a price change is being saved must not price with the old book
    after the change (and the re-pricing job it starts) have committed: it waits for the change."""
    monkeypatch.setattr(tasks.repricing_job_run_task, "delay", lambda job_id: None)  # only the sync may price here
    saved, errors = threading.Event(), []

    def change_price():
        try:
            with transaction.atomic():
                services.price_override_save(
                    actor=user,
                    workspace=personal_workspace,
                    override=PriceOverride(
                        model_pattern="claude-opus-4-5",
                        input_per_m=1,
                        output_per_m=1,
                        effective_from=datetime(2020, 1, 1, tzinfo=UTC),
                    ),  # fmt: skip
                )
                saved.set()
                threading.Event().wait(0.5)  # still uncommitted while the sync starts
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            saved.set()
            connection.close()

    thread = threading.Thread(target=change_price)
    thread.start()
    saved.wait(10)
    body = {"externalId": "during", "model": "claude-opus-4-5", "promptTokens": 1_000_000, "completionTokens": 0,
            "createdAt": int(START.timestamp() * 1000)}  # fmt: skip
    services.sync(workspace_id=personal_workspace.pk, owner_id=user.pk, sessions=[parse_session(body)], messages=[])
    thread.join()
    assert errors == []
    assert Session.objects.get().cost == Decimal(1)  # $1/M, not the book's $5/M
    assert_exact(personal_workspace)
