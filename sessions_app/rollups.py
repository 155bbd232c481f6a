"""Usage rollups: kept exact by every write of a session.

A session contributes to one row of `UsageRollup` (its workspace, the day it started in the
workspace's time zone, its model, agent, owner and project) and, through it, to eight rows of
`DimensionRollup` (by model, owner, project and agent; per day and per month). A write that may
change sessions does

    with rollups.tracking(session_ids) as changes:
        ... write the (locked) sessions ...

which reads what those sessions contribute before and after the write, in SQL, and adds the
difference to both tables, in the same transaction. So re-sending a session changes nothing, a
deleted session takes its share with it, and the rollups always equal a GROUP BY over the
sessions (`rebuild` computes exactly that; tests compare the two). A session that only gained
messages needs no "before" read: the sync records them in `changes.messages_added`.

The differences are applied in key order, in one statement, at the end of the transaction, so
two concurrent syncs that share rollup rows wait for each other instead of deadlocking.
`rebuild` takes an exclusive advisory lock per workspace; a write takes it shared before it reads
what its sessions contribute and holds it to its commit: so a rebuild either comes before the
write's reads (and they use the time zone the rebuild used) or waits for it to commit (and sees
its sessions).
"""

import json
from collections.abc import Iterable
from contextlib import contextmanager
from decimal import Decimal

import psycopg
from django.db import connection, transaction

from accounts.models import Workspace

from .models import DURATION_BUCKETS, DURATION_RATIO, DimensionRollup, RollupPeriod, Session, UsageRollup
from .pricing import CostSource

ROLLUP_TABLE = UsageRollup._meta.db_table
DIMENSION_TABLE = DimensionRollup._meta.db_table
SESSION_TABLE = Session._meta.db_table
WORKSPACE_TABLE = Workspace._meta.db_table
LOCK_CLASS = 0x0505  # pg_advisory_xact_lock(LOCK_CLASS, workspace id): rebuild vs writes
REBUILD_CHUNK = 20_000  # rollup rows per INSERT of a rebuild

KEY_COLUMNS = ("day", "model", "source", "owner_id", "project", "project_named")
DIMENSION_KEY_COLUMNS = ("dimension", "period", "start", "source", "key", "key_named")
DIMENSIONS = ("model", "owner", "project", "source")
# (rollup column, SQL over a session row `s`), summed per key
MEASURES = (
    ("sessions", "1"),
    ("messages", "s.message_count"),
    ("prompt_tokens", "s.prompt_tokens"),
    ("completion_tokens", "s.completion_tokens"),
    ("input_tokens", "s.usage_input_tokens"),
    ("output_tokens", "s.usage_output_tokens"),
    ("cache_read_tokens", "s.usage_cache_read_tokens"),
    ("cache_write_5m_tokens", "s.usage_cache_write_5m_tokens"),
    ("cache_write_1h_tokens", "s.usage_cache_write_1h_tokens"),
    ("reasoning_tokens", "s.usage_reasoning_tokens"),
    ("subagent_tokens", "s.subagent_tokens"),
    ("cost", "COALESCE(s.cost, 0)"),
    ("computed_cost", "COALESCE(s.computed_cost, 0)"),
    ("reported_cost", "COALESCE(s.reported_cost, 0)"),
    ("subagent_cost", "COALESCE(s.subagent_cost, 0)"),
    ("sessions_computed", f"(s.cost_source = '{CostSource.COMPUTED}')::int"),
    ("sessions_reported", f"(s.cost_source = '{CostSource.REPORTED}')::int"),
    ("sessions_unpriced", f"(s.cost_source = '{CostSource.UNPRICED}')::int"),
    ("sessions_no_usage", f"(s.cost_source = '{CostSource.NO_USAGE}')::int"),
    ("sessions_pending", f"(s.cost_source = '{CostSource.PENDING}')::int"),
    ("sessions_cost_reported", "(s.reported_cost IS NOT NULL)::int"),
    (
        "priced_tokens",
        "CASE WHEN s.cost IS NULL THEN 0 ELSE s.usage_input_tokens + s.usage_output_tokens"
        " + s.usage_cache_read_tokens + s.usage_cache_write_5m_tokens + s.usage_cache_write_1h_tokens END",
    ),
    ("duration_ms", "COALESCE(s.duration_ms, 0)"),
    ("sessions_with_duration", "(s.duration_ms IS NOT NULL)::int"),
    # (a status of NULL compares to NULL: COALESCE makes it 0)
    ("reviews_golden", "COALESCE(s.eval_status = 'golden', false)::int"),
    ("reviews_correct", "COALESCE(s.eval_status = 'correct', false)::int"),
    ("reviews_incorrect", "COALESCE(s.eval_status = 'incorrect', false)::int"),
    ("reviews_needs_review", "COALESCE(s.eval_status = 'needs_review', false)::int"),
)
MEASURE_NAMES = tuple(name for name, _ in MEASURES)
DECIMAL_MEASURES = frozenset({"cost", "computed_cost", "reported_cost", "subagent_cost"})

