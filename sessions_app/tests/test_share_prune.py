"""The nightly prune of expired public links (services.sessions_unshare_expired)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from sessions_app import services
from sessions_app.models import Session

from .factories import SessionFactory

pytestmark = pytest.mark.django_db


def shared(owner, *, expires_in: timedelta | None, **fields):
    """A session shared with a link that expires `expires_in` from now (negative: already expired)."""
    session = SessionFactory(owner=owner, **fields)
    services.session_share(session=session, expires_in=None)
    if expires_in is not None:
        Session.objects.filter(pk=session.pk).update(share_expires_at=timezone.now() + expires_in)
    session.refresh_from_db()
    return session


def public(client, session):
    return client.get(reverse("sessions:public", args=[session.share_slug]))


def test_expired_links_are_turned_off_others_stay(client, user, other_user):
    expired = [shared(user, expires_in=-timedelta(minutes=1)), shared(other_user, expires_in=-timedelta(days=40))]
    later = shared(user, expires_in=timedelta(hours=1))
    forever = shared(user, expires_in=None)
    private = SessionFactory(owner=user, share_expires_at=timezone.now() - timedelta(days=3))
    urls = {s.pk: reverse("sessions:public", args=[s.share_slug]) for s in [*expired, later, forever]}
    assert [client.get(urls[s.pk]).status_code for s in expired] == [404, 404]  # already, before the prune

    assert services.sessions_unshare_expired() == 2

    for session in expired:
        was = session.share_expires_at
        session.refresh_from_db()
        assert not session.is_public and session.share_slug is None
        assert session.share_expires_at == was  # kept: the page says when the link expired
        assert client.get(urls[session.pk]).status_code == 404
    for session in (later, forever):
        slug = session.share_slug
        session.refresh_from_db()
        assert session.is_public and session.share_slug == slug
        assert client.get(urls[session.pk]).status_code == 200
    assert Session.objects.get(pk=private.pk).share_slug is None


def test_batches_take_every_link_and_a_second_run_turns_off_nothing(monkeypatch, user):
    monkeypatch.setattr(services, "SHARE_PRUNE_BATCH", 2)
    for days in range(1, 6):
        shared(user, expires_in=-timedelta(days=days))
    kept = shared(user, expires_in=timedelta(days=1))

    assert services.sessions_unshare_expired() == 5
    assert list(Session.objects.filter(is_public=True).values_list("pk", flat=True)) == [kept.pk]
    assert services.sessions_unshare_expired() == 0


def test_the_owner_still_sees_that_the_link_expired_and_can_share_again(logged_in, user):
    session = shared(user, expires_in=-timedelta(hours=2))
    page = reverse("sessions:detail", args=[session.pk])
    assert "The previous link expired on" in logged_in.get(page).content.decode()
    old = session.share_slug

    services.sessions_unshare_expired()

    html = logged_in.get(page).content.decode()
    assert "The previous link expired on" in html and "Create public link" in html
    assert f"/s/{old}" not in html
    logged_in.post(reverse("sessions:share", args=[session.pk]), {"action": "share"})
    session.refresh_from_db()
    assert session.share_active and session.share_slug not in (None, old) and session.share_expires_at is None


def test_stopping_or_an_admin_unshare_is_not_called_an_expiry(logged_in, user):
    stopped = shared(user, expires_in=timedelta(days=1))
    services.session_unshare(session=stopped)
    made_private = shared(user, expires_in=timedelta(days=1))
    Session.objects.filter(pk=made_private.pk).update(is_public=False, share_slug=None)  # the admin action
    for session in (stopped, made_private):
        html = logged_in.get(reverse("sessions:detail", args=[session.pk])).content.decode()
        assert "Create public link" in html and "The previous link expired" not in html


def test_each_batch_is_read_through_the_partial_index(user):
    batch = (
        Session.objects.filter(is_public=True, share_expires_at__lte=timezone.now())
        .order_by("share_expires_at")
        .values("pk")[:5000]
    )
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny test table would be read whole anyway
        assert "session_share_expiry_idx" in batch.explain()


def test_the_celery_task_runs_nightly(user, settings):
    from sessions_app.tasks import expired_shares_prune  # noqa: PLC0415 - the task module, imported where it is run

    session = shared(user, expires_in=-timedelta(days=1))
    assert expired_shares_prune.apply().get() == 1
    session.refresh_from_db()
    assert not session.is_public
    entry = settings.CELERY_BEAT_SCHEDULE["expired-shares-prune"]
    assert entry["task"] == "sessions_app.tasks.expired_shares_prune"
    assert entry["schedule"].hour == {settings.OPENSYNC_RETENTION_HOUR}
