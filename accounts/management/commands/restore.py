"""`manage.py restore FILE`: the database's contents replaced by a `manage.py backup` archive
(opensync.backups; in accounts next to `backup`, see there why)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from opensync import backups


class Command(BaseCommand):
    help = (
        "Replace the database's contents with a backup made by `manage.py backup` (or any pg_dump custom-format "
        "archive of an OpenSync database), in one transaction: a restore that fails changes nothing. Asks first "
        "unless --yes. Run `manage.py migrate` afterwards if the code is newer than the backup."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="The backup file")
        parser.add_argument("--yes", action="store_true", help="Don't ask for confirmation")

    def handle(self, *args, file, yes, **options):
        path = file.expanduser().resolve()
        try:
            tools = backups.server_tools()
            archive = backups.archive_read(path, tools)
            if not yes and not self._confirmed(path, archive):
                self.stdout.write("Restore cancelled; nothing changed.")
                return
            backups.database_restore(path, tools)
        except backups.BackupError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Restored {path} (made {archive.created}).")

    def _confirmed(self, path: Path, archive: backups.Archive) -> bool:
        target = connection.settings_dict
        where = target["HOST"] or "localhost"
        self.stdout.write(
            f"This replaces everything in database {target['NAME']!r} on {where} with the backup {path}\n"
            f"(database {archive.database!r}, PostgreSQL {archive.server_version}, made {archive.created})."
        )
        try:
            return input("Type 'yes' to continue, or 'no' to cancel: ").strip().lower() == "yes"
        except EOFError:  # no terminal to answer from
            return False
