import time

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Workspace
from search.embeddings import EmbeddingError, EmbeddingTransientError, get_provider, services
from search.models import MessageChunkEmbedding, SessionEmbedding
from sessions_app.models import Session

RETRIES = 5  # per session, on provider trouble that may pass (network, 429, 5xx)


class Command(BaseCommand):
    help = (
        "Compute the embeddings of a workspace's sessions that are missing or stale. Resumable: unchanged "
        "text is skipped, so running it again continues where it stopped. After a change of provider, model "
        "or dimensions, --rebuild first drops the old vectors (resizing the columns), as a worker does by itself. "
        "--rebuild also recomputes everything of the workspaces given."
    )

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--workspace", help="Workspace slug or id")
        target.add_argument("--all", dest="every", action="store_true", help="Every workspace")
        parser.add_argument(
            "--rebuild",
            action="store_true",
            help="Delete the workspace's vectors first and compute them all again. If it is interrupted, "
            "run the command again without --rebuild to continue.",
        )
        parser.add_argument("--batch", type=int, default=None, help="Texts per request to the provider")

    def handle(self, *args, workspace, every, rebuild, batch, **options):
        provider = get_provider()
        if provider is None:
            raise CommandError("Embeddings are turned off (OPENSYNC_EMBEDDINGS_PROVIDER=none; see README).")
        if batch is not None and batch < 1:
            raise CommandError("--batch must be at least 1")
        workspaces = self._workspaces(workspace, every)

        if services.vector_column_dimensions() is None:
            raise CommandError("The embedding tables are missing or inconsistent: run `manage.py migrate` first.")
        stored = services.stored_signature()
        signature = services.provider_signature(provider)
        switch = (stored and stored != signature) or services.vector_column_dimensions() != provider.dimensions
        if switch and not rebuild:
            raise CommandError(
                f"The stored vectors come from {stored or 'vectors of another size'}, not {signature}. Run again with "
                "--rebuild to drop them (every workspace's) and embed with this configuration; a worker with the "
                "same configuration does that by itself. If this shell doesn't have the server's embeddings "
                "settings, use the server's."
            )
        try:
            dropped = services.embedding_space_switch(provider)
        except EmbeddingError as exc:
            raise CommandError(str(exc)) from exc
        if dropped:
            self.stderr.write(
                f"The stored vectors came from {stored or 'another model'}, not {signature}: they were dropped "
                "(every workspace's; the worker's backfill re-embeds the others, or run with --all)."
            )
        elif rebuild:
            ids = [w.pk for w in workspaces]
            MessageChunkEmbedding.objects.filter(workspace_id__in=ids).delete()
            SessionEmbedding.objects.filter(workspace_id__in=ids).delete()

        for target in workspaces:
            self._embed_workspace(target, provider, batch)

    def _workspaces(self, workspace: str | None, every: bool) -> list[Workspace]:
        if every:
            return list(Workspace.objects.order_by("pk"))
        found = Workspace.objects.filter(slug=workspace).first()
        if found is None and workspace.isdigit():
            found = Workspace.objects.filter(pk=int(workspace)).first()
        if found is None:
            raise CommandError(f"No workspace with slug or id {workspace!r}")
        return [found]

    def _embed_workspace(self, workspace: Workspace, provider, batch: int | None) -> None:
        session_ids = list(Session.objects.filter(workspace=workspace).order_by("pk").values_list("pk", flat=True))
        progress = Progress(self.stderr, label=f"{workspace.slug}", total=len(session_ids))
        totals = services.EmbedStats()
        for session_id in session_ids:
            for attempt in range(RETRIES + 1):
                try:
                    with services.session_lock(session_id, wait=True) as lease:
                        stats = services.session_embed(
                            session_id=session_id, provider=provider, batch_size=batch, lease=lease
                        )
                    break
                except EmbeddingTransientError as exc:
                    if attempt == RETRIES:
                        progress.finish(totals)
                        raise CommandError(
                            f"{exc}\nStopped at session {session_id}. Run the same command again to continue: "
                            "what is done is kept."
                        ) from exc
                    wait = min(60, 2**attempt)
                    progress.note(f"{exc}; retrying in {wait}s")
                    time.sleep(wait)
                except EmbeddingError as exc:
                    progress.finish(totals)
                    raise CommandError(str(exc)) from exc
            if stats is not None:
                totals.add(stats)
            progress.step(totals)
        progress.finish(totals)


class Progress:
    """A progress bar on stderr: redrawn in place on a terminal, a line every few seconds otherwise."""

    WIDTH = 30
    EVERY = 5.0  # seconds between lines when not on a terminal

    def __init__(self, stream, *, label: str, total: int) -> None:
        self.stream = stream
        self.label = label
        self.total = total
        self.done = 0
        self.tty = getattr(getattr(stream, "_out", stream), "isatty", lambda: False)()
        self.last = 0.0
        self.started = time.monotonic()

    def _line(self, stats: services.EmbedStats) -> str:
        fraction = self.done / self.total if self.total else 1.0
        filled = int(fraction * self.WIDTH)
        return (
            f"{self.label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {self.done}/{self.total} sessions "
            f"{fraction:.0%}, {stats.chunks_embedded} chunks embedded, {stats.chunks_unchanged} unchanged, "
            f"{stats.requests} requests"
        )

    def step(self, stats: services.EmbedStats) -> None:
        self.done += 1
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r" + self._line(stats), ending="")
            self.stream.flush()
        elif now - self.last >= self.EVERY or self.done == self.total:
            self.stream.write(self._line(stats))
            self.last = now

    def note(self, message: str) -> None:
        self.stream.write(("\n" if self.tty else "") + message)

    def finish(self, stats: services.EmbedStats) -> None:
        if self.tty:
            self.stream.write("")
        elif self.done != self.total or self.total == 0:
            self.stream.write(self._line(stats))
        elapsed = time.monotonic() - self.started
        self.stream.write(f"{self.label}: {self.done}/{self.total} sessions in {elapsed:.1f}s")
