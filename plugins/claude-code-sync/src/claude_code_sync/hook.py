"""`claude-code-sync hook <Event>`, as Claude Code runs it: the hook JSON (session_id,
transcript_path, cwd, hook_event_name, ...) arrives on stdin.

The hook queues what is new in the transcript (local disk only), then starts a detached flusher
(`python -m claude_code_sync flush --background`) to send the queue, and waits for it at most
until HOOK_BUDGET seconds after start: a slow or dead server never slows the agent. It always
exits 0 and never writes to stdout (Claude Code would hand that to the model); problems go to
~/.claude-code-sync/sync.log.
"""

import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

from . import config, ingest, log, paths, spool
from .transcript import Options

HOOK_BUDGET = 0.5  # seconds after start when the hook stops waiting for the flusher
STDIN_WAIT = 0.25  # seconds to wait for hook input
LOCK_WAIT = 0.25  # seconds to wait for another hook's ingest
CATCH_UP_LIMIT = 20  # recent sessions SessionStart checks for lines written after their last hook
# A hook reads transcript lines itself until READ_TIME seconds after start or READ_BUDGET bytes
# (a line bigger than that is never parsed by a hook); the flusher reads the rest.
READ_TIME = 0.4
READ_BUDGET = 1024 * 1024
MAX_INPUT = 16 * 1024 * 1024


def run(event: str, started: float) -> int:
    try:
        _run(event, started)
    except Exception as exc:  # a hook must never fail the agent
        log.error(f"hook {event} failed: {exc!r}\n{traceback.format_exc()}")
    return 0


def read_input(deadline: float) -> bytes:
    """stdin until EOF, or what arrived by `deadline` (a caller that never closes stdin)."""
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None or stream.isatty():
        return b""
    try:
        import select
    except ImportError:  # pragma: no cover - platforms without select
        return stream.read(MAX_INPUT)
    fd = stream.fileno()
    chunks, size = [], 0
    while size < MAX_INPUT:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            log.warning("hook input did not end in time; using what arrived")
            break
        data = os.read(fd, 65536)
        if not data:
            break
        chunks.append(data)
        size += len(data)
    return b"".join(chunks)


def find_transcript(session_id: str) -> Path | None:
    for path in paths.projects_dir().glob(f"*/{session_id}.jsonl"):
        return path
    return None


def _run(event: str, started: float) -> None:
    paths.ensure_data_dir()
    raw = read_input(started + STDIN_WAIT)
    try:
        payload = json.loads(raw) if raw.strip() else {}
    except ValueError:
        log.warning(f"hook {event}: input is not JSON ({len(raw)} bytes)")  # never its text: a prompt
        payload = {}
    if not isinstance(payload, dict):
        log.warning(f"hook {event}: input is not a JSON object")
        payload = {}
    cfg = config.load()
    if not cfg.configured or not cfg.auto_sync:
        return
    unread = _queue_new_lines(event, payload, cfg, started)
    if unread is not None or spool.chunk_files():
        start_flusher(wait_until=started + HOOK_BUDGET, unread=unread)


def _text(payload: dict, key: str) -> str | None:
    value = payload.get(key)
    return value if isinstance(value, str) and value else None


def _queue_new_lines(event: str, payload: dict, cfg: config.Config, started: float) -> tuple[str, Path] | None:
    """Queue the session's new lines; (session id, transcript) when more is left to read."""
    session_id = _text(payload, "session_id")
    transcript = Path(_text(payload, "transcript_path")).expanduser() if _text(payload, "transcript_path") else None
    if session_id is None and transcript is not None:
        session_id = transcript.stem
    if transcript is None and session_id is not None:
        transcript = find_transcript(session_id)
    if session_id is None or transcript is None:
        log.warning(f"hook {event}: no session_id/transcript_path in the input; nothing to read")
        return None
    options = Options(tool_calls=cfg.tool_calls, thinking=cfg.thinking, redact=cfg.redact)
    end_reason = (_text(payload, "reason") or "other") if event == "SessionEnd" else None
    lock = ingest.ingest_lock()
    if not lock.acquire(LOCK_WAIT):
        log.warning(f"hook {event}: another process holds the ingest lock; the next hook reads these lines")
        return None
    try:
        limits = {"byte_budget": READ_BUDGET, "deadline": started + READ_TIME}
        result = ingest.ingest(
            session_id,
            transcript,
            options,
            end_reason=end_reason,
            reopened=event == "SessionStart",
            cwd=_text(payload, "cwd"),
            **limits,
        )
        if result.missing:
            log.warning(f"hook {event}: transcript {transcript} is missing or unreadable")
        if event == "SessionStart":
            for other_id, other_path in ingest.pending_sessions(CATCH_UP_LIMIT):
                if time.monotonic() - started > HOOK_BUDGET / 2:
                    break
                if other_id != session_id:
                    ingest.ingest(other_id, other_path, options, **limits)
    finally:
        lock.release()
    return (session_id, transcript) if result.more else None


def start_flusher(wait_until: float, unread: tuple[str, Path] | None = None) -> None:
    """Send the queue from a detached process (which first reads the rest of `unread`, a
    session the hook left unfinished); wait for it until `wait_until` at most."""
    command = [sys.executable, "-m", "claude_code_sync", "flush", "--background"]
    if unread is not None:
        command += ["--session", unread[0], "--transcript", str(unread[1])]
    flags = {"start_new_session": True}
    if os.name == "nt":  # pragma: no cover
        flags = {"creationflags": subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP}
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        close_fds=True,
        cwd=paths.data_dir(),
        **flags,
    )
    try:
        process.wait(timeout=max(0.0, wait_until - time.monotonic()))
    except subprocess.TimeoutExpired:
        log.info(f"flusher {process.pid} still sending in the background")
