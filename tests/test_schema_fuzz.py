"""Property-based fuzzing of the whole API against its own OpenAPI schema (schemathesis), over
real HTTP to gunicorn, with a `sync` key and with a `read` key.

Every operation in /api/schema gets EXAMPLES generated requests per key (valid and invalid
parameters and bodies), and every answer must be: not a 5xx, a status the schema lists for the
operation, a content type it lists, and a body that matches the schema of that status. The run
is derandomized (the same requests every time) and bounded (~15 s a key on two cores, plus starting gunicorn); a failure
names the operation, what is wrong and a curl command that reproduces it.
"""

import json
import time
from datetime import UTC, datetime

import pytest
import schemathesis
from django.db import connection
from hypothesis import HealthCheck, Phase, given, settings, strategies
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.services import api_key_create
from sessions_app.tests.factories import MessageFactory, PartFactory, SessionFactory

from .live import start_gunicorn, stop

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

EXAMPLES = 8  # per operation and key
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def live(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        # request-log rows written at once, not flushed after a test has emptied the tables
        proc, port = start_gunicorn(
            connection.settings_dict, workers=2, extra_env={"OPENSYNC_API_REQUEST_LOG_FLUSH_SECONDS": "0"}
        )
    yield port
    stop(proc)


@pytest.fixture
def keys(user, personal_workspace):
    """A sync and a read key of a workspace with something to read: a session with messages,
    tool parts and an eval review (so exports build a file)."""
    session = SessionFactory(
        owner=user, title="Fix the parser", eval_ready=True, eval_status="golden", eval_tags=["bug-fix"],
        created_at=datetime(2025, 3, 1, tzinfo=UTC),
    )  # fmt: skip
    MessageFactory(session=session, role="user", text_content="Fix parser.py", search_text="Fix parser.py")
    answer = MessageFactory(session=session, role="assistant", text_content="Fixed.", search_text="Fixed.")
    PartFactory(message=answer, type="tool-call", content={"name": "read_file", "args": {"path": "parser.py"}})
    return {
        scope: api_key_create(user=user, workspace=personal_workspace, name=scope, scope=scope)[1]
        for scope in ("sync", "read")
    }


@pytest.mark.parametrize("scope", ["sync", "read"])
def test_every_operation_conforms_to_the_schema(live, keys, scope):
    base_url = f"http://127.0.0.1:{live}"
    schema = schemathesis.openapi.from_url(f"{base_url}/api/schema?format=json")
    headers = {"Authorization": f"Bearer {keys[scope]}"}
    failures: list[str] = []
    operations = examples = 0
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        seen: list = []

        # valid requests and invalid ones (wrong types, missing or extra fields and parameters)
        modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        strategy = strategies.one_of(*(operation.as_strategy(generation_mode=mode) for mode in modes))

        @given(case=strategy)
        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],  # no shrinking: the first failure is reported as is
            suppress_health_check=list(HealthCheck),
        )
        def call(case):
            seen.append(case)  # noqa: B023 (called in this iteration only)
            case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS, timeout=30)

        try:
            call()
        except (
            Exception,
            BaseExceptionGroup,
        ) as exc:  # a check failed: schemathesis' message has the details and a curl
            failures.append(f"{operation.label}: {exc}\n  reproduce: {seen[-1].as_curl_command(headers)}")
        examples += len(seen)
    figures = {"key": scope, "operations": operations, "examples": examples, "failures": len(failures),
               "seconds": round(time.monotonic() - started, 1)}  # fmt: skip
    print(json.dumps(figures))
    assert operations >= 17 and examples >= operations * 2
    assert not failures, "\n\n".join(failures)
