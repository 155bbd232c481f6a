"""Sending the queue: one sender at a time (the send lock), chunks in name order, each deleted
only after the server answered 2xx.

- Consecutive chunks are sent together while they fit in one request (spool.MAX_RECORDS records,
  about spool.MAX_BYTES): a backfill queues one chunk per session, and one request per session
  made `sync` three times slower than the records' own reading and sending. A session's records
  from several chunks become one record, as the server would have applied them in turn.

- Per-item errors in a 2xx answer are permanent: logged and counted in the status, not retried.
- 413: the batch is split in halves until it fits; a single record still too big is set aside.
- 400/422 with a JSON error for the whole batch: set aside (the server will never take it), the
  queue goes on.
- 401/403: the key was rejected: stop, keep everything queued.
- 429 (the key's rate limit) or 503 with Retry-After: wait that long and send the batch again,
  at most MAX_RETRY_WAIT seconds a time and MAX_RETRIES times in a row; a longer wait, or no
  Retry-After, is treated like the next case.
- Timeouts, refused connections, 5xx, other 4xx (a wrong URL, a proxy): stop, keep everything
  queued for the next hook or sync.
The server upserts by externalId, so a batch re-sent after a lost answer stores nothing twice.
"""

import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from . import client, log, paths, spool, storage
from .client import SyncError
from .config import Config
from .locks import FileLock

DEFAULT_TIMEOUT = 30.0
MAX_RETRY_WAIT = 60.0  # seconds; the hooks' flusher runs detached, so waiting never slows the agent
MAX_RETRIES = 5
RECENT_ERRORS = 20
ITEM_ERROR = re.compile(r"^(sessions|messages)\[(\d+)\]:\s*(.*)$", re.DOTALL)


@dataclass
class FlushResult:
    outcome: str = "done"  # "done", "busy", "deadline", or a SyncError kind
    chunks: int = 0
    records: int = 0
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == "done"


def request_timeout() -> float:
    """Seconds to wait for one answer: CLAUDE_CODE_SYNC_TIMEOUT, else 30."""
    try:
        value = float(os.environ.get("CLAUDE_CODE_SYNC_TIMEOUT", DEFAULT_TIMEOUT))
    except ValueError:
        return DEFAULT_TIMEOUT
    return value if value > 0 else DEFAULT_TIMEOUT


def now_ms() -> int:
    return int(time.time() * 1000)


def load_status() -> dict:
    status = storage.read_json(paths.send_status(), {})
    return status if isinstance(status, dict) else {}


def flush(
    cfg: Config,
    *,
    deadline: float | None = None,
    lock_wait: float = 0,
    on_chunk: Callable[[FlushResult], None] | None = None,
) -> FlushResult:
    """Send queued chunks until the queue is empty, something fails, or `deadline`
    (time.monotonic()) passes. "busy" when another process holds the send lock."""
    lock = FileLock(paths.send_lock())
    if not lock.acquire(lock_wait):
        return FlushResult("busy")
    result = FlushResult()
    while True:
        try:
            _flush_locked(cfg, deadline, result, on_chunk, lock)
        finally:
            lock.release()
        # A hook that queued a chunk after our last look found the lock taken and left the
        # chunk to us: look again now that the lock is free.
        if not result.ok or not spool.chunk_files() or not lock.acquire(0):
            return result


def _flush_locked(cfg: Config, deadline: float | None, result: FlushResult, on_chunk, lock: FileLock) -> None:
    status = load_status()
    try:
        while files := spool.chunk_files():
            for group, chunks in _requests(files):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    result.outcome = "deadline"
                    return
                timeout = request_timeout() if remaining is None else min(request_timeout(), remaining)
                lock.refresh()  # a long backlog must not look like a crashed sender
                status["lastAttemptAt"] = now_ms()
                chunk = merge(chunks)
                try:
                    _send_retrying(cfg, chunk, timeout, status, chunks, deadline, lock)
                except SyncError as exc:
                    result.outcome, result.message = exc.kind, str(exc)
                    status["lastError"] = {"kind": exc.kind, "message": str(exc), "at": now_ms()}
                    names = ", ".join(path.name for path in group)
                    log.warning(f"sending {names} failed ({exc.kind}): {exc}; it stays queued")
                    return
                for path in group:
                    spool.delete(path)
                sent = {record.get("externalId") for record in chunk["sessions"]}
                sent |= {record.get("sessionExternalId") for record in chunk["messages"]}
                status["syncedSessions"] = sorted(set(status.get("syncedSessions", [])) | (sent - {None}))
                status["lastSyncAt"] = now_ms()
                status["lastError"] = None
                result.chunks += len(group)
                result.records += len(chunk["sessions"]) + len(chunk["messages"])
                if on_chunk is not None:
                    on_chunk(result)
    finally:
        storage.write_json(paths.send_status(), status)


