"""The `claude-code-sync` command."""

import argparse
import sys
import time
from pathlib import Path

from . import __version__, config, paths

HOOK_EVENTS = ("SessionStart", "UserPromptSubmit", "PostToolUse", "Stop", "SessionEnd")


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    args = build_parser().parse_args(argv)
    if args.command == "hook":  # the hot path: nothing else to set up
        from . import hook

        return hook.run(args.event, started)
    paths.ensure_data_dir()
    return args.handler(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="claude-code-sync", description="Sync Claude Code sessions to a self-hosted OpenSync server."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    login = commands.add_parser("login", help="connect to a server (asks for the URL and API key)")
    login.add_argument("--url", help="server base URL, e.g. http://127.0.0.1:8000")
    login.add_argument("--key", "--api-key", dest="key", help="API key (osk_...)")
    login.set_defaults(handler=cmd_login)

    commands.add_parser("logout", help="forget the URL and API key").set_defaults(handler=cmd_logout)
    commands.add_parser("status", help="connection, sessions synced, queue, errors").set_defaults(handler=cmd_status)

    sync = commands.add_parser("sync", help="backfill every transcript under ~/.claude/projects")
    sync.add_argument("--since", metavar="DATE", help="only transcripts changed since DATE (YYYY-MM-DD)")
    sync.add_argument("--project", metavar="NAME_OR_PATH", help="only this project (name, path or folder)")
    sync.add_argument("--dry-run", action="store_true", help="report what would be sent, send nothing")
    sync.add_argument("--quiet", action="store_true", help="no progress, only the summary")
    sync.set_defaults(handler=cmd_sync)

    hook = commands.add_parser("hook", help="run by Claude Code's hooks (JSON on stdin)")
    hook.add_argument("event", metavar="EVENT", help=f"the hook event ({', '.join(HOOK_EVENTS)})")

    flush = commands.add_parser("flush", help="send what is queued")
    flush.add_argument("--background", action="store_true", help=argparse.SUPPRESS)
    # a hook hands over the rest of a transcript too big to read within its time
    flush.add_argument("--session", help=argparse.SUPPRESS)
    flush.add_argument("--transcript", help=argparse.SUPPRESS)
    flush.set_defaults(handler=cmd_flush)
    return parser


def fail(message: str) -> int:
    print(f"claude-code-sync: {message}", file=sys.stderr)
    return 1


# --- login / logout ---------------------------------------------------------------------------


def _ask(prompt: str, secret: bool = False) -> str:
    if secret and sys.stdin.isatty():
        import getpass

        return getpass.getpass(prompt)
    print(prompt, end="", flush=True, file=sys.stderr)
    line = sys.stdin.readline()
    return line.strip()


def cmd_login(args) -> int:
    from . import client

    url = (args.url or _ask("OpenSync server URL (e.g. http://127.0.0.1:8000): ")).strip()
    key = (args.key or _ask("API key (osk_…, from Settings → API keys): ", secret=True)).strip()
    if not url or not key:
        return fail("a server URL and an API key are both needed; nothing was saved")
    if not url.startswith(("http://", "https://")):
        return fail(f"{url!r} is not an http(s) URL; nothing was saved")
    url = config.normalise_url(url)
    try:
        client.health(url)
    except client.SyncError as exc:
        return fail(f"{url} is not reachable as an OpenSync server ({exc}); nothing was saved")
    try:
        known = client.session_ids(url, key)
        client.post_batch(url, key, b'{"sessions":[],"messages":[]}', timeout=10)  # may this key write?
    except client.SyncError as exc:
        if exc.kind == "auth":
            return fail(f"the server rejected the API key ({exc}); nothing was saved")
        return fail(f"the key could not be checked ({exc}); nothing was saved")
    config.save_credentials(url, key)
    print(f"Connected to {url} ({len(known)} sessions of yours there). Saved to {paths.config_file()}.")
    return 0


def cmd_logout(args) -> int:
    if config.clear_credentials():
        print(f"Removed the server URL and API key from {paths.config_file()}.")
    else:
        print("Not logged in.")
    cfg = config.load()
    if cfg.url or cfg.api_key:
        print(f"Note: {cfg.url_source or cfg.key_source} still configures a server.")
    return 0


# --- status -----------------------------------------------------------------------------------


def _when(ms: int | None) -> str:
    if not ms:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(ms / 1000))


