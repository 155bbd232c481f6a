"""The OpenSync HTTP API, with urllib only. Every failure is a SyncError with a `kind`:

- "auth": 401/403, the key was rejected (keep everything queued);
- "too_large": 413 (split the batch);
- "rejected": 400/422 with a JSON error, the server will never take this body (set it aside);
- "server": 5xx, 429, any other 4xx (a 404 or 405 from a wrong URL or a proxy says nothing about
  the body), or a non-JSON answer (retry later). A 429 or 503 carries the server's Retry-After
  (seconds) in `retry_after`, so the sender can wait that long and send again;
- "timeout" / "unreachable": no answer in time, or no connection (retry later).
"""

import email.utils
import http.client
import json
import time
import urllib.error
import urllib.request

from . import __version__

USER_AGENT = f"claude-code-sync/{__version__} (python urllib)"
REJECTED_STATUSES = {400, 422}
RETRY_AFTER_STATUSES = {429, 503}  # rate limited, or briefly unavailable: "come back in N seconds"


class SyncError(Exception):
    def __init__(self, kind: str, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: a number of seconds, or an HTTP date."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return max(seconds, 0.0) if seconds == seconds else None  # NaN is no answer


def _error_json(body: bytes) -> dict | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _error_text(body: bytes) -> str:
    data = _error_json(body)
    if data is None:
        return body[:200].decode("utf-8", "replace").strip()
    return str(data.get("error", data))


def _kind(status: int, body: bytes) -> str:
    if status in (401, 403):
        return "auth"
    if status == 413:
        return "too_large"
    if status in REJECTED_STATUSES and _error_json(body) is not None:
        return "rejected"  # the server read the body and refused it: sending it again won't help
    return "server"


def request(
    base_url: str, method: str, path: str, *, key: str | None = None, body: bytes | None = None, timeout: float = 30
) -> dict:
    """The JSON object the server answered with a 2xx, or a SyncError."""
    headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if not base_url.startswith(("http://", "https://")):
        raise SyncError("unreachable", f"not an http(s) URL: {base_url}")
    req = urllib.request.Request(base_url + path, data=body, headers=headers, method=method)  # noqa: S310 (checked)
    try:
        with urllib.request.urlopen(req, timeout=max(timeout, 0.05)) as response:  # noqa: S310 (checked above)
            raw = response.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
        wait = retry_after(exc.headers.get("Retry-After")) if exc.code in RETRY_AFTER_STATUSES else None
        raise SyncError(_kind(exc.code, body), f"HTTP {exc.code}: {_error_text(body)}", exc.code, wait) from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise SyncError("timeout", f"no answer within {timeout:.1f}s") from None
        raise SyncError("unreachable", f"cannot connect: {exc.reason}") from None
    except TimeoutError:
        raise SyncError("timeout", f"no answer within {timeout:.1f}s") from None
    except (http.client.HTTPException, OSError) as exc:
        raise SyncError("unreachable", f"connection failed: {exc}") from None
    except ValueError as exc:  # a malformed URL
        raise SyncError("unreachable", f"bad server URL: {exc}") from None
    try:
        data = json.loads(raw)
    except ValueError:
        raise SyncError("server", "the answer was not JSON (is this an OpenSync server?)") from None
    if not isinstance(data, dict):
        raise SyncError("server", "the answer was not a JSON object")
    return data


def health(base_url: str, timeout: float = 10) -> dict:
    return request(base_url, "GET", "/health", timeout=timeout)


def session_ids(base_url: str, key: str, timeout: float = 10) -> list:
    data = request(base_url, "GET", "/sync/sessions/list", key=key, timeout=timeout)
    ids = data.get("sessionIds")
    return ids if isinstance(ids, list) else []


def post_batch(base_url: str, key: str, body: bytes, timeout: float = 30) -> dict:
    return request(base_url, "POST", "/sync/batch", key=key, body=body, timeout=timeout)
