import os

import pytest

from .live import chromium_missing_reason


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
