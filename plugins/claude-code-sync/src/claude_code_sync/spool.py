"""The durable queue: batches for POST /sync/batch, one file per chunk, sent in name order.

A chunk is `{"sessions": [...], "messages": [...]}`, at most MAX_RECORDS records and about
MAX_BYTES of JSON (a single bigger record goes alone). Files are written under the ingest lock
with strictly increasing names, fsync'd, and deleted only after the server answered 2xx.
"""

import time
from pathlib import Path

from . import log, paths, storage

MAX_RECORDS = 200
MAX_BYTES = 1_000_000
SUFFIX = ".json"


def make_chunks(sessions: list[dict], messages: list[dict]) -> list[dict]:
    """Bounded batches, in order: the session records first, then the messages."""
    chunks: list[dict] = []
    current: dict = {"sessions": [], "messages": []}
    count = size = 0
    for kind, record in [("sessions", s) for s in sessions] + [("messages", m) for m in messages]:
        record_size = len(storage.dumps(record)) + 1
        if count and (count >= MAX_RECORDS or size + record_size > MAX_BYTES):
            chunks.append(current)
            current, count, size = {"sessions": [], "messages": []}, 0, 0
        current[kind].append(record)
        count += 1
        size += record_size
    if count:
        chunks.append(current)
    return chunks


def chunk_files() -> list[Path]:
    """Queued chunks, oldest first."""
    try:
        return sorted(
            path for path in paths.spool_dir().iterdir() if path.name.endswith(SUFFIX) and path.stem.isdigit()
        )
    except FileNotFoundError:
        return []


def write_chunks(chunks: list[dict]) -> list[Path]:
    """Append chunks to the queue (call with the ingest lock held, so names keep increasing)."""
    folder = paths.spool_dir()
    existing = chunk_files()
    number = max(time.time_ns(), int(existing[-1].stem) + 1 if existing else 0)
    written = []
    for chunk in chunks:
        path = folder / f"{number:020d}{SUFFIX}"
        storage.write_json(path, chunk)
        written.append(path)
        number += 1
    return written


def read_chunk(path: Path) -> dict | None:
    """The chunk in `path`; an unreadable one is moved aside (and logged), giving None."""
    data = storage.read_json(path, None)
    if isinstance(data, dict) and isinstance(data.get("sessions"), list) and isinstance(data.get("messages"), list):
        return data
    if path.exists():
        set_aside_file(path, "unreadable spool file")
    return None


def set_aside_file(path: Path, reason: str) -> None:
    target = paths.rejected_dir() / path.name
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.replace(target)
    log.error(f"{reason}: moved {path.name} to {target}")


def set_aside(records: dict, reason: str) -> Path:
    """Keep a batch the server will never take (e.g. one record over its size limit) out of the queue."""
    path = paths.rejected_dir() / f"{time.time_ns():020d}{SUFFIX}"
    storage.write_json(path, {**records, "reason": reason})
    log.error(f"set aside {len(records['sessions']) + len(records['messages'])} record(s) in {path}: {reason}")
    return path


def delete(path: Path) -> None:
    path.unlink(missing_ok=True)
    storage.fsync_dir(path.parent)


def totals() -> tuple[int, int, int]:
    """(chunks, session records, message records) waiting."""
    files = chunk_files()
    sessions = messages = 0
    for path in files:
        data = storage.read_json(path, {})
        sessions += len(data.get("sessions", [])) if isinstance(data, dict) else 0
        messages += len(data.get("messages", [])) if isinstance(data, dict) else 0
    return len(files), sessions, messages


def rejected_count() -> int:
    try:
        return sum(1 for path in paths.rejected_dir().iterdir() if path.name.endswith(SUFFIX))
    except FileNotFoundError:
        return 0
