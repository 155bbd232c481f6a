"""Reads for sessions. Access rules live here, once:

* view: any member of the session's workspace;
* edit / delete / share: the owner, or an admin of the workspace;
* review: the owner, or a reviewer or admin of the workspace.
Anything the user may not see is a 404, never a 403, so ids leak nothing.
"""

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.contrib.postgres.aggregates import ArrayAgg
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import F, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from accounts.models import Role, User
from accounts.selectors import role_in
from opensync import inputs
from opensync.inputs import whole_number

from .models import Message, PriceOverride, Session
from .pricing import Override, PriceBook, override_rates, price_message

VIEW, EDIT, REVIEW = "view", "edit", "review"


def sessions_for_workspace(workspace) -> QuerySet[Session]:
    return Session.objects.filter(workspace=workspace).select_related("owner").order_by("-updated_at", "-id")


def workspace_members(workspace) -> list | None:
    """The people of a team workspace (for the owner filter); None for a personal one."""
    if workspace.is_personal:
        return None
    return list(User.objects.filter(memberships__workspace=workspace).order_by("name", "email"))


def get_session_for_user(user, session_id, *, action: str = VIEW) -> Session:
    pk = whole_number(str(session_id))
    session = Session.objects.select_related("owner", "workspace").filter(pk=pk).first() if pk is not None else None
    role = role_in(user, session.workspace) if session is not None else None
    if session is None or role is None:
        raise Http404("No such session")
    if not can_with_role(user, session, role, action):
        raise PermissionDenied("You can't change this session.")
    session.viewer_role = role  # the pages show only the actions this user may take
    return session


def can_with_role(user, session: Session, role: str | None, action: str) -> bool:
    """May `user`, whose role in the session's workspace the caller looked up (`role`), do
    `action`? For lists of sessions, where the roles are fetched once for all of them."""
    if action == VIEW or session.owner_id == user.pk or role == Role.ADMIN:
        return True
    return action == REVIEW and role == Role.REVIEWER


def viewer_can(user, session: Session, action: str) -> bool:
    """For a session fetched by get_session_for_user (which puts the viewer's role on it as
    `viewer_role`): may this user also do `action`?"""
    return can_with_role(user, session, session.viewer_role, action)


# --- the session list: filters and keyset pagination ----------------------------------------------

# sort key → (column, nullable). Every sort has a (workspace, column DESC [NULLS LAST], id DESC)
# index; ascending pages scan it backwards. NULL sorts as the smallest value in both directions.
SORTS = {
    "updated": ("updated_at", False),
    "created": ("created_at", False),
    "tokens": ("total_tokens", False),
    "cost": ("cost", True),
    "duration": ("duration_ms", True),
    "messages": ("message_count", False),
}


@dataclass(frozen=True)
class SessionFilters:
    source: str = ""
    project: str = ""
    model: str = ""
    provider: str = ""
    owner: int | None = None
    date_from: date | None = None
    date_to: date | None = None
    eval: str = ""  # "ready", "not_ready", an EvalStatus value, or "unset"
    sort: str = "updated"
    direction: str = "desc"


def filter_sessions(qs: QuerySet[Session], filters: SessionFilters) -> QuerySet[Session]:
    if filters.source:
        qs = qs.filter(source=filters.source)
    if filters.project:
        qs = qs.filter(project_name=filters.project)
    if filters.model:
        qs = qs.filter(model=filters.model)
    if filters.provider:
        qs = qs.filter(provider=filters.provider)
    if filters.owner:
        qs = qs.filter(owner_id=filters.owner)
    tz = timezone.get_current_timezone()
    if filters.date_from:
        qs = qs.filter(created_at__gte=datetime.combine(filters.date_from, time.min, tz))
    if filters.date_to:
        qs = qs.filter(created_at__lt=datetime.combine(filters.date_to + timedelta(days=1), time.min, tz))
    if filters.eval == "ready":
        qs = qs.filter(eval_ready=True)
    elif filters.eval == "not_ready":
        qs = qs.filter(eval_ready=False)
    elif filters.eval == "unset":
        qs = qs.filter(eval_status__isnull=True)
    elif filters.eval:
        qs = qs.filter(eval_status=filters.eval)
    return qs