# The key of a session's row. Project and model are cut to the rollup columns' 255 characters.
KEY_SQL = """
    (s.created_at AT TIME ZONE w.timezone)::date AS day,
    left(COALESCE(s.model, ''), 255) AS model,
    s.source AS source,
    s.owner_id AS owner_id,
    left(COALESCE(NULLIF(s.project_name, ''), NULLIF(s.project_path, ''), ''), 255) AS project,
    COALESCE(s.project_name, '') <> '' AS project_named
"""
# Bucket 0: under a second (or no duration); bucket k >= 1: [R^(k-1), R^k) seconds; the last
# bucket takes everything longer.
BUCKET_SQL = (
    f"CASE WHEN s.duration_ms IS NULL THEN NULL WHEN s.duration_ms < 1000 THEN 0 "
    f"ELSE LEAST({DURATION_BUCKETS - 1}, 1 + floor(ln(s.duration_ms / 1000.0) / ln({DURATION_RATIO})))::int END"
)
CONTRIBUTIONS_SQL = f"""
SELECT s.workspace_id, {KEY_SQL},
       {", ".join(f"{sql} AS {name}" for name, sql in MEASURES)},
       {BUCKET_SQL} AS bucket
FROM {SESSION_TABLE} s JOIN {WORKSPACE_TABLE} w ON w.id = s.workspace_id
WHERE {{where}}
"""

_TYPES = {
    "day": "date", "start": "date", "model": "text", "source": "text", "project": "text", "dimension": "text",
    "period": "text", "key": "text", "project_named": "boolean", "key_named": "boolean",
}  # fmt: skip


def _array_type(name: str) -> str:
    if name in _TYPES:
        return _TYPES[name]
    return "numeric" if name in DECIMAL_MEASURES else "bigint"


_FINE_COLUMNS = ("workspace_id", *KEY_COLUMNS, *MEASURE_NAMES, "duration_buckets")
_DIMENSION_COLUMNS = ("workspace_id", *DIMENSION_KEY_COLUMNS, *MEASURE_NAMES, "duration_buckets")


_ZERO_BUCKETS = f"array_fill(0, ARRAY[{DURATION_BUCKETS}])"


def _on_conflict(constraint: str) -> str:
    return f"""ON CONFLICT ON CONSTRAINT {constraint} DO UPDATE SET
    {", ".join(f"{name} = r.{name} + EXCLUDED.{name}" for name in MEASURE_NAMES)},
    duration_buckets = CASE WHEN EXCLUDED.duration_buckets = {_ZERO_BUCKETS} THEN r.duration_buckets ELSE ARRAY(
        SELECT a + b FROM unnest(r.duration_buckets, EXCLUDED.duration_buckets) WITH ORDINALITY AS t(a, b, n)
        ORDER BY n
    ) END"""


# A UsageRollup row's share of DimensionRollup: its day and its month, by each dimension.
_EXPAND_SQL = """
CROSS JOIN LATERAL (VALUES ('day', i.day), ('month', date_trunc('month', i.day)::date)) AS p(period, start)
CROSS JOIN LATERAL (VALUES ('model', i.model, false), ('owner', i.owner_id::text, false),
                           ('project', i.project, i.project_named), ('source', i.source, false))
     AS d(dimension, key, key_named)
"""
_DIMENSION_GROUP = "i.workspace_id, d.dimension, p.period, p.start, i.source, d.key, d.key_named"
_DIMENSION_SUMS = (
    ", ".join(f"sum(i.{name})" for name in MEASURE_NAMES)
    + ", ARRAY["
    + ", ".join(f"sum(i.duration_buckets[{n}])" for n in range(1, DURATION_BUCKETS + 1))
    + "]::int[]"
)

