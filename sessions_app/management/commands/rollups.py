from django.core.management.base import BaseCommand, CommandError

from accounts.models import Workspace
from sessions_app import rollups

from .reprice import _workspace


class Command(BaseCommand):
    help = (
        "Check the usage rollups behind Analytics against the sessions, or rebuild them from the sessions "
        "(--rebuild; each workspace in one transaction, so the pages never see half of it)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--workspace", help="Only this workspace (slug or id); default every workspace")
        parser.add_argument("--rebuild", action="store_true", help="Recompute the rollups from the sessions")

    def handle(self, *args, workspace, rebuild, **options):
        targets = [_workspace(workspace)] if workspace else list(Workspace.objects.order_by("pk"))
        wrong = 0
        for target in targets:
            if rebuild:
                rows = rollups.rebuild(target.pk)
                self.stdout.write(f"{target.slug}: {rows} rollup row(s)")
                continue
            expected, found = rollups.from_scratch(target.pk), rollups.stored(target.pk)
            if expected != found:
                wrong += 1
                keys = set(expected) ^ set(found) | {
                    k for k in expected.keys() & found.keys() if expected[k] != found[k]
                }
                self.stdout.write(f"{target.slug}: {len(keys)} rollup row(s) differ from the sessions")
            else:
                self.stdout.write(f"{target.slug}: ok ({len(found)} rows)")
        if wrong:
            raise CommandError(f"{wrong} workspace(s) differ; run with --rebuild to fix them.")
