import os
from dataclasses import dataclass
from typing import Any

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def user(db):
    from accounts.tests.factories import UserFactory

    return UserFactory()


@pytest.fixture
def other_user(db):
    from accounts.tests.factories import UserFactory

    return UserFactory()


@pytest.fixture
def personal_workspace(user):
    from accounts.models import Workspace

    return Workspace.objects.get(created_by=user, is_personal=True)


# --- teams: who is in which workspace, in which role ----------------------------------------------
# One name per shape: `team_as_admin` / `team_as_member` are about `user` (and `logged_in`);
# `team` is the cast of a team for tests about the roles themselves.


@pytest.fixture
def team_as_admin(user):
    """A team workspace `user` created and is the only admin (and only member) of."""
    from accounts.tests.factories import team_with

    return team_with(user, name="Platform team")


@pytest.fixture
def team_as_member(user, other_user):
    """A team workspace created by `other_user` (its admin) where `user` is a plain member."""
    from accounts.tests.factories import team_with

    return team_with(other_user, name="Platform team", member=user)


@dataclass(frozen=True)
class Team:
    """A team workspace and the people around it, one per role."""

    workspace: Any  # accounts.models.Workspace (models can't be imported before Django is set up)
    owner: Any  # created it, so an admin
    admin: Any
    reviewer: Any
    member: Any
    outsider: Any  # a user who is not in the team


@pytest.fixture
def team(db):
    """The personas: `team.owner`, `team.admin`, `team.reviewer`, `team.member`, `team.outsider`
    and `team.workspace` (none of them is `user`)."""
    from accounts.tests.factories import UserFactory, team_with

    owner, admin, reviewer, member, outsider = (UserFactory() for _ in range(5))
    workspace = team_with(owner, name="Persona team", admin=admin, reviewer=reviewer, member=member)
    return Team(workspace, owner, admin, reviewer, member, outsider)


@pytest.fixture
def sync_key(user, personal_workspace):
    from accounts.services import api_key_create

    _, raw = api_key_create(user=user, workspace=personal_workspace, name="test", scope="sync")
    return raw


@pytest.fixture
def sync_client(client, sync_key):
    """A test client that sends the sync key like the plugins do."""
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {sync_key}"
    return client


@pytest.fixture
def logged_in(client, user):
    """The test client, logged in as `user`."""
    client.force_login(user)
    return client


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path_factory):
    """Uploaded and generated files (eval exports) go to a temporary folder, never the data folder."""
    settings.MEDIA_ROOT = tmp_path_factory.getbasetemp() / "media"
