"""`claude-code-sync sync`: find every transcript under <Claude dir>/projects, filter, and show
progress on stderr (a bar on a terminal, plain lines otherwise)."""

import contextlib
import json
import os
import re
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TextIO

PEEK_LINES = 50


@dataclass
class Candidate:
    session_id: str
    path: Path
    project: str  # the folder under projects/ (the cwd with separators replaced by "-")
    sidechains: tuple[Path, ...] = ()  # agent-*.jsonl next to the sessions (older Claude Code)

    def modified(self) -> float:
        times = []
        for path in (self.path, *self.sidechains):
            with contextlib.suppress(OSError):
                times.append(path.stat().st_mtime)
        return max(times, default=0.0)


def peek(path: Path, key: str) -> str | None:
    """The first string value of top-level `key` in the first lines of a transcript."""
    try:
        with open(path, "rb") as handle:
            for _, line in zip(range(PEEK_LINES), handle, strict=False):
                try:
                    value = json.loads(line).get(key)
                except (ValueError, AttributeError):
                    continue
                if isinstance(value, str) and value:
                    return value
    except OSError:
        return None
    return None


def discover(root: Path) -> list[Candidate]:
    """Main transcripts (<project>/<session id>.jsonl), oldest first. Older Claude Code versions
    wrote subagent transcripts as <project>/agent-<id>.jsonl: those are attached to the session
    named in their lines, never treated as sessions."""
    candidates, agents = [], {}
    try:
        projects = sorted(p for p in root.iterdir() if p.is_dir())
    except OSError:
        return []
    for project in projects:
        for path in sorted(project.glob("*.jsonl")):
            if path.name.startswith("agent-"):
                parent = peek(path, "sessionId")
                if parent:
                    agents.setdefault((project.name, parent), []).append(path)
                continue
            candidates.append(Candidate(path.stem, path, project.name))
    for candidate in candidates:
        candidate.sidechains = tuple(agents.get((candidate.project, candidate.session_id), ()))
    return sorted(candidates, key=Candidate.modified)


def parse_since(text: str) -> float:
    """`YYYY-MM-DD` or an ISO date-time (local time unless it has an offset) -> epoch seconds."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a date: {text!r} (use YYYY-MM-DD or YYYY-MM-DDTHH:MM)") from None
    return moment.timestamp()


def encode_project_path(path: str) -> str:
    """Claude Code's folder name for a project: every character but letters and digits -> '-'."""
    return re.sub(r"[^A-Za-z0-9]", "-", path)


def matches_project(candidate: Candidate, wanted: str, cwd: str | None) -> bool:
    """`--project` takes a project name (the cwd's basename), a path, or the folder name."""
    wanted = wanted.rstrip("/\\") or wanted
    full = os.path.abspath(os.path.expanduser(wanted))
    names = {candidate.project}
    if cwd:
        names |= {cwd.rstrip("/\\"), os.path.basename(cwd.rstrip("/\\"))}
    return wanted in names or full in names or encode_project_path(full) == candidate.project


class Progress:
    def __init__(self, total: int, label: str, stream: TextIO = sys.stderr, quiet: bool = False):
        self.total, self.label, self.stream, self.quiet = total, label, stream, quiet
        self.tty = stream.isatty()
        self.done = 0

    def advance(self, note: str = "") -> None:
        self.done += 1
        if self.quiet:
            return
        if self.tty:
            width = 30
            filled = width * self.done // max(self.total, 1)
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(f"\r\033[K[{bar}] {self.done}/{self.total} {self.label}")
        else:
            self.stream.write(f"[{self.done}/{self.total}] {self.label}{': ' + note if note else ''}\n")
        self.stream.flush()

    def say(self, text: str) -> None:
        """A line that must not be overwritten by the bar."""
        self.stream.write(("\r\033[K" if self.tty else "") + text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty and self.done and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()
