"""Read what is new in a session's transcripts, queue it, and remember how far we got.

Order of writes: the spool chunks first (fsync'd), then the session state. A crash between the
two re-reads the same lines next time and queues them again, which the server's upsert by
externalId absorbs; the opposite order could lose them.
"""

import hashlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import log, paths, spool, storage
from .locks import FileLock
from .transcript import Options, SessionParser, new_lines, new_state, parse_line

RECENT_CORRUPT = 20
SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


@dataclass
class Corrupt:
    path: str
    offset: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path} at byte {self.offset}: {self.reason}"


@dataclass
class IngestResult:
    session_id: str
    messages: list[dict] = field(default_factory=list)
    session: dict | None = None
    corrupt: list[Corrupt] = field(default_factory=list)
    missing: bool = False
    more: bool = False  # stopped at the byte budget: there is more to read


def state_path(session_id: str) -> Path:
    name = session_id if SAFE_ID.match(session_id) else hashlib.sha256(session_id.encode()).hexdigest()
    return paths.state_dir() / f"{name}.json"


def load_state(session_id: str) -> dict:
    state = new_state(session_id)
    saved = storage.read_json(state_path(session_id), {})
    if isinstance(saved, dict) and saved.get("sessionId") == session_id:
        state.update(saved)
    return state


def sidechain_files(transcript: Path) -> list[Path]:
    """Subagent transcripts of a session: <transcript without .jsonl>/subagents/*.jsonl."""
    folder = transcript.with_suffix("") / "subagents"
    try:
        return sorted(path for path in folder.iterdir() if path.suffix == ".jsonl")
    except OSError:
        return []


def ingest_lock() -> FileLock:
    return FileLock(paths.ingest_lock())


def ingest(
    session_id: str,
    transcript: Path,
    options: Options,
    *,
    end_reason: str | None = None,
    reopened: bool = False,
    cwd: str | None = None,
    extra_sidechains: tuple[Path, ...] = (),
    dry_run: bool = False,
    byte_budget: int | None = None,
    deadline: float | None = None,
) -> IngestResult:
    """Parse the new lines of one session and (unless `dry_run`) queue them. Call with the
    ingest lock held. With `byte_budget` or `deadline` (time.monotonic()), stop before the line
    that would go over it (the deadline: after the first line) and set `more`: a hook must stay
    fast even on a huge transcript it sees for the first time (parsing and redacting take about
    0.2 s per MB)."""
    transcript = transcript.resolve()  # one key per file, however the path was spelled
    state = load_state(session_id)
    state["transcript"] = str(transcript)
    parser = SessionParser(state, options)
    result = IngestResult(session_id)
    sidechains = (*sidechain_files(transcript), *(path.resolve() for path in extra_sidechains))
    sources = [(transcript, False)] + [(path, True) for path in sidechains]
    budget, progress = byte_budget, False
    for path, sidechain in sources:
        if result.more:
            break
        key = str(path)
        offset = state["files"].get(key, 0)
        try:
            for start, end, line in new_lines(path, offset):
                if (budget is not None and end - start > budget) or (
                    deadline is not None and progress and time.monotonic() >= deadline
                ):
                    result.more = True  # left for a reader with time to spare (the flusher)
                    break
                progress = True  # (one line always, past the deadline or not: no endless loop)
                entry, problem = parse_line(line)
                if problem:
                    result.corrupt.append(Corrupt(key, start, problem))
                elif entry is not None and (record := parser.feed(entry, sidechain_file=sidechain)) is not None:
                    result.messages.append(record)
                offset = end
                if budget is not None:
                    budget -= end - start
        except FileNotFoundError:
            result.missing = result.missing or not sidechain
        except OSError as exc:
            log.warning(f"cannot read {path}: {exc}")
            result.missing = result.missing or not sidechain
        state["files"][key] = offset
    if reopened:  # SessionStart: a session resumed after its SessionEnd runs again
        state["endReason"] = None
    if end_reason:
        state["endReason"] = end_reason
    if cwd and not state["cwd"]:
        state["cwd"] = cwd
    result.session = parser.session_record()
    if dry_run:
        return result
    if result.session or result.messages:
        spool.write_chunks(spool.make_chunks([result.session] if result.session else [], result.messages))
    storage.write_json(state_path(session_id), state)
    if result.corrupt:
        note_corrupt(result.corrupt)
    return result


def note_corrupt(lines: list[Corrupt]) -> None:
    status = storage.read_json(paths.ingest_status(), {})
    status = status if isinstance(status, dict) else {}
    status["corruptLines"] = status.get("corruptLines", 0) + len(lines)
    status["recentCorrupt"] = [*status.get("recentCorrupt", []), *map(str, lines)][-RECENT_CORRUPT:]
    storage.write_json(paths.ingest_status(), status)
    for line in lines:
        log.warning(f"skipped a corrupt transcript line: {line}")


def pending_sessions(limit: int) -> list[tuple[str, Path]]:
    """Sessions not ended whose main transcript grew since it was last read (most recent first):
    e.g. the last answer of a session quit with Ctrl-C, written after its final Stop hook."""
    try:
        states = sorted(paths.state_dir().glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return []
    found = []
    for path in states[:limit]:
        state = storage.read_json(path, {})
        if not isinstance(state, dict) or state.get("endReason") or not state.get("transcript"):
            continue
        transcript = Path(state["transcript"])
        try:
            grew = transcript.stat().st_size > state.get("files", {}).get(str(transcript), 0)
        except OSError:
            continue
        if grew:
            found.append((state["sessionId"], transcript))
    return found