# The workspaces' shared rebuild locks (see the module's docstring), taken before any rollup row
# is written: `i` below reads from it. Deltas come as one JSON parameter, `rows`.
_LOCKED = f"""locked AS MATERIALIZED (
    SELECT count(*) AS n FROM (
        SELECT pg_advisory_xact_lock_shared({LOCK_CLASS}, w.id::int)
        FROM (SELECT DISTINCT (e->>0)::bigint AS id FROM jsonb_array_elements(%(rows)s::jsonb) AS e ORDER BY 1) AS w
    ) AS taken
),
"""

# Adds deltas (one row per UsageRollup key) to both tables in one statement: the fine rows as
# given, and their expansion into dimension rows, summed (shares that cancel out, e.g. a session
# whose model changed within one project, write nothing). Returns the rows left with no session.
_APPLY_SQL = f"""
WITH {_LOCKED}i AS (
    SELECT {", ".join(f"(e->>{n})::{_array_type(name)} AS {name}" for n, name in enumerate(_FINE_COLUMNS[:-1]))},
           (e->>{len(_FINE_COLUMNS) - 1})::int[] AS duration_buckets
    FROM jsonb_array_elements(%(rows)s::jsonb) AS e, locked
),
fine AS (
    INSERT INTO {ROLLUP_TABLE} AS r ({", ".join(_FINE_COLUMNS)})
    SELECT {", ".join(f"i.{name}" for name in _FINE_COLUMNS)} FROM i
    ORDER BY {", ".join(f"i.{name}" for name in ("workspace_id", *KEY_COLUMNS))}
    {_on_conflict("usagerollup_key_uniq")}
    RETURNING r.id, r.sessions
),
dimension AS (
    INSERT INTO {DIMENSION_TABLE} AS r ({", ".join(_DIMENSION_COLUMNS)})
    SELECT {_DIMENSION_GROUP}, {_DIMENSION_SUMS}
    FROM i {_EXPAND_SQL}
    GROUP BY {_DIMENSION_GROUP}
    HAVING {" OR ".join(f"sum(i.{name}) <> 0" for name in MEASURE_NAMES)}
        OR bool_or(i.duration_buckets <> {_ZERO_BUCKETS})
    ORDER BY {_DIMENSION_GROUP}
    {_on_conflict("dimensionrollup_key_uniq")}
    RETURNING r.id, r.sessions
)
SELECT 'fine', id FROM fine WHERE sessions = 0
UNION ALL SELECT 'dimension', id FROM dimension WHERE sessions = 0
"""


def _cursor():
    """A psycopg cursor on Django's connection (inside its transaction), so the rollup
    statements, the same text every time, are prepared once per connection."""
    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)


def lock_workspace(cursor, workspace_id: int, *, exclusive: bool = False) -> None:
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    cursor.execute(f"SELECT {function}(%s, %s)", [LOCK_CLASS, workspace_id])


_LOCK_SESSIONS_WORKSPACES_SQL = f"""
SELECT pg_advisory_xact_lock_shared({LOCK_CLASS}, w.id::int)
FROM (SELECT DISTINCT workspace_id AS id FROM {SESSION_TABLE} WHERE id = ANY(%s) ORDER BY 1) AS w
"""


def _lock_workspaces_of(cursor, session_ids: list[int]) -> None:
    """Take the shared rebuild lock of the sessions' workspaces before reading what they
    contribute: a rebuild (after a time zone change) then can't fall between the read and the
    write, so both use the time zone the rebuild used, or come after it."""
    if session_ids:
        cursor.execute(_LOCK_SESSIONS_WORKSPACES_SQL, [session_ids], prepare=True)


Key = tuple  # (workspace_id, day, model, source, owner_id, project, project_named)
DimensionKey = tuple  # (workspace_id, dimension, period, start, source, key, key_named)


