from collections.abc import Iterable

import factory

from accounts.models import ApiRequestLog, Membership, Role, User, Workspace
from accounts.services import workspace_create_team


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    password = "correct horse battery"

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        # Through the manager, so users get their personal workspace as in real sign-ups.
        return model_class.objects.create_user(*args, **kwargs)


class WorkspaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Workspace

    name = factory.Sequence(lambda n: f"Team {n}")
    slug = factory.Sequence(lambda n: f"team-{n}")
    created_by = factory.SubFactory(UserFactory)


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    workspace = factory.SubFactory(WorkspaceFactory)
    role = Role.MEMBER


def team_with(
    owner: User,
    *,
    name: str = "Team",
    admin: User | Iterable[User] = (),
    reviewer: User | Iterable[User] = (),
    member: User | Iterable[User] = (),
    **fields,
) -> Workspace:
    """A team workspace `owner` created (and so administers, as in the app), with each person given
    in that role: `team_with(other_user, member=user)` is "user is a member of other_user's team".
    Other `fields` (timezone, monthly_budget...) are set on the workspace."""
    workspace = workspace_create_team(user=owner, name=name)
    for role, people in ((Role.ADMIN, admin), (Role.REVIEWER, reviewer), (Role.MEMBER, member)):
        for person in [people] if isinstance(people, User) else people:
            MembershipFactory(user=person, workspace=workspace, role=role)
    if fields:
        for field, value in fields.items():
            setattr(workspace, field, value)
        workspace.save(update_fields=list(fields))
    return workspace


class ApiRequestLogFactory(factory.django.DjangoModelFactory):
    """One logged API request made with `api_key` (its user and workspace follow)."""

    class Meta:
        model = ApiRequestLog

    user_id = factory.SelfAttribute("api_key.user_id")
    workspace_id = factory.SelfAttribute("api_key.workspace_id")
    method = "POST"
    endpoint = "/sync/session"
    status_code = 200
    latency_ms = 5