def _on_off(value: bool) -> str:
    return "on" if value else "off"


def cmd_status(args) -> int:
    from . import client, sender, spool, storage

    cfg = config.load()
    rows = []
    if cfg.configured:
        rows.append(("Server", f"{cfg.url} (from {cfg.url_source})"))
        rows.append(("API key", f"{config.mask_key(cfg.api_key)} (from {cfg.key_source})"))
        try:
            client.health(cfg.url, timeout=5)
            client.session_ids(cfg.url, cfg.api_key, timeout=5)
            connection = "ok (server reachable, key accepted)"
        except client.SyncError as exc:
            connection = {"auth": "the API key was rejected", "timeout": "no answer", "unreachable": "unreachable"}.get(
                exc.kind, "error"
            ) + f" ({exc})"
        rows.append(("Connection", connection))
    else:
        rows.append(("Server", "not configured: run `claude-code-sync login`"))
    send = sender.load_status()
    ingest_status = storage.read_json(paths.ingest_status(), {})
    chunks, sessions, messages = spool.totals()
    rows.append(("Sessions synced", str(len(send.get("syncedSessions", [])))))
    rows.append(("Last sync", _when(send.get("lastSyncAt"))))
    rows.append(("Queue", f"{chunks} batches waiting ({sessions} session updates, {messages} messages)"))
    rows.append(("Corrupt lines skipped", str(ingest_status.get("corruptLines", 0))))
    rows.append(("Rejected by server", f"{send.get('itemErrors', 0)} records ({spool.rejected_count()} set aside)"))
    if send.get("lastError"):
        error = send["lastError"]
        rows.append(("Last error", f"{error.get('message')} at {_when(error.get('at'))}"))
    rows.append(
        (
            "Options",
            f"auto sync {_on_off(cfg.auto_sync)}, tool calls {_on_off(cfg.tool_calls)}, "
            f"thinking {_on_off(cfg.thinking)}, redaction {_on_off(cfg.redact)}",
        )
    )
    rows.append(("Log", str(paths.log_file())))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name + ':':<{width + 1}} {value}")
    for error in send.get("recentErrors", [])[-3:]:
        print(f"  rejected: {error.get('error')}")
    for line in ingest_status.get("recentCorrupt", [])[-3:]:
        print(f"  corrupt line: {line}")
    return 0 if cfg.configured else 1


# --- sync / flush -----------------------------------------------------------------------------


def cmd_sync(args) -> int:
    from . import backfill, ingest
    from .transcript import Options

    cfg = config.load()
    if not cfg.configured and not args.dry_run:
        return fail("not configured: run `claude-code-sync login` (or set OPENSYNC_URL and OPENSYNC_API_KEY)")
    try:
        since = backfill.parse_since(args.since) if args.since else None
    except ValueError as exc:
        return fail(str(exc))
    root = paths.projects_dir()
    candidates = [c for c in backfill.discover(root) if since is None or c.modified() >= since]
    if args.project:
        candidates = [c for c in candidates if backfill.matches_project(c, args.project, _cwd_of(c))]
    if not args.quiet:
        print(f"{len(candidates)} transcripts to read under {root}", file=sys.stderr)
    options = Options(tool_calls=cfg.tool_calls, thinking=cfg.thinking, redact=cfg.redact)
    progress = backfill.Progress(len(candidates), "sessions read", quiet=args.quiet)
    report, corrupt = [], 0
    for candidate in candidates:
        lock = ingest.ingest_lock()
        if not lock.acquire(timeout=60):
            progress.finish()
            return fail("another claude-code-sync process is busy reading transcripts; try again")
        try:
            result = ingest.ingest(
                candidate.session_id,
                candidate.path,
                options,
                extra_sidechains=candidate.sidechains,
                dry_run=args.dry_run,
            )
        finally:
            lock.release()
        for line in result.corrupt:
            progress.say(f"skipped a corrupt line: {line}")
        corrupt += len(result.corrupt)
        if result.messages or result.session:
            report.append(result)
        progress.advance(candidate.session_id)
    progress.finish()
    messages = sum(len(r.messages) for r in report)
    updates = sum(1 for r in report if r.session)
    if args.dry_run:
        for result in report:
            print(_dry_run_line(result))
        print(
            f"Dry run: would send {messages} messages and {updates} session updates from {len(report)} "
            f"sessions ({corrupt} corrupt lines skipped). Nothing was sent or recorded."
        )
        return 0
    print(
        f"Queued {messages} messages and {updates} session updates from {len(report)} sessions "
        f"({corrupt} corrupt lines skipped)."
    )
    return _send_queue(cfg, quiet=args.quiet)