def _after(column: str, nullable: bool, descending: bool, value, pk: int) -> Q:
    """Rows strictly after (value, pk) in the sort order, NULL being the smallest value."""
    if value is None:
        if descending:
            return Q(**{f"{column}__isnull": True, "pk__lt": pk})
        return Q(**{f"{column}__isnull": False}) | Q(**{f"{column}__isnull": True, "pk__gt": pk})
    op, pk_op = ("lt", "lt") if descending else ("gt", "gt")
    # The redundant bound (<= / >=) lets PostgreSQL start the index scan at the cursor.
    bound = Q(**{f"{column}__{op}e": value}) & (Q(**{f"{column}__{op}": value}) | Q(**{f"pk__{pk_op}": pk}))
    if nullable and descending:
        return bound | Q(**{f"{column}__isnull": True})
    return bound


def session_page(
    workspace, filters: SessionFilters, *, cursor: str | None = None, size: int = 50
) -> tuple[list[Session], str | None]:
    """One page of the workspace's sessions and the cursor of the next page (None at the end).

    Keyset pagination: a page costs the same whether it is the first or the thousandth.
    """
    column, nullable = SORTS.get(filters.sort, SORTS["updated"])
    descending = filters.direction != "asc"
    qs = filter_sessions(sessions_for_workspace(workspace), filters)
    if cursor:
        position = decode_cursor(cursor)
        # A cursor of another sort (an edited URL) starts the list over rather than erroring.
        if position is not None and _fits(position[0], column, nullable):
            qs = qs.filter(_after(column, nullable, descending, *position))
    # The ORDER BY must match the index exactly: NULLS clauses only on the nullable keys (a
    # NULLS LAST on a NOT NULL column still makes PostgreSQL sort the whole workspace).
    nulls = {"nulls_last": True} if descending else {"nulls_first": True}
    key = F(column).desc(**nulls if nullable else {}) if descending else F(column).asc(**nulls if nullable else {})
    order = [key, F("pk").desc() if descending else F("pk").asc()]
    rows = list(qs.order_by(*order)[: size + 1])
    if len(rows) <= size:
        return rows, None
    last = rows[size - 1]
    return rows[:size], encode_cursor(getattr(last, column), last.pk)


def is_updated_cursor(cursor: str) -> bool:
    """Whether `cursor` is one session_page gave for its default sort (most recently updated
    first): what the read API and the MCP tools accept back, refusing anything else."""
    position = decode_cursor(cursor)
    return position is not None and isinstance(position[0], datetime)


def _fits(value, column: str, nullable: bool) -> bool:
    if value is None:
        return nullable
    types: dict[str, type | tuple[type, ...]] = {"updated_at": datetime, "created_at": datetime, "cost": (Decimal, int)}
    expected = types.get(column, int)
    return isinstance(value, expected) and not isinstance(value, bool)


def encode_cursor(value, pk: int) -> str:
    if isinstance(value, datetime):
        value = {"t": value.isoformat()}
    elif isinstance(value, Decimal):
        value = {"d": str(value)}
    raw = json.dumps([value, pk], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str):
    """(value, pk) from a cursor, or None when it was tampered with (the list starts over)."""
    try:
        value, pk = inputs.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if isinstance(value, dict) and "t" in value:
            value = datetime.fromisoformat(value["t"])
        elif isinstance(value, dict) and "d" in value:
            value = Decimal(value["d"])
        if not isinstance(pk, int) or not (value is None or isinstance(value, int | datetime | Decimal)):
            return None
        return value, pk
    except (ValueError, TypeError, ArithmeticError, binascii.Error):
        return None


FACET_CACHE_SECONDS = 300
FACET_LIMIT = 200
FACET_SAMPLE = 5_000


def filter_choices(workspace) -> dict[str, list[str]]:
    """Suggestions for the project, model and provider filters: the distinct values among the
    workspace's FACET_SAMPLE most recently updated sessions.

    A sample, so the cost is the same at a thousand sessions or a million (the inputs accept any
    value; these only feed their <datalist>s); cached for a few minutes on top.
    """
    key = f"session-facets:{workspace.pk}"
    choices = cache.get(key)
    if choices is None:
        fields = ("project_name", "model", "provider")
        recent = Session.objects.filter(workspace=workspace).order_by("-updated_at", "-id").values("pk")
        row = Session.objects.filter(pk__in=recent[:FACET_SAMPLE]).aggregate(
            **{
                field: ArrayAgg(field, distinct=True, order_by=field, filter=Q(**{f"{field}__gt": ""}), default=[])
                for field in fields
            }
        )
        choices = {field: row[field][:FACET_LIMIT] for field in fields}
        cache.set(key, choices, FACET_CACHE_SECONDS)
    return choices


