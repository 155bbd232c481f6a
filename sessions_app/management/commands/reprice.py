import time

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Exists, OuterRef

from accounts.models import Workspace
from opensync.jobs import JobStatus, job_fail, job_reopen
from sessions_app import rollups, services
from sessions_app.models import RepricingJob, Session, UsageRollup
from sessions_app.pricing import CostSource


class Command(BaseCommand):
    help = (
        "Price sessions again with the current price book and price overrides (and bring the usage rollups "
        "along), in batches. Resumable: an interrupted run of the same command continues where it stopped, "
        "and a session priced twice gets the same figures. --pending prices only the sessions stored before "
        "the cost engine existed (run by `make run` and the Procfile's release step)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--workspace", help="Only this workspace (slug or id); default every workspace")
        parser.add_argument("--model", default="", help="Only sessions of this model (a trailing * matches a prefix)")
        parser.add_argument("--pending", action="store_true", help="Only sessions never priced")
        parser.add_argument("--batch", type=int, default=services.REPRICE_BATCH, help="Sessions per transaction")

    def handle(self, *args, workspace, model, pending, batch, **options):
        if batch < 1:
            raise CommandError("--batch must be at least 1")
        target = _workspace(workspace) if workspace else None
        if pending and not Session.objects.filter(cost_source=CostSource.PENDING).exists():
            self.stdout.write("No session waits for a price.")
            return
        # Workspaces with sessions but no rollups yet (stored before the rollups existed) get them
        # first: re-pricing moves each session's share of the rollups, so they must be complete.
        missing = Workspace.objects.filter(Exists(Session.objects.filter(workspace=OuterRef("pk")))).exclude(
            Exists(UsageRollup.objects.filter(workspace=OuterRef("pk")))
        )
        for found in missing:
            rows = rollups.rebuild(found.pk)
            self.stderr.write(f"Built the usage rollups of {found.slug} ({rows} rows).")
        scope = {"workspace": target, "model_pattern": model.strip(), "pending_only": pending}
        # an interrupted run of the same command resumes its job
        job = (
            RepricingJob.objects.filter(
                **scope, status__in=[JobStatus.PENDING, JobStatus.RUNNING, JobStatus.FAILED], reason=REASON
            )
            .order_by("-created_at")
            .first()
        )
        if job is None:
            job = RepricingJob.objects.create(**scope, reason=REASON)
        elif job.status == JobStatus.FAILED:
            job_reopen(job)
            self.stderr.write(f"Resuming from session id {job.last_id} ({job.processed} done).")
        started, last = time.monotonic(), [0.0]

        def progress(job):
            now = time.monotonic()
            if now - last[0] >= 2:
                last[0] = now
                rate = job.processed / max(now - started, 1e-9)
                self.stderr.write(f"{job.processed}/{job.total} sessions, {job.changed} changed, {rate:,.0f}/s")

        try:
            ran = services.repricing_job_run(job_id=job.pk, batch_size=batch, on_progress=progress)
        except KeyboardInterrupt:
            # what is committed stays; running the command again resumes from there
            job_fail(job, error="Interrupted")
            raise
        job = ran
        if job is None:
            minutes = int(RepricingJob.stale_after.total_seconds() // 60)
            raise CommandError(
                f"Another process is running this re-pricing (or it stopped less than {minutes} minutes ago "
                "without finishing); try again later."
            )
        if job.status == JobStatus.FAILED:
            raise CommandError(f"{job.error} ({job.processed}/{job.total} sessions done)")
        elapsed = time.monotonic() - started
        self.stdout.write(f"Priced {job.processed} session(s) in {elapsed:.1f}s; {job.changed} changed their figures.")


REASON = "manage.py reprice"


def _workspace(value: str) -> Workspace:
    found = Workspace.objects.filter(slug=value).first()
    if found is None and value.isdigit():
        found = Workspace.objects.filter(pk=int(value)).first()
    if found is None:
        raise CommandError(f"No workspace with slug or id {value!r}")
    return found