def _cwd_of(candidate) -> str | None:
    from . import backfill, ingest

    return ingest.load_state(candidate.session_id)["cwd"] or backfill.peek(candidate.path, "cwd")


def _dry_run_line(result) -> str:
    from . import storage

    session = result.session or {}
    size = sum(len(storage.dumps(m)) for m in result.messages)
    details = [f"{len(result.messages)} messages ({size:,} bytes)"]
    if session:
        tokens = sum(
            session.get(k, 0) for k in ("promptTokens", "completionTokens", "cacheReadTokens", "cacheCreationTokens")
        )
        details.append(f"{tokens:,} tokens incl. cache")
        details.append(f"cost ${session['cost']:.4f}" if "cost" in session else "cost unknown")
    title = session.get("title", "")
    return f"{result.session_id}  {title[:50]!r}  " + ", ".join(details)


def _send_queue(cfg, quiet: bool = False) -> int:
    from . import backfill, sender, spool

    pending = len(spool.chunk_files())
    if not pending:
        print("Nothing to send.")
        return 0
    progress = backfill.Progress(pending, "batches sent", quiet=quiet)
    result = sender.flush(cfg, lock_wait=60, on_chunk=lambda _result: progress.advance())
    progress.finish()
    left = len(spool.chunk_files())
    if result.ok:
        print(f"Sent {result.records} records in {result.chunks} batches.")
        return 0
    if result.outcome == "busy":
        print("Another claude-code-sync process is sending the queue right now; it will send these too.")
        return 0
    if result.outcome == "auth":
        return fail(
            f"the server rejected the API key ({result.message}). Nothing was lost: {left} batches "
            "stay queued; run `claude-code-sync login` with a valid key."
        )
    return fail(
        f"could not send ({result.message}). Nothing was lost: {left} batches stay queued and go out "
        "with the next hook or `claude-code-sync sync`."
    )


READ_SLICE = 0.2  # seconds the flusher reads a transcript before letting waiting hooks in


def _finish_reading(cfg, session_id: str, transcript: Path) -> None:
    """Read the rest of a transcript a hook left, in slices: a hook waits at most 0.25 s for the
    ingest lock, so holding it for the whole of a 100 MB transcript would make every hook skip."""
    from . import ingest, locks, log
    from .transcript import Options

    options = Options(tool_calls=cfg.tool_calls, thinking=cfg.thinking, redact=cfg.redact)
    while True:
        lock = ingest.ingest_lock()
        if not lock.acquire(timeout=30):
            log.warning(f"could not read the rest of {transcript}: the ingest lock stayed busy")
            return
        try:
            result = ingest.ingest(session_id, transcript, options, deadline=time.monotonic() + READ_SLICE)
        finally:
            lock.release()
        if not result.more:
            return
        time.sleep(3 * locks.POLL_SECONDS)  # a hook polling for the lock gets it now


def cmd_flush(args) -> int:
    from . import log, sender

    cfg = config.load()
    if not cfg.configured:
        return 0 if args.background else fail("not configured: run `claude-code-sync login`")
    if args.session and args.transcript:
        _finish_reading(cfg, args.session, Path(args.transcript))
    if args.background:
        result = sender.flush(cfg)
        if result.chunks:
            log.info(f"sent {result.records} records in {result.chunks} batches ({result.outcome})")
        return 0
    return _send_queue(cfg)
