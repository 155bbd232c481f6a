"""/s/<slug>: a shared session, read-only, for anyone with the link.

It shows the conversation and its agent/model/token figures, and nothing that identifies the
owner or the workspace (no email, no workspace name, no project path, no other sessions).
A private, revoked or expired link is a plain 404.
"""

from django.db.models import Q
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from opensync.http import HtmxHttpRequest, is_fragment_request, render_page

from .. import selectors
from ..models import Session
from ..viewer import message_text_response, message_window


def shared(slug: str) -> Session:
    session = (
        Session.objects.filter(share_slug=slug, is_public=True)
        .filter(Q(share_expires_at__isnull=True) | Q(share_expires_at__gt=timezone.now()))
        .first()
    )
    if session is None:
        raise Http404("This session is private, expired or deleted.")
    return session


def _no_index(response):
    """Not for search engines, and no Referer to the sites its links lead to."""
    response["X-Robots-Tag"] = "noindex, nofollow"
    return _no_referrer(response)


def _no_referrer(response):
    response["Referrer-Policy"] = "no-referrer"
    return response


@require_GET
def shared_session(request: HtmxHttpRequest, slug: str) -> TemplateResponse:
    session = shared(slug)
    context = {
        "session": session,
        "public": True,
        "messages_url": reverse("sessions:public-messages", args=[slug]),
        **message_window(request, session, public=True),
    }
    return _no_index(render_page(request, "sessions_app/session_public.html", context))


@require_GET
def shared_messages(request: HtmxHttpRequest, slug: str) -> TemplateResponse:
    session = shared(slug)
    if not is_fragment_request(request):
        return redirect(f"{reverse('sessions:public', args=[slug])}?{request.GET.urlencode()}")
    context = {
        "session": session,
        "public": True,
        "messages_url": request.path,
        **message_window(request, session, fragment=True, public=True),
    }
    return _no_index(TemplateResponse(request, "sessions_app/session_detail.html#message-page", context))


@require_GET
def shared_message_text(request: HtmxHttpRequest, slug: str, position: str) -> HttpResponse:
    """One message's whole text (Copy, "Show the full text"), named by its position in the
    shared session (the paging cursors' form), so the page carries no message ids."""
    session = shared(slug)
    at = selectors.decode_message_position(position)
    message = None
    if at is not None:
        message = session.messages.prefetch_related("parts").filter(created_at=at[0], order=at[1]).first()
    if message is None:
        raise Http404("No such message")
    return _no_referrer(message_text_response(message))  # which already says noindex
