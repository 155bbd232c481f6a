"""claude-code-sync: push Claude Code sessions to a self-hosted OpenSync server."""

__version__ = "0.1.0"
SOURCE = "claude-code"
