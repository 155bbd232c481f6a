"""`manage.py embeddings`: backfill with progress, resumable, --rebuild, resizing the columns."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.tests.factories import WorkspaceFactory
from search.embeddings import services
from search.management.commands import embeddings as command
from search.models import MessageChunkEmbedding, SessionEmbedding
from sessions_app.tests.factories import MessageFactory, SessionFactory

from .fake_embeddings_server import FakeEmbeddingsServer
from .test_embeddings import COLUMN_DIMENSIONS

pytestmark = pytest.mark.django_db


@pytest.fixture
def provider(settings, monkeypatch):
    server = FakeEmbeddingsServer().start()
    settings.OPENSYNC_EMBEDDINGS_PROVIDER = "openai"
    settings.OPENSYNC_EMBEDDINGS_MODEL = "text-embedding-3-small"
    settings.OPENSYNC_EMBEDDINGS_DIMENSIONS = COLUMN_DIMENSIONS
    settings.OPENSYNC_EMBEDDINGS_BASE_URL = server.url
    settings.OPENSYNC_EMBEDDINGS_API_KEY = "test-key"
    monkeypatch.setattr(services, "_column_dimensions", None)
    monkeypatch.setattr(command.time, "sleep", lambda seconds: None)  # the retry pauses
    yield server
    server.stop()
    services._column_dimensions = None  # a resize inside the test was rolled back with it


@pytest.fixture
def workspace(db):
    """A team workspace with three sessions of two messages each (made without syncing, so
    nothing is embedded yet)."""
    workspace = WorkspaceFactory(slug="acme")
    for i in range(3):
        session = SessionFactory(workspace=workspace, owner=workspace.created_by, title=f"Session {i}")
        MessageFactory(session=session, text_content=f"question {i} about migrations")
        MessageFactory(session=session, role="assistant", text_content=f"answer {i} about indexes")
    return workspace


def run(*args):
    err = StringIO()
    call_command("embeddings", *args, stderr=err, stdout=StringIO())
    return err.getvalue()


def test_backfills_a_workspace_with_progress(provider, workspace):
    other = SessionFactory(title="Not in acme")
    MessageFactory(session=other, text_content="elsewhere")
    output = run("--workspace", "acme")
    assert "acme [##############################] 3/3 sessions 100%, 6 chunks embedded" in output
    assert "acme: 3/3 sessions in" in output
    assert MessageChunkEmbedding.objects.filter(workspace=workspace).count() == 6
    assert SessionEmbedding.objects.filter(workspace=workspace).count() == 3
    assert not MessageChunkEmbedding.objects.filter(session=other).exists()

    # by id too; everything is up to date, so nothing is sent
    sent = len(provider.requests)
    output = run("--workspace", str(workspace.pk), "--batch", "2")
    assert "0 chunks embedded, 6 unchanged, 0 requests" in output
    assert len(provider.requests) == sent


def test_is_resumable(provider, workspace):
    provider.fail_after = 2  # the provider goes down after the first session (chunks + session text)
    with pytest.raises(CommandError, match="Run the same command again to continue"):
        run("--workspace", "acme")
    assert provider.failed == [500] * (command.RETRIES + 1)  # retried, then stopped
    done = set(MessageChunkEmbedding.objects.values_list("session_id", flat=True))
    assert len(done) == 1

    provider.fail_after = None
    sent = len(provider.texts)
    output = run("--workspace", "acme")
    assert "3/3 sessions 100%, 4 chunks embedded, 2 unchanged" in output
    assert len(provider.texts) - sent == 4 + 2  # the other two sessions' chunks and session texts
    assert MessageChunkEmbedding.objects.count() == 6


def test_rebuild_recomputes_everything(provider, workspace):
    run("--workspace", "acme")
    sent = len(provider.texts)
    output = run("--workspace", "acme", "--rebuild")
    assert "6 chunks embedded, 0 unchanged" in output
    assert len(provider.texts) - sent == 6 + 3
    assert MessageChunkEmbedding.objects.count() == 6


def test_a_changed_dimension_resizes_the_columns_and_says_so(provider, settings, workspace):
    run("--workspace", "acme")
    assert services.stored_signature() == f"openai:text-embedding-3-small:{COLUMN_DIMENSIONS}"
    settings.OPENSYNC_EMBEDDINGS_DIMENSIONS = 8
    with pytest.raises(CommandError, match="Run again with --rebuild to drop them"):
        run("--workspace", "acme")  # nothing dropped without being asked
    assert services.stored_signature() == f"openai:text-embedding-3-small:{COLUMN_DIMENSIONS}"
    output = run("--workspace", "acme", "--rebuild")
    assert f"came from openai:text-embedding-3-small:{COLUMN_DIMENSIONS}, not openai:text-embedding-3-small:8" in output
    assert services.vector_column_dimensions() == 8
    assert services.stored_signature() == "openai:text-embedding-3-small:8"
    assert {len(row.embedding) for row in MessageChunkEmbedding.objects.all()} == {8}
    assert provider.requests[-1]["dimensions"] == 8


def test_refuses_without_provider_or_workspace(settings, workspace):
    settings.OPENSYNC_EMBEDDINGS_PROVIDER = "none"
    with pytest.raises(CommandError, match=r"Embeddings are turned off \(OPENSYNC_EMBEDDINGS_PROVIDER=none"):
        run("--workspace", "acme")


def test_unknown_workspace(provider):
    with pytest.raises(CommandError, match="No workspace with slug or id 'nope'"):
        run("--workspace", "nope")
