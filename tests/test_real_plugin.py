"""The real claude-code-sync plugin (from npm, unchanged) against our server, driven exactly as
Claude Code drives it: hook JSON on stdin, a transcript file on disk."""

import json
import os
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import pytest

from sessions_app.models import Session

from .live import BASE_DIR, node_executable, npm_command

PLUGIN = "claude-code-sync@0.1.15"
SID = "0f3c9a52-7b1e-4d2a-9c61-2b8e5d4a1f00"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(npm_command() is None, reason="needs Node.js/npm to install the real plugin"),
]


@pytest.fixture(scope="module")
def plugin_cli():
    """Install the published plugin once into the (git-ignored) data folder."""
    prefix = BASE_DIR / "data" / "test-plugins" / "claude-code-sync"
    cli = prefix / "node_modules" / ".bin" / "claude-code-sync"
    if not cli.exists():
        prefix.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [*npm_command(), "install", "--prefix", str(prefix), "--no-audit", "--no-fund", PLUGIN],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return str(cli)


def transcript_lines(cwd: str) -> list[dict]:
    common = {"cwd": cwd, "sessionId": SID, "slug": "add-health-endpoint", "version": "2.0.42", "gitBranch": "main"}

    def assistant(n, content, usage):
        return {
            **common,
            "type": "assistant",
            "uuid": f"11111111-0000-4000-8000-00000000000{n}",
            "timestamp": f"2026-01-20T10:00:0{n}.000Z",
            "message": {
                "id": f"msg_{n}",
                "role": "assistant",
                "model": "claude-sonnet-4-20250514",
                "content": content,
                "usage": dict(
                    zip(
                        ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens"),
                        usage,
                        strict=True,
                    )
                ),
            },
        }

    return [
        {"type": "file-history-snapshot", "messageId": "x", "snapshot": {}, "timestamp": "2026-01-20T10:00:00.000Z"},
        {**common, "type": "user", "uuid": "11111111-0000-4000-8000-000000000001", "timestamp": "2026-01-20T10:00:01.000Z",
         "message": {"role": "user", "content": "Add a /health endpoint to server.py"}},
        assistant(2, [{"type": "text", "text": "I'll add a /health endpoint to server.py."}], (1200, 300, 5000, 40)),
        assistant(3, [{"type": "tool_use", "id": "toolu_01XYZ", "name": "Edit", "input": {"file_path": f"{cwd}/server.py", "old_string": "a", "new_string": "b"}}], (10, 0, 0, 120)),
        {**common, "type": "user", "uuid": "11111111-0000-4000-8000-000000000004", "timestamp": "2026-01-20T10:00:04.000Z",
         "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01XYZ", "content": "ok"}]}},
        {**assistant(5, [{"type": "text", "text": 'Done. GET /health now returns {"ok": true}.'}], (50, 0, 6000, 25)), "timestamp": "2026-01-20T10:00:09.500Z"},
    ]  # fmt: skip


