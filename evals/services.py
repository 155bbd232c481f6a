"""Writes of the review: one entry point, `session_review`, used by every review control.

Callers check the permission first (sessions_app.selectors.get_session_for_user with
action=REVIEW: the owner, a reviewer or an admin of the workspace).
"""

import logging
import re
from collections import defaultdict

from django.db import transaction
from django.utils import timezone

from opensync.inputs import unstorable_message
from sessions_app import rollups
from sessions_app.message_text import message_text
from sessions_app.models import EvalStatus, Message, Part, Session
from sessions_app.rendering import TEXT_TYPES

from .exchanges import PartRow
from .language import detect_language
from .models import EvalTag, MessageLabel, ReviewEvent, Verdict

logger = logging.getLogger(__name__)

REVIEW_FIELDS = ("eval_ready", "eval_status", "eval_tags", "eval_notes", "expected_output")
# Every review column on sessions_app.Session: this module is the only writer of them.
REVIEW_COLUMNS = (*REVIEW_FIELDS, "reviewed_at", "reviewed_by")
MAX_TAGS = 20
MAX_TAG_CHARS = 50
MAX_NOTES_CHARS = 20_000
MAX_EXPECTED_CHARS = 200_000
LANGUAGE_SAMPLE = 2_000  # messages read to detect a session's language


class ReviewError(ValueError):
    """A change that can't be stored; the message is for the person who made it."""


def normalise_tags(tags) -> list[str]:
    """Lower case, inner whitespace collapsed, duplicates dropped (first order kept)."""
    if isinstance(tags, str):
        tags = tags.split(",")
    out: list[str] = []
    for tag in tags or []:
        tag = re.sub(r"\s+", " ", str(tag)).strip().lower()
        if not tag:
            continue
        if problem := unstorable_message(tag):
            raise ReviewError(f"A tag can't be stored: {problem}")
        if len(tag) > MAX_TAG_CHARS:
            raise ReviewError(f"A tag can have at most {MAX_TAG_CHARS} characters: “{tag[:60]}…”.")
        if tag not in out:
            out.append(tag)
    if len(out) > MAX_TAGS:
        raise ReviewError(f"A session can have at most {MAX_TAGS} tags.")
    return out


def _long_text(value, *, what: str, limit: int) -> str:
    """Free text from a form: Windows line ends made Unix ones, at most `limit` characters."""
    value = (value or "").replace("\r\n", "\n")
    if problem := unstorable_message(value):
        raise ReviewError(f"{what} can't be stored: {problem}")
    if len(value) > limit:
        raise ReviewError(f"{what} can have at most {limit:,} characters.")
    return value


def _clean(field: str, value):
    if field == "eval_ready":
        if not isinstance(value, bool):
            raise ReviewError("Eval-ready must be true or false.")
        return value
    if field == "eval_status":
        value = value or None
        if value is not None and value not in EvalStatus.values:
            raise ReviewError(f"Unknown status “{value}”; use one of {', '.join(EvalStatus.values)}.")
        return value
    if field == "eval_tags":
        return normalise_tags(value)
    if field == "eval_notes":
        return _long_text(value, what="Notes", limit=MAX_NOTES_CHARS)
    if field == "expected_output":
        value = _long_text(value, what="The expected output", limit=MAX_EXPECTED_CHARS)
        return value if value.strip() else None
    raise ReviewError(f"“{field}” is not a review field.")


def session_language(session_id: int) -> str | None:
    """The language of the fenced code in the text of the session's first LANGUAGE_SAMPLE
    messages (sessions_app.message_text: text content and text parts), in two queries."""
    messages = list(
        Message.objects.filter(session_id=session_id)
        .order_by("created_at", "order")
        .values_list("id", "text_content")[:LANGUAGE_SAMPLE]
    )
    parts: dict[int, list[PartRow]] = defaultdict(list)
    rows = (
        Part.objects.filter(message_id__in=[pk for pk, _ in messages], type__in=TEXT_TYPES)
        .order_by("message_id", "order")
        .values_list("message_id", "type", "content")
    )
    for message_id, kind, content in rows.iterator(chunk_size=500):
        parts[message_id].append(PartRow(kind, content))
    return detect_language(message_text(text, parts.get(pk, ())) for pk, text in messages)


