import os

import pytest
from django.db import connection

from .live import LiveServer, chromium_missing_reason


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Browser tests need Debian's chromium. Without it they skip, or fail where the browser is
    required (CI sets OPENSYNC_REQUIRE_BROWSER=1), before any server is started for them."""
    if item.get_closest_marker("browser") is None:
        return
    reason = chromium_missing_reason()
    if reason is None:
        return
    if os.environ.get("OPENSYNC_REQUIRE_BROWSER") == "1":
        pytest.fail(f"OPENSYNC_REQUIRE_BROWSER=1 but the browser tests can't run: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def gunicorn_server(django_db_setup, django_db_blocker):
    """One restartable gunicorn for the module (`.url`, `.stop()`, `.start()` on the same port),
    serving the test database: tests using it commit their data (django_db(transaction=True))."""
    with django_db_blocker.unblock():
        server = LiveServer(connection.settings_dict)
    yield server
    if server.proc is not None:  # a test may have left it stopped
        server.stop()