_ID = re.compile(r"[0-9]{1,18}")


def session_by_id(workspace_id: int, session_id: str) -> Session | None:
    """A session of the workspace by an id given as text (an API parameter, a tool argument).
    Another workspace's, a deleted one or a malformed id are all None, so ids leak nothing."""
    session_id = str(session_id).strip()
    if not _ID.fullmatch(session_id):
        return None
    return Session.objects.filter(workspace_id=workspace_id, pk=int(session_id)).first()


def message_by_id(session: Session, message_id: str) -> Message | None:
    """A message of the session by an id given as text; None for any other id."""
    message_id = str(message_id).strip()
    if not _ID.fullmatch(message_id):
        return None
    return session.messages.filter(pk=int(message_id)).first()


def messages_page(session: Session, *, after=None, before=None, size: int = 100) -> tuple[list[Message], bool]:
    """A window of a session's messages in display order, and whether more exist past its far end.

    `after` / `before` are (created_at, order) positions; `before` pages backwards (returned in
    display order).
    """
    qs = session.messages.prefetch_related("parts")
    if before is not None:
        created, order = before
        qs = qs.filter(Q(created_at__lte=created) & (Q(created_at__lt=created) | Q(order__lt=order)))
        rows = list(qs.order_by("-created_at", "-order")[: size + 1])
        return rows[:size][::-1], len(rows) > size
    if after is not None:
        created, order = after
        qs = qs.filter(Q(created_at__gte=created) & (Q(created_at__gt=created) | Q(order__gt=order)))
    rows = list(qs.order_by("created_at", "order")[: size + 1])
    return rows[:size], len(rows) > size


def message_position(message: Message) -> str:
    return encode_cursor(message.created_at, message.order)


def decode_message_position(cursor: str | None):
    position = decode_cursor(cursor) if cursor else None
    if position is None or not isinstance(position[0], datetime):
        return None
    return position


# --- prices -----------------------------------------------------------------------------------------


_PRICE_OVERRIDES_SQL = f"""
SELECT id, workspace_id, model_pattern, effective_from, input_per_m, output_per_m, cache_read_per_m,
       cache_write_5m_per_m, cache_write_1h_per_m
FROM {PriceOverride._meta.db_table} WHERE workspace_id = %s OR workspace_id IS NULL
"""


def price_book(workspace_id: int) -> PriceBook:
    """The workspace's price overrides and the instance-wide ones, over the price book.

    Every sync that prices a session reads this: one fixed statement, as the ORM spends more
    time building the query (about 1 ms) than the database spends answering it."""
    with connection.cursor() as cursor:
        cursor.execute(_PRICE_OVERRIDES_SQL, [workspace_id])
        rows = cursor.fetchall()
    return PriceBook(
        [
            Override(
                pk=pk,
                workspace_id=override_workspace,
                pattern=pattern.strip().lower(),
                effective_from=effective_from,
                rates=override_rates(
                    pk=pk,
                    pattern=pattern,
                    input_per_m=input_per_m,
                    output_per_m=output_per_m,
                    cache_read_per_m=cache_read_per_m,
                    cache_write_5m_per_m=cache_write_5m_per_m,
                    cache_write_1h_per_m=cache_write_1h_per_m,
                ),
            )
            for (
                pk, override_workspace, pattern, effective_from, input_per_m, output_per_m, cache_read_per_m,
                cache_write_5m_per_m, cache_write_1h_per_m,
            ) in rows
        ]
    )  # fmt: skip


def attach_message_costs(session: Session, messages: list[Message], book: PriceBook | None = None) -> None:
    """Set `cost` on each message: its own request priced with the session's price book (tiered
    prices apply), None when it has no tokens or no price. Messages carry no stored cost."""
    if not any(m.prompt_tokens or m.completion_tokens for m in messages):
        for message in messages:
            message.cost = None
        return
    book = book or price_book(session.workspace_id)
    for message in messages:
        counts = {name: getattr(message, f"{name}_tokens") for name in MESSAGE_COUNTS}
        message.cost = price_message(
            source=session.source,
            model=message.model or session.model,
            provider=session.provider,
            when=message.created_at,
            prompt=counts.pop("prompt"),
            completion=counts.pop("completion"),
            book=book,
            **counts,
        )


# Message.<name>_tokens -> price_message(<name>=...)
MESSAGE_COUNTS = ("prompt", "completion", "cache_read", "cache_write", "cache_write_5m", "cache_write_1h", "reasoning")
