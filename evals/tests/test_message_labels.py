"""Per-message labels: good/bad and a corrected answer on assistant turns, in the viewer."""

import pytest

from accounts.tests.factories import team_with
from evals.models import MessageLabel, ReviewEvent
from evals.services import ReviewError, message_label
from sessions_app.services import sessions_delete
from sessions_app.tests.factories import MessageFactory, SessionFactory

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def turn(user):
    session = SessionFactory(owner=user)
    MessageFactory(session=session, role="user", text_content="Fix it")
    return MessageFactory(session=session, role="assistant", text_content="Done.")


def url(message) -> str:
    return f"/sessions/{message.session_id}/messages/{message.pk}/label/"


def test_label_and_correct_a_turn_with_history(user, turn):
    message_label(message=turn, actor=user, verdict="bad", corrected_answer="Use a lock.\r\n")
    label = MessageLabel.objects.get(message=turn)
    assert (label.verdict, label.corrected_answer, label.labeled_by) == ("bad", "Use a lock.\n", user)
    assert message_label(message=turn, actor=user, verdict="bad") == []  # idempotent
    message_label(message=turn, actor=user, verdict="", corrected_answer=" ")
    label.refresh_from_db()
    assert label.verdict is None and label.corrected_answer is None
    fields = list(ReviewEvent.objects.order_by("id").values_list("field", "new"))
    assert fields[0] == ("message_verdict", {"message": turn.pk, "value": "bad"})
    assert len(fields) == 4


def test_only_assistant_turns_and_known_verdicts(user, turn):
    prompt = turn.session.messages.get(role="user")
    with pytest.raises(ReviewError, match="Only assistant turns"):
        message_label(message=prompt, actor=user, verdict="good")
    with pytest.raises(ReviewError, match="Unknown label"):
        message_label(message=turn, actor=user, verdict="meh")
    assert not MessageLabel.objects.exists()


def test_the_viewer_shows_the_controls_to_reviewers_and_saves_in_place(logged_in, user, turn):
    page = logged_in.get(f"/sessions/{turn.session_id}/").content.decode()
    assert page.count('class="message-label"') == 1 and "👍 Good" in page  # on the assistant turn only
    body = logged_in.post(url(turn), {"verdict": "good"}, **HX).content.decode()
    assert body.lstrip().startswith(f'<div class="message-label" id="label-{turn.pk}">')
    assert 'aria-pressed="true">👍 Good' in body and "Saved." in body
    body = logged_in.post(url(turn), {"verdict": ""}, **HX).content.decode()  # pressing it again clears
    assert 'aria-pressed="true"' not in body
    body = logged_in.post(url(turn), {"corrected_answer": "Better."}, **HX).content.decode()
    assert ">Better.</textarea>" in body and "(used by exports)" in body
    response = logged_in.post(url(turn), {"verdict": "bad"})
    assert response["Location"] == f"/sessions/{turn.session_id}/?at={turn.pk}#m-{turn.pk}"


def test_members_cannot_label_a_colleagues_session(logged_in, user, other_user):
    team = team_with(other_user, member=user)
    session = SessionFactory(owner=other_user, workspace=team)
    theirs = MessageFactory(session=session, role="assistant")
    assert "message-label" not in logged_in.get(f"/sessions/{session.pk}/").content.decode()
    assert logged_in.post(url(theirs), {"verdict": "good"}, **HX).status_code == 403
    other = SessionFactory(owner=user)
    assert logged_in.post(f"/sessions/{other.pk}/messages/{theirs.pk}/label/", {"verdict": "good"}).status_code == 404


def test_labels_go_with_their_session(user, turn):
    message_label(message=turn, actor=user, verdict="good")
    sessions_delete(session_ids=[turn.session_id])
    assert not MessageLabel.objects.exists()
