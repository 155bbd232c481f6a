"""Rows of the search models (saved searches, bookmarks) for tests that need one as a precondition."""

import factory

from accounts.models import Workspace
from accounts.tests.factories import UserFactory
from search.models import Bookmark, SavedSearch
from sessions_app.tests.factories import SessionFactory


class SavedSearchFactory(factory.django.DjangoModelFactory):
    """A saved search of `user` in their personal workspace unless `workspace=` is given."""

    class Meta:
        model = SavedSearch

    user = factory.SubFactory(UserFactory)
    workspace = factory.LazyAttribute(lambda o: Workspace.objects.get(created_by=o.user, is_personal=True))
    query = factory.Sequence(lambda n: f"query {n}")
    name = factory.LazyAttribute(lambda o: o.query)
    mode = "fulltext"


class BookmarkFactory(factory.django.DjangoModelFactory):
    """A bookmark on a session (`message=` makes it a bookmark on that message of it)."""

    class Meta:
        model = Bookmark

    session = factory.SubFactory(SessionFactory)
    user = factory.LazyAttribute(lambda o: o.session.owner)
    message = None
