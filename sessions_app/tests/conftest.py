import pytest

from accounts.models import Membership, Role
from accounts.services import workspace_create_team


@pytest.fixture
def team(user, other_user):
    """A team workspace created by `other_user` (its admin) where `user` is a member."""
    workspace = workspace_create_team(user=other_user, name="Platform team")
    Membership.objects.create(user=user, workspace=workspace, role=Role.MEMBER)
    return workspace
