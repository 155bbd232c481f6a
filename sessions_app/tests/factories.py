import factory

from accounts.models import Workspace
from accounts.tests.factories import UserFactory
from sessions_app.models import Message, Part, Session, Source
from sessions_app.services import sessions_added


class SessionFactory(factory.django.DjangoModelFactory):
    """A session in its owner's personal workspace unless `workspace=` is given.

    `cost=` is the cost the plugin reported; once created, the session is priced by the cost
    engine and added to the rollups, as the sync would do.
    """

    class Meta:
        model = Session

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        if "cost" in kwargs:
            kwargs["reported_cost"] = kwargs.pop("cost")
        session = super()._create(model_class, *args, **kwargs)
        sessions_added([session.pk])
        session.refresh_from_db()
        return session

    owner = factory.SubFactory(UserFactory)
    workspace = factory.LazyAttribute(lambda o: Workspace.objects.get(created_by=o.owner, is_personal=True))
    external_id = factory.Sequence(lambda n: f"ses_{n:06d}")
    title = factory.Sequence(lambda n: f"Session {n}")
    source = Source.CLAUDE_CODE
    model = "claude-sonnet-4-20250514"
    provider = "anthropic"
    project_name = "demo-app"
    project_path = "/home/dev/proj/demo-app"


class MessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Message

    session = factory.SubFactory(SessionFactory)
    external_id = factory.Sequence(lambda n: f"msg_{n:06d}")
    role = "user"
    text_content = factory.Sequence(lambda n: f"Message {n}")


class PartFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Part

    message = factory.SubFactory(MessageFactory)
    type = "text"
    content = "hello"
    order = factory.Sequence(lambda n: n)
