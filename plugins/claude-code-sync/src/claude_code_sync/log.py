"""A tiny append-only log (~/.claude-code-sync/sync.log); logging must never break a hook."""

import os
import time

from . import paths

MAX_BYTES = 1_000_000


def log(level: str, message: str) -> None:
    try:
        paths.ensure_data_dir()
        path = paths.log_file()
        try:
            if path.stat().st_size > MAX_BYTES:
                os.replace(path, path.with_name(path.name + ".1"))
        except FileNotFoundError:
            pass
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        line = f"{stamp} {level.upper():5} [{os.getpid()}] {message}\n"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8", errors="replace") as handle:
            handle.write(line)
    except OSError:
        pass


def info(message: str) -> None:
    log("info", message)


def warning(message: str) -> None:
    log("warn", message)


def error(message: str) -> None:
    log("error", message)