def _requests(files: list[Path]) -> Iterator[tuple[list[Path], list[dict]]]:
    """(chunk files, their chunks) for each request, in queue order: consecutive chunks while
    together they stay within spool.MAX_RECORDS records and about spool.MAX_BYTES."""
    group: list[Path] = []
    chunks: list[dict] = []
    count = size = 0
    for path in files:
        chunk = spool.read_chunk(path)
        if chunk is None:
            continue
        chunk_count = len(chunk["sessions"]) + len(chunk["messages"])
        chunk_size = len(storage.dumps(chunk))
        if group and (count + chunk_count > spool.MAX_RECORDS or size + chunk_size > spool.MAX_BYTES):
            yield group, chunks
            group, chunks, count, size = [], [], 0, 0
        group.append(path)
        chunks.append(chunk)
        count += chunk_count
        size += chunk_size
    if group:
        yield group, chunks


TOKEN_FIELDS = frozenset(
    {
        "promptTokens", "completionTokens", "cacheReadTokens", "cacheCreationTokens", "cacheWrite5mTokens",
        "cacheWrite1hTokens", "reasoningTokens",
    }
)  # fmt: skip


def merge(chunks: list[dict]) -> dict:
    """One batch applying `chunks` in order. The server applies a session record's fields over the
    stored ones (a token count of 0 never replaces a count) but keeps only the last record per id
    within one request, so one session's records are folded into one here the same way."""
    if len(chunks) == 1:
        return chunks[0]
    sessions: dict = {}
    messages: list[dict] = []
    for chunk in chunks:
        for record in chunk["sessions"]:
            key = record.get("externalId") or object()  # no id: the server reports it; keep it apart
            folded = sessions.setdefault(key, {})
            folded.update((name, value) for name, value in record.items() if not (name in TOKEN_FIELDS and value == 0))
            for name in TOKEN_FIELDS & record.keys():
                folded.setdefault(name, record[name])
        messages.extend(chunk["messages"])
    return {"sessions": list(sessions.values()), "messages": messages}


def _send_retrying(cfg, chunk, timeout, status, chunks, deadline: float | None, lock: FileLock) -> None:
    """_send, again after the wait a 429 or 503 asked for (the server upserts: a batch sent twice
    stores nothing twice, even if part of it went through before)."""
    for attempt in range(MAX_RETRIES + 1):
        if deadline is not None:
            timeout = min(timeout, deadline - time.monotonic())
        try:
            _send(cfg, chunk, timeout, status, chunks)
            return
        except SyncError as exc:
            wait = exc.retry_after
            if wait is None or wait > MAX_RETRY_WAIT or attempt == MAX_RETRIES:
                raise
            if deadline is not None and time.monotonic() + wait >= deadline:
                raise
            log.info(f"the server asked to wait {wait:.0f}s ({exc}); sending again then")
            time.sleep(wait)
            lock.refresh()


def _send(cfg: Config, chunk: dict, timeout: float, status: dict, chunks: list[dict] | None = None) -> None:
    """POST `chunk` (the merge of `chunks`, when several were sent together)."""
    try:
        answer = client.post_batch(cfg.url, cfg.api_key, storage.dumps(chunk), timeout=timeout)
    except SyncError as exc:
        if exc.kind == "too_large":
            records = [("sessions", r) for r in chunk["sessions"]] + [("messages", r) for r in chunk["messages"]]
            if len(records) == 1:
                _note_error(status, f"{_describe(records[0][0], records[0][1])}: too large for the server ({exc})")
                spool.set_aside(chunk, str(exc))
                return
            half = len(records) // 2
            for part in (records[:half], records[half:]):
                _send(cfg, _batch(part), timeout, status)
            return
        if exc.kind == "rejected":
            if chunks and len(chunks) > 1:  # find the chunk the server refuses; send the others
                for part in chunks:
                    _send(cfg, part, timeout, status)
                return
            _note_error(
                status,
                f"the server refused a batch of {len(chunk['sessions'])} sessions and "
                f"{len(chunk['messages'])} messages: {exc}",
            )
            spool.set_aside(chunk, str(exc))
            return
        raise
    for error in answer.get("errors") or []:
        match = ITEM_ERROR.match(str(error))
        if match and int(match.group(2)) < len(chunk[match.group(1)]):
            record = chunk[match.group(1)][int(match.group(2))]
            _note_error(status, f"{_describe(match.group(1), record)}: {match.group(3)}")
        else:
            _note_error(status, str(error))


def _batch(records: list[tuple[str, dict]]) -> dict:
    return {
        "sessions": [record for kind, record in records if kind == "sessions"],
        "messages": [record for kind, record in records if kind == "messages"],
    }


def _describe(kind: str, record: dict) -> str:
    if kind == "sessions":
        return f"session {record.get('externalId')}"
    return f"message {record.get('externalId')} of session {record.get('sessionExternalId')}"


def _note_error(status: dict, text: str) -> None:
    """A permanent error: logged and shown by `status`, never retried."""
    log.error(f"rejected by the server: {text}")
    status["itemErrors"] = status.get("itemErrors", 0) + 1
    status["recentErrors"] = [*status.get("recentErrors", []), {"at": now_ms(), "error": text}][-RECENT_ERRORS:]
