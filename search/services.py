"""Writes of the context page: saved searches and bookmarks. Callers pass objects they have
already scoped to the user's workspace."""

from django.db import IntegrityError, transaction

from .models import Bookmark, SavedSearch


def saved_search_create(*, user, workspace, query: str, mode: str, name: str = "") -> SavedSearch:
    """Idempotent: saving the same query and mode again renames the saved search if a name is given."""
    name = (name or query).strip()[:120]
    saved, created = SavedSearch.objects.get_or_create(
        user=user, workspace=workspace, query=query, mode=mode, defaults={"name": name}
    )
    if not created and name != saved.name:
        saved.name = name
        saved.save(update_fields=["name"])
    return saved


def saved_search_delete(*, saved_search: SavedSearch) -> None:
    saved_search.delete()


def bookmark_set(*, user, session, message=None, on: bool) -> bool:
    """Bookmark (on=True) or un-bookmark the session or one of its messages; idempotent. Returns
    whether it is bookmarked now."""
    lookup = {"user": user, "session": session, "message": message}
    if not on:
        Bookmark.objects.filter(**lookup).delete()
        return False
    try:
        with transaction.atomic():
            Bookmark.objects.get_or_create(**lookup)
    except IntegrityError:  # a concurrent request made it first
        pass
    return True
