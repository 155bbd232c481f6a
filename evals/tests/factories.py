"""Rows of the evals models for tests that need one as a precondition. Reviews and labels made by
the code under test go through evals.services (which also updates the session's review fields);
these factories only write the row."""

import factory

from accounts.models import Workspace
from accounts.tests.factories import UserFactory, WorkspaceFactory
from evals.models import EvalTag, ExportJob, MessageLabel, ReviewEvent, Verdict
from sessions_app.tests.factories import MessageFactory, SessionFactory


class EvalTagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EvalTag

    workspace = factory.SubFactory(WorkspaceFactory)
    name = factory.Sequence(lambda n: f"tag-{n}")


class ReviewEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReviewEvent

    session = factory.SubFactory(SessionFactory)
    actor = factory.LazyAttribute(lambda o: o.session.owner)
    field = "eval_status"
    old = None
    new = "golden"


class MessageLabelFactory(factory.django.DjangoModelFactory):
    """A label on an assistant turn; `message=` decides the session."""

    class Meta:
        model = MessageLabel

    message = factory.SubFactory(MessageFactory, role="assistant")
    session = factory.LazyAttribute(lambda o: o.message.session)
    verdict = Verdict.GOOD
    labeled_by = factory.LazyAttribute(lambda o: o.session.owner)


class ExportJobFactory(factory.django.DjangoModelFactory):
    """An export job that was asked for but not built: pending, no file."""

    class Meta:
        model = ExportJob

    created_by = factory.SubFactory(UserFactory)
    workspace = factory.LazyAttribute(lambda o: Workspace.objects.get(created_by=o.created_by, is_personal=True))
    format = "deepeval"
