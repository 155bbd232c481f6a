"""`/health/ready`: may this process take traffic? (`/health` only says it is alive.)

Three checks, each answered in the JSON body: the database answers, the broker (Redis) answers
PING, and no migration is waiting to be applied. 200 when all pass, 503 naming the ones that
failed, so an orchestrator holds traffic back from a web process that came up before its
database, its Redis or `migrate`.
"""

import logging

import redis
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

from opensync import metrics

logger = logging.getLogger(__name__)

# Once the plan has been seen empty it stays so for this process's life (migrations are applied
# before a deploy's new code starts, never rolled back under it): later probes skip loading the
# migration graph (~100 ms) and cost two round trips.
_migrations_applied = False


def check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return f"unreachable: {type(exc).__name__}"
    return "ok"


def check_broker() -> str:
    client = metrics.broker_client()
    if client is None:
        return "ok (not Redis: not checked)"
    try:
        with client:
            client.ping()
    except redis.RedisError as exc:
        return f"unreachable: {type(exc).__name__}"
    return "ok"


def pending_migrations() -> list[str]:
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]


def check_migrations() -> str:
    global _migrations_applied
    if _migrations_applied:
        return "ok"
    try:
        pending = pending_migrations()
    except DatabaseError as exc:
        return f"unknown: {type(exc).__name__}"
    if pending:
        return f"{len(pending)} unapplied, first {pending[0]}"
    _migrations_applied = True
    return "ok"


@never_cache
def ready_view(request: HttpRequest) -> JsonResponse:
    checks = {"database": check_database(), "broker": check_broker()}
    # without a database the plan can't be read: say so once, under database
    checks["migrations"] = check_migrations() if checks["database"] == "ok" else "unknown: database unreachable"
    failed = [name for name, result in checks.items() if not result.startswith("ok")]
    if failed:
        logger.warning("not ready: %s", ", ".join(f"{name} {checks[name]}" for name in failed))
    body = {"status": "unavailable" if failed else "ok", "checks": checks, "failed": failed}
    return JsonResponse(body, status=503 if failed else 200)
