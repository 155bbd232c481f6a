"""The Claude Code plugin itself: manifest, hooks, slash commands, marketplace entry."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ("SessionStart", "UserPromptSubmit", "PostToolUse", "Stop", "SessionEnd")


def test_manifest_names_the_plugin():
    manifest = json.loads((ROOT / ".claude-plugin" / "plugin.json").read_text())
    assert manifest["name"] == "claude-code-sync"
    assert re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", manifest["name"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"])
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{manifest["version"]}"' in pyproject


def test_hooks_run_the_cli_on_every_event():
    hooks = json.loads((ROOT / "hooks" / "hooks.json").read_text())["hooks"]
    assert set(hooks) == set(EVENTS)
    for event in EVENTS:
        [group] = hooks[event]
        [command] = group["hooks"]
        assert command == {"type": "command", "command": f"claude-code-sync hook {event}", "timeout": 10}
    assert hooks["PostToolUse"][0]["matcher"] == "*"


@pytest.mark.parametrize(
    ("name", "command"), [("sync-status", "claude-code-sync status"), ("sync-now", "claude-code-sync sync")]
)
def test_slash_commands(name, command):
    text = (ROOT / "commands" / f"{name}.md").read_text()
    front, body = re.match(r"^---\n(.*?)\n---\n(.*)$", text, re.DOTALL).groups()
    fields = dict(line.split(": ", 1) for line in front.splitlines())
    assert fields["description"]
    assert fields["allowed-tools"] == f"Bash({command}:*)"
    assert f"!`{command}" in body


def test_marketplace_lists_this_folder():
    marketplace = json.loads((ROOT / ".claude-plugin" / "marketplace.json").read_text())
    assert marketplace["owner"]["name"]
    [entry] = marketplace["plugins"]
    assert entry["name"] == "claude-code-sync" and entry["source"] == "./"