def run_hook(cli, env, event, payload):
    result = subprocess.run(
        [cli, "hook", event], input=json.dumps(payload), env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    # The plugin always exits 0; failures only show on stderr.
    assert "Failed" not in result.stderr and "Error" not in result.stderr, result.stderr
    return result


@pytest.mark.parametrize("base_suffix", ["", "/", "/convex.site"])
def test_real_claude_code_sync_session_arrives(plugin_cli, gunicorn_server, sync_key, tmp_path, base_suffix):
    home = tmp_path / "home"
    cwd = home / "proj" / "demo-app"
    cwd.mkdir(parents=True)
    transcript = home / ".claude" / "projects" / "-proj-demo-app" / f"{SID}.jsonl"
    transcript.parent.mkdir(parents=True)
    transcript.write_text("\n".join(json.dumps(line) for line in transcript_lines(str(cwd))) + "\n")
    env = {
        # the plugin's `#!/usr/bin/env node` finds the same Node that installed it
        "PATH": f"{Path(node_executable()).parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(home),
        "CLAUDE_SYNC_CONVEX_URL": f"{gunicorn_server.url}{base_suffix}",
        "CLAUDE_SYNC_API_KEY": sync_key,
    }
    status = subprocess.run([plugin_cli, "synctest"], env=env, capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and "Failed" not in status.stdout + status.stderr, status.stdout + status.stderr

    base = {"session_id": SID, "transcript_path": str(transcript), "cwd": str(cwd), "permission_mode": "default"}
    run_hook(plugin_cli, env, "SessionStart", {**base, "hook_event_name": "SessionStart", "source": "startup"})
    run_hook(
        plugin_cli,
        env,
        "UserPromptSubmit",
        {**base, "hook_event_name": "UserPromptSubmit", "prompt": "Add a /health endpoint to server.py"},
    )
    run_hook(plugin_cli, env, "PostToolUse", {**base, "hook_event_name": "PostToolUse", "tool_name": "Edit", "tool_use_id": "toolu_01XYZ",
                                              "tool_input": {"file_path": f"{cwd}/server.py", "old_string": "a", "new_string": "b"}, "tool_response": {"success": True}})  # fmt: skip
    run_hook(plugin_cli, env, "Stop", {**base, "hook_event_name": "Stop", "stop_hook_active": False})
    run_hook(plugin_cli, env, "SessionEnd", {**base, "hook_event_name": "SessionEnd", "reason": "prompt_input_exit"})

    session = Session.objects.get(external_id=SID)
    assert session.source == "claude-code"
    assert session.title == "add-health-endpoint"
    assert session.project_name == "demo-app"
    assert session.model == "claude-sonnet-4-20250514"
    assert (session.prompt_tokens, session.completion_tokens, session.total_tokens) == (12560, 185, 12745)
    assert session.cost == Decimal("0.01098")
    assert session.duration_ms == 9500
    assert session.message_count == 4
    rows = list(session.messages.order_by("created_at", "order").values_list("role", "text_content"))
    assert rows == [
        ("user", "Add a /health endpoint to server.py"),
        ("assistant", None),
        ("assistant", "I'll add a /health endpoint to server.py."),
        ("assistant", 'Done. GET /health now returns {"ok": true}.'),
    ]
    tool = session.messages.get(external_id="toolu_01XYZ").parts.get()
    assert tool.type == "tool-call" and tool.content["toolName"] == "Edit"
    # synctest's probe session arrived too
    assert Session.objects.filter(title="Connection Test", source="claude-code").count() == 1


def login(cli, env, url: str, key: str) -> subprocess.CompletedProcess:
    """`claude-code-sync login` answered as a person would: the URL, then the key. Its readline is
    re-created per question, so the key must come after a pause or it is lost."""
    proc = subprocess.Popen(
        [cli, "login"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    )
    proc.stdin.write(url + "\n")
    proc.stdin.flush()
    time.sleep(1.5)
    out, err = proc.communicate(key + "\n", timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_real_login_accepts_the_dot_convex_site_base_url(plugin_cli, gunicorn_server, sync_key, tmp_path):
    """The README's `login` form, http://host:port/opensync.convex.site, passes the plugin's own
    check ("must contain convex.site"; opencode-sync wants ".convex.site"), its /health probe, and
    then carries the plugin's syncs."""
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": f"{Path(node_executable()).parent}{os.pathsep}{os.environ['PATH']}", "HOME": str(home)}
    url = f"{gunicorn_server.url}/opensync.convex.site"
    result = login(plugin_cli, env, url, sync_key)
    assert result.returncode == 0 and "Configuration saved" in result.stdout, result.stdout + result.stderr
    saved = json.loads((home / ".config" / "claude-code-sync" / "config.json").read_text())
    assert saved["convexUrl"] == url and saved["apiKey"] == sync_key

    status = subprocess.run([plugin_cli, "synctest"], env=env, capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and "Failed" not in status.stdout + status.stderr, status.stdout + status.stderr
    assert Session.objects.filter(title="Connection Test", source="claude-code").count() == 1
