import factory

from accounts.models import Workspace
from accounts.tests.factories import UserFactory
from sessions_app.models import Message, Part, Session, Source


class SessionFactory(factory.django.DjangoModelFactory):
    """A session in its owner's personal workspace unless `workspace=` is given."""

    class Meta:
        model = Session

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
