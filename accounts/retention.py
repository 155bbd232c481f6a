"""Retention: the nightly job that deletes a workspace's sessions idle for longer than its setting.

Last activity is `Session.updated_at`: every sync that adds messages moves it (and the session
list is ordered by it, with an index on (workspace, updated_at)), whereas `started_at` would
delete a long-running session that is still being written to.
"""

import datetime
import logging

from django.db import transaction
from django.utils import timezone

from sessions_app.models import Session
from sessions_app.services import sessions_delete

from .models import Workspace

logger = logging.getLogger(__name__)

# Sessions per delete: each batch is one short transaction (messages and parts go set-based).
RETENTION_BATCH_SIZE = 200


def retention_workspace_run(*, workspace_id: int, now: datetime.datetime | None = None) -> int | None:
    """Delete one workspace's expired sessions in batches; returns how many went, None if skipped.

    The workspace row is locked (SKIP LOCKED) for the run, so two runs at once never work on or
    count the same workspace twice: the second skips it. Running again deletes nothing more.
    """
    now = now or timezone.now()
    with transaction.atomic():
        workspace = (
            Workspace.objects.select_for_update(skip_locked=True)
            .filter(pk=workspace_id, retention_days__isnull=False)
            .first()
        )
        if workspace is None or workspace.retention_days is None:
            return None
        cutoff = now - datetime.timedelta(days=workspace.retention_days)
        removed = 0
        while True:
            ids = list(
                Session.objects.filter(workspace=workspace, updated_at__lt=cutoff)
                .order_by("updated_at", "id")
                .values_list("id", flat=True)[:RETENTION_BATCH_SIZE]
            )
            if not ids:
                break
            removed += sessions_delete(session_ids=ids)["sessions"]
        workspace.retention_last_run_at = now
        workspace.retention_last_removed = removed
        workspace.save(update_fields=["retention_last_run_at", "retention_last_removed"])
    if removed:
        logger.info("retention: workspace %s removed %s sessions", workspace_id, removed)
    return removed


def retention_run(*, now: datetime.datetime | None = None) -> dict[int, int]:
    """Run retention for every workspace that has it on; returns {workspace id: sessions removed}."""
    results = {}
    for workspace_id in Workspace.objects.filter(retention_days__isnull=False).values_list("id", flat=True):
        removed = retention_workspace_run(workspace_id=workspace_id, now=now)
        if removed is not None:
            results[workspace_id] = removed
    return results
