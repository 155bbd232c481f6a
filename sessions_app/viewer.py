"""What the session viewer shows, for the viewer itself, the review queue (evals) and the public
page: the window of messages a request asks for, sharing, labels, picks and bookmarks.

It lives beside the views rather than in one of them so that evals' views can build the same
viewer without importing sessions_app's views (which import evals': a cycle).
"""

from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from accounts.selectors import plugin_base_url
from evals.selectors import attach_labels
from opensync.inputs import whole_number
from search.selection import viewer_marks

from . import exports, selectors
from .forms import ShareForm
from .models import Message, Session
from .rendering import message_blocks
from .selectors import EDIT, REVIEW

MESSAGE_PAGE_SIZE = 100


def message_window(request: HttpRequest, session: Session, *, fragment: bool = False, public: bool = False) -> dict:
    """Which messages a viewer request shows: from the start, from `?at=<message id>`,
    after `?after=<cursor>` (load more) or before `?before=<cursor>` (load earlier).

    A fragment extends the page in one direction only, so it carries only that direction's link.
    Each message comes with the URL of its whole text (Copy, "Show the full text"): the page
    itself carries only what it shows. The public page names a message by its position in the
    shared session, never by its id.
    """
    before = selectors.decode_message_position(request.GET.get("before"))
    after = selectors.decode_message_position(request.GET.get("after"))
    at = whole_number(request.GET.get("at"))
    target = None
    if at is not None:
        target = session.messages.filter(pk=at).only("created_at", "order").first()
    if before:
        rows, more_before = selectors.messages_page(session, before=before, size=MESSAGE_PAGE_SIZE)
        # With HTMX the page below is already on screen; a plain page links on to it.
        more_after = not fragment and bool(rows)
    else:
        if target is not None:
            # start at the target itself: just after (its time, its order - 1)
            after = (target.created_at, target.order - 1)
        rows, more_after = selectors.messages_page(session, after=after, size=MESSAGE_PAGE_SIZE)
        more_before = bool(after) and bool(rows) and not fragment and _has_before(session, rows[0])
    return {
        "items": [(m, message_blocks(m.text_content, list(m.parts.all())), text_url(session, m, public)) for m in rows],
        "before_cursor": selectors.message_position(rows[0]) if rows and more_before else None,
        "after_cursor": selectors.message_position(rows[-1]) if rows and more_after else None,
        "show_before": more_before,
        "show_after": more_after,
        "target": target.pk if target else None,
    }


def text_url(session: Session, message: Message, public: bool) -> str:
    if public:
        return reverse("sessions:public-message-text", args=[session.share_slug, selectors.message_position(message)])
    return reverse("sessions:message-text", args=[session.pk, message.pk])


def message_text_response(message: Message) -> HttpResponse:
    """A message's whole text as Markdown, what Copy puts on the clipboard. Plain text: a
    browser shows it as it is (never as HTML), fast even at megabytes."""
    response = HttpResponse(exports.message_markdown(message), content_type="text/plain; charset=utf-8")
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _has_before(session: Session, first: Message) -> bool:
    _, more = selectors.messages_page(session, before=(first.created_at, first.order), size=0)
    return more


def share_context(request: HttpRequest, session: Session) -> dict:
    can_edit = selectors.viewer_can(request.user, session, EDIT)
    public_url = None
    if session.share_slug:
        public_url = plugin_base_url(request) + reverse("sessions:public", args=[session.share_slug])
    return {
        "session": session,
        "can_edit": can_edit,
        "share_form": ShareForm(initial={"action": "share"}) if can_edit else None,
        "public_url": public_url,
    }


def viewer_context(request: HttpRequest, session: Session, *, fragment: bool = False) -> dict:
    """Everything the viewer's conversation needs: the message window, costs, reviewers' labels
    on assistant turns, sharing, and the context page's picks and bookmarks."""
    window = message_window(request, session, fragment=fragment)
    selectors.attach_message_costs(session, [m for m, _, _ in window["items"]])
    can_review = selectors.viewer_can(request.user, session, REVIEW)
    if can_review:
        attach_labels([m for m, _, _ in window["items"] if m.role == "assistant"])
    return {
        "can_label": can_review,
        **share_context(request, session),
        "messages_url": reverse("sessions:messages", args=[session.pk]),
        **window,
        **viewer_marks(request, session, [m.pk for m, _, _ in window["items"]]),
    }
