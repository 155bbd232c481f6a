"""The context being assembled on the /context page: its picks, budget and format, kept in
request.session per workspace (so they survive new searches and reloads, and the session viewer
can add to them too)."""

from django.http import HttpRequest

from . import context
from .models import Bookmark

MAX_PICKS = 50  # sessions in one context
MAX_MESSAGES_PER_PICK = 50
DOWNLOADS = {
    context.TEXT: ("txt", "text/plain"),
    context.MARKDOWN: ("md", "text/markdown"),
    context.XML: ("xml", "application/xml"),
}


class Selection:
    """The picks and options of the context being assembled, kept in request.session per workspace."""

    KEY = "context"

    def __init__(self, request: HttpRequest, workspace):
        self.request, self.workspace_key = request, str(workspace.pk)
        state = request.session.get(self.KEY, {}).get(self.workspace_key, {})
        try:
            self.picks = [
                context.Pick(int(session), bool(whole), tuple(int(m) for m in messages))
                for session, whole, messages in state.get("picks", [])
            ]
            self.budget = int(state.get("budget", context.DEFAULT_BUDGET))
        except (TypeError, ValueError):  # a shape from an older version: start over
            self.picks, self.budget = [], context.DEFAULT_BUDGET
        self.format = state.get("format") if state.get("format") in DOWNLOADS else context.TEXT

    def save(self) -> None:
        store = dict(self.request.session.get(self.KEY, {}))
        store[self.workspace_key] = {
            "picks": [[p.session_id, p.whole, list(p.message_ids)] for p in self.picks],
            "budget": self.budget,
            "format": self.format,
        }
        self.request.session[self.KEY] = store

    def _find(self, session_id: int) -> int | None:
        return next((i for i, pick in enumerate(self.picks) if pick.session_id == session_id), None)

    def has_session(self, session_id: int) -> bool:
        return any(pick.session_id == session_id and pick.whole for pick in self.picks)

    def has_message(self, message_id: int) -> bool:
        return any(message_id in pick.message_ids for pick in self.picks)

    def add(self, session_id: int, message_id: int | None) -> str | None:
        """Adds; returns an error for a person to read when a limit is reached."""
        index = self._find(session_id)
        if index is None:
            if len(self.picks) >= MAX_PICKS:
                return f"A context holds at most {MAX_PICKS} sessions; remove one first."
            self.picks.append(context.Pick(session_id, message_id is None, (message_id,) if message_id else ()))
            return None
        pick = self.picks[index]
        if message_id is None:
            self.picks[index] = context.Pick(session_id, True, pick.message_ids)
        elif message_id not in pick.message_ids:
            if len(pick.message_ids) >= MAX_MESSAGES_PER_PICK:
                return f"At most {MAX_MESSAGES_PER_PICK} single messages per session; add the whole session instead."
            self.picks[index] = context.Pick(session_id, pick.whole, (*pick.message_ids, message_id))
        return None

    def remove(self, session_id: int, message_id: int | None) -> None:
        index = self._find(session_id)
        if index is None:
            return
        pick = self.picks[index]
        if message_id is None:  # the session goes, with any messages picked from it
            remaining = None
        else:
            ids = tuple(m for m in pick.message_ids if m != message_id)
            remaining = context.Pick(session_id, pick.whole, ids) if (pick.whole or ids) else None
        if remaining is None:
            del self.picks[index]
        else:
            self.picks[index] = remaining

    def clear(self) -> None:
        self.picks = []


def viewer_marks(request: HttpRequest, session, message_ids: list[int]) -> dict:
    """For the session viewer: what of this session is in the context or bookmarked (one query)."""
    selection = Selection(request, session.workspace)
    marked = set(Bookmark.objects.filter(user=request.user, session=session).values_list("message_id", flat=True))
    return {
        "in_context": selection.has_session(session.pk),
        "context_messages": {m for m in message_ids if selection.has_message(m)},
        "bookmarked": None in marked,
        "bookmarked_messages": marked - {None},
    }
