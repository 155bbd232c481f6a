"""The review's writes (evals.services.session_review): validation, the change history,
idempotency, the tag vocabulary, language detection, and that the sync still upserts sessions
with the new columns."""

import json

import pytest

from accounts.tests.factories import team_with
from evals.language import detect_language
from evals.models import EvalTag, ReviewEvent
from evals.services import MAX_TAGS, ReviewError, session_review
from sessions_app.models import Session
from sessions_app.services import sessions_delete
from sessions_app.tests.factories import MessageFactory, PartFactory, SessionFactory

pytestmark = pytest.mark.django_db


def test_each_change_is_recorded_with_who_old_new_and_when(user):
    session = SessionFactory(owner=user)
    events = session_review(
        session=session, actor=user, eval_ready=True, eval_status="golden", eval_notes="Clean fix.\r\nShips."
    )
    assert sorted((e.field, e.old, e.new) for e in events) == [
        ("eval_notes", "", "Clean fix.\nShips."),
        ("eval_ready", False, True),
        ("eval_status", None, "golden"),
    ]
    stored = Session.objects.get(pk=session.pk)
    assert stored.eval_ready and stored.eval_status == "golden" and stored.reviewed_by == user
    assert stored.reviewed_at is not None and session.reviewed_at == stored.reviewed_at
    assert ReviewEvent.objects.filter(session=session, actor=user).count() == 3


def test_the_same_values_again_change_nothing(user):
    session = SessionFactory(owner=user)
    session_review(session=session, actor=user, eval_status="correct", expected_output="42")
    reviewed_at = Session.objects.get(pk=session.pk).reviewed_at
    assert session_review(session=session, actor=user, eval_status="correct", expected_output="42") == []
    assert Session.objects.get(pk=session.pk).reviewed_at == reviewed_at
    assert ReviewEvent.objects.count() == 2
    # an emptied expected output is stored as "none", and recorded once
    session_review(session=session, actor=user, expected_output="  ")
    assert Session.objects.get(pk=session.pk).expected_output is None


def test_tags_are_normalised_and_grow_the_workspace_vocabulary(user, personal_workspace):
    session = SessionFactory(owner=user)
    session_review(session=session, actor=user, eval_tags=["  Auth ", "auth", "flaky   tests", ""])
    assert Session.objects.get(pk=session.pk).eval_tags == ["auth", "flaky tests"]
    session_review(session=SessionFactory(owner=user), actor=user, eval_tags="auth, migrations")
    assert list(EvalTag.objects.filter(workspace=personal_workspace).values_list("name", flat=True)) == [
        "auth",
        "flaky tests",
        "migrations",
    ]
    team = team_with(user)
    assert not EvalTag.objects.filter(workspace=team).exists()
    assert session.pk in Session.objects.filter(eval_tags__overlap=["auth"]).values_list("pk", flat=True)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"eval_status": "great"}, "Unknown status"),
        ({"eval_ready": "yes"}, "true or false"),
        ({"eval_tags": ["x" * 51]}, "at most 50 characters"),
        ({"eval_tags": [f"t{i}" for i in range(MAX_TAGS + 1)]}, f"at most {MAX_TAGS} tags"),
        ({"eval_notes": "x" * 20_001}, "at most 20,000 characters"),
        ({"owner": 1}, "not a review field"),
    ],
)
def test_bad_changes_are_refused_and_nothing_is_stored(user, changes, message):
    session = SessionFactory(owner=user)
    with pytest.raises(ReviewError, match=message):
        session_review(session=session, actor=user, **{"eval_ready": True, **changes})
    stored = Session.objects.get(pk=session.pk)
    assert not stored.eval_ready and stored.reviewed_at is None and not ReviewEvent.objects.exists()


def test_marking_eval_ready_detects_the_language_of_the_code_blocks(user):
    session = SessionFactory(owner=user)
    for text in ["```python\nprint(1)\n```", "```json\n{}\n```\n```json\n[]\n```", "```py\nx = 1\n```"]:
        MessageFactory(session=session, text_content=text, search_text=text)
    session_review(session=session, actor=user, eval_ready=True)
    assert Session.objects.get(pk=session.pk).detected_language == "python"


def test_language_detection_reads_the_code_in_text_parts(user):
    """A message with text content and text parts: the code in the parts counts (the text content
    alone used to be read)."""
    session = SessionFactory(owner=user)
    for i in range(2):
        message = MessageFactory(session=session, role="assistant", text_content=f"Here it is ({i}).")
        PartFactory(message=message, type="text", content=f"Here it is ({i}).", order=0)
        PartFactory(message=message, type="text", content="```rust\nfn main() {}\n```", order=1)
    MessageFactory(session=session, text_content="```python\nx = 1\n```")
    session_review(session=session, actor=user, eval_ready=True)
    assert Session.objects.get(pk=session.pk).detected_language == "rust"


@pytest.mark.parametrize(
    "texts, language",
    [
        ([], None),
        (["no code here"], None),
        (["```ts\nlet a = 1\n```", "```tsx\n<A/>\n```", "```bash\nls\n```"], "typescript"),
        (["```json\n{}\n```", "```yaml\na: 1\n```", "```yaml\nb: 2\n```"], "yaml"),  # only data: the most common
        (["~~~rust\nfn main() {}\n~~~"], "rust"),
        (["```app.ts\nlet a = 1\n```"], "typescript"),
        (["```go\n```", "```python\n```"], "go"),  # a tie: by name, whatever the order
        (["```python\n```", "```go\n```"], "go"),
    ],
)
def test_detect_language(texts, language):
    assert detect_language(texts) == language


def test_the_sync_still_upserts_sessions_and_a_review_survives_a_resync(sync_client, user):
    body = {"externalId": "s1", "title": "One"}
    sync_client.post("/sync/session", json.dumps(body), content_type="application/json")
    session = Session.objects.get(external_id="s1")
    assert session.eval_tags == [] and session.eval_notes == ""
    session_review(session=session, actor=user, eval_tags=["auth"], eval_notes="good")
    sync_client.post("/sync/session", json.dumps({**body, "title": "Renamed"}), content_type="application/json")
    session.refresh_from_db()
    assert (session.title, session.eval_tags, session.eval_notes) == ("Renamed", ["auth"], "good")


def test_deleting_a_session_deletes_its_history(user):
    session = SessionFactory(owner=user)
    session_review(session=session, actor=user, eval_ready=True)
    sessions_delete(session_ids=[session.pk])
    assert not ReviewEvent.objects.exists()


def test_a_reviewers_account_going_keeps_the_teams_review_without_the_name(user, other_user):
    team = team_with(other_user)
    session = SessionFactory(owner=other_user, workspace=team)
    session_review(session=session, actor=user, eval_status="golden")
    user.delete()
    session.refresh_from_db()
    assert session.eval_status == "golden" and session.reviewed_by is None
    assert ReviewEvent.objects.get(session=session).actor is None


def test_bulk_eval_ready_records_only_real_changes(user):
    from evals.services import sessions_mark_eval_ready

    fresh, already = SessionFactory(owner=user), SessionFactory(owner=user, eval_ready=True)
    assert sessions_mark_eval_ready(session_ids=[fresh.pk, already.pk], actor=user) == 1
    assert list(ReviewEvent.objects.values_list("session_id", "field", "new")) == [(fresh.pk, "eval_ready", True)]
    assert Session.objects.get(pk=fresh.pk).reviewed_by == user
    assert Session.objects.get(pk=already.pk).reviewed_at is None
