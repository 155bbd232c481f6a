"""gunicorn's sync worker, answering the errors gunicorn raises itself (before Django sees the
request: a request line over --limit-request-line is 414, too many or too large headers 431, a
malformed request 400) as JSON `{"error": ...}` like every other API error, instead of an HTML page.

Used by the Procfile's web line, `make run` (opensync/run.py) and the live-server tests:
`gunicorn --worker-class opensync.gunicorn_worker.JsonErrorWorker ...`.
"""

import atexit
import json
import os
import re
import shutil
import tempfile

from gunicorn import util
from gunicorn.workers.sync import SyncWorker

WORKER_CLASS = "opensync.gunicorn_worker.JsonErrorWorker"
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) ([^\r\n]*)")


class _Captured:
    """Stands in for the client socket while gunicorn writes its HTML error page."""

    def __init__(self):
        self.data = b""

    def gettimeout(self):
        return 0.0

    def sendall(self, data):
        self.data += data


class JsonErrorWorker(SyncWorker):
    def handle_error(self, req, client, addr, exc):
        # gunicorn decides the status (its table of client errors), logs and writes the access
        # log line; only its answer, written to `client` last, is replaced. (The socket is used
        # for nothing else in handle_error.)
        captured = _Captured()
        super().handle_error(req, captured, addr, exc)
        found = _STATUS_LINE.match(captured.data)
        status, reason = (int(found[1]), found[2].decode("latin-1")) if found else (500, "Internal Server Error")
        message = reason if status >= 500 else f"{reason}: {exc}"
        body = json.dumps({"error": message}).encode()
        head = (
            f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        try:
            util.write_nonblock(client, head.encode("latin-1") + body)
        except Exception:
            self.log.debug("Failed to send error message.")


def _prometheus_multiprocess_dir() -> None:
    """Metrics from all of gunicorn's workers, not just the one that answers the scrape.

    gunicorn's master imports this module (the worker class) before it forks: a folder set here
    reaches every worker's environment before prometheus_client is imported there, and its
    counters are summed by /metrics (opensync.metrics). A folder the operator set is used as it
    is (they must empty it before each start, as prometheus_client's docs say); otherwise a fresh
    temporary folder per master, removed when the master exits.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    folder = tempfile.mkdtemp(prefix="opensync-prometheus-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    master = os.getpid()
    # workers inherit the atexit hook through fork; only the master may remove the folder
    atexit.register(lambda: os.getpid() == master and shutil.rmtree(folder, ignore_errors=True))


_prometheus_multiprocess_dir()
