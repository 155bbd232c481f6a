"""Where everything lives. Computed on each call, so tests (and `HOME=...`) can move it."""

import os
from pathlib import Path


def config_file() -> Path:
    return Path.home() / ".claude-code-sync.json"


def data_dir() -> Path:
    """Local state, spool, locks and log (mode 0700: the spool holds conversation text)."""
    return Path.home() / ".claude-code-sync"


def state_dir() -> Path:
    return data_dir() / "state"


def spool_dir() -> Path:
    return data_dir() / "spool"


def rejected_dir() -> Path:
    return data_dir() / "rejected"


def log_file() -> Path:
    return data_dir() / "sync.log"


def ingest_lock() -> Path:
    return data_dir() / "ingest.lock"


def send_lock() -> Path:
    return data_dir() / "send.lock"


def ingest_status() -> Path:
    return data_dir() / "ingest-status.json"


def send_status() -> Path:
    return data_dir() / "send-status.json"


def claude_dir() -> Path:
    """Claude Code's own folder: $CLAUDE_CONFIG_DIR, else ~/.claude."""
    configured = os.environ.get("CLAUDE_CONFIG_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".claude"


def projects_dir() -> Path:
    return claude_dir() / "projects"


def ensure_data_dir() -> Path:
    path = data_dir()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path
