import os

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