def _collect(rows, found: dict) -> dict:
    """Add contribution rows (key, measures, bucket) into {key: [measures..., buckets list]}."""
    width = len(MEASURE_NAMES)
    for row in rows:
        key, measures, bucket = row[:7], row[7 : 7 + width], row[7 + width]
        total = found.get(key)
        if total is None:
            total = found[key] = [*measures, [0] * DURATION_BUCKETS]
        else:
            for index, value in enumerate(measures):
                total[index] += value
        if bucket is not None:
            total[-1][bucket] += 1
    return found


_CONTRIBUTIONS_BY_ID_SQL = CONTRIBUTIONS_SQL.replace("SELECT s.workspace_id,", "SELECT s.id, s.workspace_id,").format(
    where="s.id = ANY(%s)"
)
MESSAGES = MEASURE_NAMES.index("messages")


def _session_rows(cursor, session_ids: list[int]) -> list[tuple]:
    """(session id, contribution row) of each session that exists."""
    if not session_ids:
        return []
    cursor.execute(_CONTRIBUTIONS_BY_ID_SQL, [session_ids], prepare=True)
    return [(row[0], row[1:]) for row in cursor.fetchall()]


def contributions(cursor, session_ids: Iterable[int]) -> dict[Key, list]:
    """What the sessions add to UsageRollup now: {key: [measures..., buckets list]}."""
    return _collect((row for _, row in _session_rows(cursor, list(session_ids))), {})


def dimension_rows(rows: dict[Key, list]) -> dict[DimensionKey, list]:
    """The DimensionRollup rows that UsageRollup rows add up to (the statement that writes the
    rollups expands them in SQL; this is the check's independent reckoning)."""
    found: dict[DimensionKey, list] = {}
    for (workspace_id, day, model, source, owner_id, project, named), values in rows.items():
        month = day.replace(day=1)
        for period, start in ((RollupPeriod.DAY.value, day), (RollupPeriod.MONTH.value, month)):
            for dimension, key, key_named in (
                ("model", model, False),
                ("owner", str(owner_id), False),
                ("project", project, named),
                ("source", source, False),
            ):
                dimension_key = (workspace_id, dimension, period, start, source, key, key_named)
                total = found.get(dimension_key)
                if total is None:
                    found[dimension_key] = [*values[:-1], list(values[-1])]
                else:
                    for index in range(len(values) - 1):
                        total[index] += values[index]
                    total[-1] = [a + b for a, b in zip(total[-1], values[-1], strict=True)]
    return found


def _difference(before: dict, after: dict) -> dict:
    deltas = {}
    for key in set(before) | set(after):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if old is None:
            deltas[key] = new
        elif new is None:
            deltas[key] = [-v for v in old[:-1]] + [[-b for b in old[-1]]]
        else:
            delta = [n - o for n, o in zip(new[:-1], old[:-1], strict=True)]
            delta.append([n - o for n, o in zip(new[-1], old[-1], strict=True)])
            deltas[key] = delta
    return deltas


def write(cursor, deltas: dict[Key, list]) -> None:
    """Add `deltas` to both rollup tables (one statement, which first takes the shared rebuild
    lock of their workspaces), and drop the rows left with no session."""
    if not deltas:
        return
    # one JSON parameter (rows in key order): far cheaper to send than thirty arrays
    rows = [
        [*key, *deltas[key][:-1], "{" + ",".join(map(str, deltas[key][-1])) + "}"]
        for key in sorted(deltas, key=_sort_key)
    ]
    cursor.execute(_APPLY_SQL, {"rows": json.dumps(rows, default=str)}, prepare=True)
    empty = {"fine": [], "dimension": []}
    for table, row_id in cursor.fetchall():
        empty[table].append(row_id)
    for table, ids in ((ROLLUP_TABLE, empty["fine"]), (DIMENSION_TABLE, empty["dimension"])):
        if ids:
            cursor.execute(f"DELETE FROM {table} WHERE id = ANY(%s) AND sessions = 0", [ids])


def _sort_key(key: tuple):
    return tuple("" if value is None else value for value in key)


class Changes:
    """What a write tells `tracking` beyond the sessions it tracks from the start."""

    def __init__(self, session_ids: list[int]):
        self.session_ids = session_ids  # sessions created inside the block can be appended
        self.messages_added: dict[int, int] = {}  # session id -> new messages (nothing else changed)


