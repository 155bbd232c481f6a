"""How each agent connects to /mcp: the configuration snippets Settings → API keys shows (with the
new key in them) and the README shows (with a placeholder). Each client's format is its own
documented one; search/tests/test_mcp_clients.py parses every snippet as that client would."""

import json
import shlex
from dataclasses import dataclass

PLACEHOLDER_KEY = "osk_YOUR_KEY"
SERVER_NAME = "opensync"
KEY_ENV = "OPENSYNC_API_KEY"


@dataclass(frozen=True)
class Snippet:
    client: str  # who reads it
    where: str  # the command to run, or the file it goes in
    language: str  # sh, json or toml
    text: str


def endpoint(base_url: str) -> str:
    return f"{base_url.rstrip('/')}/mcp"


def snippets(base_url: str, key: str = PLACEHOLDER_KEY) -> list[Snippet]:
    url = endpoint(base_url)
    header = f"Bearer {key}"
    claude = shlex.join(
        ["claude", "mcp", "add", "--transport", "http", SERVER_NAME, url, "--header", f"Authorization: {header}"]
    )
    opencode = {
        "$schema": "https://opencode.ai/config.json",
        "mcp": {"servers": {SERVER_NAME: {"type": "remote", "url": url, "headers": {"Authorization": header}}}},
    }
    # Codex takes no token in the file: it reads the key from the environment variable named there
    codex = (
        f"# export {KEY_ENV}={key}\n"
        f"[mcp_servers.{SERVER_NAME}]\n"
        f"url = {json.dumps(url)}\n"
        f'bearer_token_env_var = "{KEY_ENV}"\n'
    )
    cursor = {"mcpServers": {SERVER_NAME: {"url": url, "headers": {"Authorization": header}}}}
    return [
        Snippet("Claude Code", "Run in a terminal", "sh", claude),
        Snippet("OpenCode", "opencode.json (in the project, or ~/.config/opencode/)", "json", _json(opencode)),
        Snippet("Codex", f"~/.codex/config.toml, with {KEY_ENV} exported in Codex's environment", "toml", codex),
        Snippet("Cursor", "~/.cursor/mcp.json (or the project's .cursor/mcp.json)", "json", _json(cursor)),
    ]


def _json(value: dict) -> str:
    return json.dumps(value, indent=2)