@transaction.atomic
def session_review(*, session: Session, actor, add_tags=(), remove_tags=(), **changes) -> list[ReviewEvent]:
    """Apply review changes to `session` and record each real change (who, old, new, when).

    `add_tags` / `remove_tags` edit the stored tags (under the lock, so two reviewers adding tags
    at once both keep theirs); `eval_tags=` replaces them.

    Idempotent: values equal to the stored ones change nothing and record nothing, so a retried
    request is harmless. The row is locked, so two reviewers' changes never overwrite each other
    with stale values. Marking a session eval-ready detects its language if it isn't known.
    """
    clean = {field: _clean(field, value) for field, value in changes.items()}
    add, remove = normalise_tags(add_tags), set(normalise_tags(remove_tags))
    locked = Session.objects.select_for_update().get(pk=session.pk)
    if add or remove:
        base = clean.get("eval_tags", locked.eval_tags)
        clean["eval_tags"] = normalise_tags([tag for tag in [*base, *add] if tag not in remove])
    events = []
    for field, value in clean.items():
        old = getattr(locked, field)
        if old == value:
            continue
        setattr(locked, field, value)
        events.append(ReviewEvent(session_id=locked.pk, actor=actor, field=field, old=old, new=value))
    if not events:
        return []
    locked.reviewed_at, locked.reviewed_by = timezone.now(), actor
    fields = [event.field for event in events] + ["reviewed_at", "reviewed_by"]
    if clean.get("eval_ready") and locked.detected_language is None:
        locked.detected_language = session_language(locked.pk)
        fields.append("detected_language")
    if "eval_status" in fields:  # Analytics counts the statuses in the rollups
        with rollups.tracking([locked.pk]):
            locked.save(update_fields=fields)
    else:
        locked.save(update_fields=fields)
    ReviewEvent.objects.bulk_create(events)
    if "eval_tags" in clean:
        EvalTag.objects.bulk_create(
            [EvalTag(workspace_id=locked.workspace_id, name=name) for name in clean["eval_tags"]],
            ignore_conflicts=True,
        )
    for name in fields:  # the caller's object shows the new state
        setattr(session, name, getattr(locked, name))
    return events


@transaction.atomic
def sessions_mark_eval_ready(*, session_ids: list[int], actor) -> int:
    """The session list's bulk action: mark many sessions eval-ready at once, recording the change
    for those not already eval-ready. Returns how many changed."""
    changed = list(
        Session.objects.select_for_update()
        .filter(pk__in=session_ids, eval_ready=False)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    Session.objects.filter(pk__in=changed).update(eval_ready=True, reviewed_at=timezone.now(), reviewed_by=actor)
    ReviewEvent.objects.bulk_create(
        [ReviewEvent(session_id=pk, actor=actor, field="eval_ready", old=False, new=True) for pk in changed]
    )
    return len(changed)


@transaction.atomic
def message_label(*, message: Message, actor, **changes) -> list[ReviewEvent]:
    """Label an assistant turn (`verdict`: good, bad or "" for none) and/or set its corrected
    answer ("" removes it). Idempotent; each real change is recorded in the session's history."""
    if message.role != "assistant":
        raise ReviewError("Only assistant turns can be labelled.")
    clean = {}
    for field, value in changes.items():
        if field == "verdict":
            value = value or None
            if value is not None and value not in Verdict.values:
                raise ReviewError(f"Unknown label “{value}”; use good or bad.")
        elif field == "corrected_answer":
            value = _long_text(value, what="A corrected answer", limit=MAX_EXPECTED_CHARS)
            value = value if value.strip() else None
        else:
            raise ReviewError(f"“{field}” is not a label field.")
        clean[field] = value
    Session.objects.select_for_update().filter(pk=message.session_id).first()  # one reviewer at a time
    label = MessageLabel.objects.filter(message=message).first() or MessageLabel(
        session_id=message.session_id, message=message
    )
    events = []
    for field, value in clean.items():
        old = getattr(label, field)
        if old != value:
            setattr(label, field, value)
            events.append(
                ReviewEvent(
                    session_id=message.session_id,
                    actor=actor,
                    field=f"message_{field}",
                    old={"message": message.pk, "value": old},
                    new={"message": message.pk, "value": value},
                )
            )
    if events:
        label.labeled_by = actor
        label.save()
        ReviewEvent.objects.bulk_create(events)
    return events