@contextmanager
def tracking(session_ids: Iterable[int]):
    """Keep the rollups exact across a write of these sessions (inside the transaction, with the
    sessions locked). Yields a Changes: append sessions created in the block to `session_ids`,
    and put sessions that only gained messages in `messages_added` (no "before" read needed)."""
    changes = Changes(list(session_ids))
    with _cursor() as cursor:
        _lock_workspaces_of(cursor, changes.session_ids)
        locked = set(changes.session_ids)  # their workspaces' locks are held to the commit
        before = contributions(cursor, changes.session_ids)
        yield changes
        tracked = set(changes.session_ids)
        only_messages = {pk: n for pk, n in changes.messages_added.items() if n and pk not in tracked}
        ids = [*dict.fromkeys(changes.session_ids), *only_messages]
        _lock_workspaces_of(cursor, [pk for pk in ids if pk not in locked])
        rows = _session_rows(cursor, ids)
        after = _collect((row for _, row in rows), {})
        # a session that only gained messages contributed the same, minus those, before
        earlier = [
            (*row[: 7 + MESSAGES], row[7 + MESSAGES] - only_messages[pk], *row[8 + MESSAGES :])
            for pk, row in rows
            if pk in only_messages
        ]
        _collect(earlier, before)
        write(cursor, _difference(before, after))


def from_scratch(workspace_id: int) -> dict[Key, list]:
    """The UsageRollup rows a workspace should have, computed from its sessions (streamed)."""
    found: dict[Key, list] = {}
    connection.ensure_connection()
    with transaction.atomic(), connection.connection.cursor(name="rollup_rebuild") as cursor:
        cursor.itersize = 10_000
        cursor.execute(CONTRIBUTIONS_SQL.format(where="s.workspace_id = %s"), [workspace_id])
        _collect(cursor, found)
    return found


def rebuild(workspace_id: int) -> int:
    """Recompute a workspace's rollups from its sessions, in one transaction (the pages keep
    reading the old rows until it commits); returns the number of UsageRollup rows."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            lock_workspace(cursor, workspace_id, exclusive=True)
            cursor.execute(f"DELETE FROM {ROLLUP_TABLE} WHERE workspace_id = %s", [workspace_id])
            cursor.execute(f"DELETE FROM {DIMENSION_TABLE} WHERE workspace_id = %s", [workspace_id])
        rows = from_scratch(workspace_id)
        keys = sorted(rows, key=_sort_key)
        with _cursor() as cursor:
            for start in range(0, len(keys), REBUILD_CHUNK):
                write(cursor, {key: rows[key] for key in keys[start : start + REBUILD_CHUNK]})
    return len(rows)


def _stored(model, key_columns: tuple[str, ...], workspace_id: int) -> dict:
    rows = model.objects.filter(workspace_id=workspace_id).values_list(
        "workspace_id", *key_columns, *MEASURE_NAMES, "duration_buckets"
    )
    width = 1 + len(key_columns)
    result = {}
    for row in rows:
        key, measures, buckets = row[:width], list(row[width:-1]), list(row[-1])
        values = [
            Decimal(v) if name in DECIMAL_MEASURES else v for name, v in zip(MEASURE_NAMES, measures, strict=True)
        ]
        result[key] = [*values, buckets]
    return result


def stored(workspace_id: int) -> dict[Key, list]:
    """The UsageRollup rows a workspace has, in the shape of `contributions`."""
    return _stored(UsageRollup, KEY_COLUMNS, workspace_id)


def stored_dimensions(workspace_id: int) -> dict[DimensionKey, list]:
    return _stored(DimensionRollup, DIMENSION_KEY_COLUMNS, workspace_id)


def check(workspace_id: int) -> int:
    """How many rollup rows (of either table) differ from what the sessions add up to."""
    expected = from_scratch(workspace_id)
    wrong = _differing(expected, stored(workspace_id))
    wrong += _differing(dimension_rows(expected), stored_dimensions(workspace_id))
    return wrong


def _differing(expected: dict, found: dict) -> int:
    return len(set(expected) ^ set(found)) + sum(
        1 for key in expected.keys() & found.keys() if expected[key] != found[key]
    )
