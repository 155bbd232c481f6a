"""Retention: the nightly job that deletes a workspace's sessions idle for longer than its setting.

Last activity is `Session.updated_at`: every sync that adds messages moves it (and the session
list is ordered by it, with an index on (workspace, updated_at)), whereas `started_at` would
delete a long-running session that is still being written to.
"""

import datetime
import logging

from django.db import models, transaction
from django.utils import timezone

from sessions_app.models import Session
from sessions_app.services import sessions_delete

from .models import Workspace

logger = logging.getLogger(__name__)

# Sessions per delete: each batch is one short transaction (messages and parts go set-based).
RETENTION_BATCH_SIZE = 200
# A claim older than this belongs to a run that died (the task's hard time limit is shorter).
RETENTION_CLAIM_TIMEOUT = datetime.timedelta(hours=2)


def _claim(workspace_id: int, now: datetime.datetime) -> int | None:
    """Mark the workspace as being worked on; returns its retention days, or None if off or taken.

    A short transaction with SKIP LOCKED, so a concurrent run never waits: it moves on. The claim
    is a column, not a session-level advisory lock, which pgbouncer's transaction pooling breaks.
    """
    with transaction.atomic():
        workspace = (
            Workspace.objects.select_for_update(skip_locked=True)
            .filter(pk=workspace_id, retention_days__isnull=False)
            .filter(
                models.Q(retention_running_since__isnull=True)
                | models.Q(retention_running_since__lt=now - RETENTION_CLAIM_TIMEOUT)
            )
            .first()
        )
        if workspace is None:
            return None
        workspace.retention_running_since = now
        workspace.save(update_fields=["retention_running_since"])
        return workspace.retention_days


def retention_workspace_run(*, workspace_id: int, now: datetime.datetime | None = None) -> int | None:
    """Delete one workspace's expired sessions in batches; returns how many went, None if skipped.

    The run claims the workspace first, so two runs at once never work on or count the same
    workspace twice: the second skips it. Each batch is its own transaction (a crash keeps what
    went, the next run deletes the rest). Running again deletes nothing more.
    """
    now = now or timezone.now()
    days = _claim(workspace_id, now)
    if days is None:
        return None
    cutoff = now - datetime.timedelta(days=days)
    removed = 0
    try:
        while True:
            ids = list(
                Session.objects.filter(workspace_id=workspace_id, updated_at__lt=cutoff)
                .order_by("updated_at", "id")
                .values_list("id", flat=True)[:RETENTION_BATCH_SIZE]
            )
            if not ids:
                break
            removed += sessions_delete(session_ids=ids)["sessions"]
        Workspace.objects.filter(pk=workspace_id).update(
            retention_last_run_at=now, retention_last_removed=removed, retention_running_since=None
        )
    except BaseException:
        # let the next run take it at once rather than after the claim timeout
        Workspace.objects.filter(pk=workspace_id).update(retention_running_since=None)
        raise
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
