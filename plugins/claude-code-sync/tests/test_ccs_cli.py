"""login / logout / status / sync (backfill) from the command line."""

import json
import os
import stat
import time

from conftest import KEY, run_cli, usage

A = "aaaaaaaa-0000-4000-8000-000000000001"
B = "bbbbbbbb-0000-4000-8000-000000000002"


def config_path(home):
    return home / ".claude-code-sync.json"


def test_login_with_flags_checks_the_server_and_saves_0600(home, server):
    result = run_cli(home, "login", "--url", server.url + "/", "--key", KEY)
    assert result.returncode == 0, result.stderr
    assert "Connected" in result.stdout
    assert json.loads(config_path(home).read_text())["url"] == server.url
    assert stat.S_IMODE(config_path(home).stat().st_mode) == 0o600
    paths = [p for _, p, _, _ in server.requests]
    assert paths == ["/health", "/sync/sessions/list", "/sync/batch"]
    assert "Authorization" not in server.requests[0][3]  # /health needs no key


def test_login_asks_when_no_flags(home, server):
    result = run_cli(home, "login", stdin=f"{server.url}\n{KEY}\n")
    assert result.returncode == 0, result.stderr
    assert json.loads(config_path(home).read_text())["apiKey"] == KEY


def test_login_with_a_rejected_key_saves_nothing(home, server):
    result = run_cli(home, "login", "--url", server.url, "--key", "osk_bad")
    assert result.returncode == 1
    assert "rejected the API key" in result.stderr and "401" in result.stderr
    assert not config_path(home).exists()


def test_login_to_an_unreachable_server_saves_nothing(home, dead_url):
    result = run_cli(home, "login", "--url", dead_url, "--key", KEY)
    assert result.returncode == 1 and "not reachable" in result.stderr
    assert not config_path(home).exists()
    assert run_cli(home, "login", "--url", "ftp://x", "--key", KEY).returncode == 1


def test_logout_and_status(home, server):
    run_cli(home, "login", "--url", server.url, "--key", KEY)
    status = run_cli(home, "status")
    assert status.returncode == 0
    for expected in (
        "Connection:",
        "ok (server reachable, key accepted)",
        "Sessions synced:",
        "Last sync:",
        "Queue:",
        "Corrupt lines skipped:",
        "osk_test…6789",
    ):
        assert expected in status.stdout
    assert run_cli(home, "logout").returncode == 0
    assert "url" not in json.loads(config_path(home).read_text())
    after = run_cli(home, "status")
    assert after.returncode == 1 and "not configured" in after.stdout


def test_status_reports_an_unreachable_server(home, dead_url):
    config_path(home).write_text(json.dumps({"url": dead_url, "apiKey": KEY}))
    assert "unreachable" in run_cli(home, "status").stdout


def write_session(make_transcript, session_id, cwd, text, days_ago=0):
    t = make_transcript(session_id=session_id, cwd=cwd)
    t.user(text)
    t.assistant(f"msg_{session_id[:4]}", [{"type": "text", "text": f"re: {text}"}], usage(3, 4))
    stamp = time.time() - days_ago * 86400
    os.utime(t.path, (stamp, stamp))
    return t


def test_sync_backfills_with_filters_dry_run_and_progress(configured, home, make_transcript):
    write_session(make_transcript, A, "/home/dev/src/alpha", "old work", days_ago=30)
    b = write_session(make_transcript, B, "/home/dev/src/beta", "new work")
    b.write(raw="{broken\n")
    # a subagent transcript from older Claude Code, next to the sessions: not a session itself
    agent = b.path.parent / "agent-abc123.jsonl"
    side = {
        "type": "assistant",
        "isSidechain": True,
        "sessionId": B,
        "uuid": "x",
        "message": {"id": "msg_side", "model": b.model, "content": [], "usage": usage(100, 100)},
    }
    agent.write_text(json.dumps(side) + "\n")

    dry = run_cli(home, "sync", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would send 4 messages and 2 session updates from 2 sessions" in dry.stdout
    assert "[2/2] sessions read" in dry.stderr  # plain progress lines when not a terminal
    assert "skipped a corrupt line" in dry.stderr
    assert configured.batches() == [] and not (home / ".claude-code-sync" / "state").exists()

    since = time.strftime("%Y-%m-%d", time.localtime(time.time() - 7 * 86400))
    recent = run_cli(home, "sync", "--since", since)
    assert recent.returncode == 0, recent.stderr
    assert [m["textContent"] for m in configured.messages()] == ["new work", "re: new work"]
    session = configured.sessions()[0]
    assert session["externalId"] == B and session["promptTokens"] == 103  # the subagent's usage counts

    only_alpha = run_cli(home, "sync", "--project", "alpha")
    assert only_alpha.returncode == 0
    assert [m["textContent"] for m in configured.messages()][2:] == ["old work", "re: old work"]
    again = run_cli(home, "sync")
    assert "Nothing to send." in again.stdout and len(configured.messages()) == 4
    status = run_cli(home, "status").stdout
    assert "Sessions synced:       2" in status and "Corrupt lines skipped: 1" in status


def test_sync_project_accepts_a_path_and_claude_config_dir(home, configured, tmp_path):
    claude = tmp_path / "elsewhere"
    folder = claude / "projects" / "-home-dev-src-gamma"
    folder.mkdir(parents=True)
    entry = {
        "type": "user",
        "uuid": "u1",
        "sessionId": "g1",
        "cwd": "/home/dev/src/gamma",
        "timestamp": "2026-01-20T10:00:00.000Z",
        "message": {"role": "user", "content": "from gamma"},
    }
    (folder / "g1.jsonl").write_text(json.dumps(entry) + "\n")
    result = run_cli(home, "sync", "--project", "/home/dev/src/gamma", env={"CLAUDE_CONFIG_DIR": str(claude)})
    assert result.returncode == 0, result.stderr
    assert [m["textContent"] for m in configured.messages()] == ["from gamma"]


def test_sync_without_configuration_fails_clearly(home):
    result = run_cli(home, "sync")
    assert result.returncode == 1 and "login" in result.stderr


def test_sync_with_a_rejected_key_says_so_and_keeps_the_queue(home, server, make_transcript):
    config_path(home).write_text(json.dumps({"url": server.url, "apiKey": "osk_revoked"}))
    write_session(make_transcript, A, "/home/dev/src/alpha", "hello")
    result = run_cli(home, "sync")
    assert result.returncode == 1
    assert "rejected the API key" in result.stderr and "1 batches stay queued" in result.stderr


def test_the_flusher_reads_a_backlog_in_slices_letting_hooks_in(home, make_transcript, monkeypatch):
    """The rest of a huge transcript is read with the ingest lock released between slices: a hook
    (which waits 0.25 s for it) must not find it held for the whole read."""
    from claude_code_sync import cli, config, paths, spool
    from claude_code_sync.locks import FileLock

    t = make_transcript()
    for n in range(5):
        t.user(f"prompt {n}")
    free_between_slices = []

    def pause(seconds):  # what a waiting hook would find between two slices
        probe = FileLock(paths.ingest_lock())
        free_between_slices.append(probe.acquire())
        probe.release()

    monkeypatch.setattr(cli, "READ_SLICE", 0)  # one line a slice
    monkeypatch.setattr(cli.time, "sleep", pause)
    paths.ensure_data_dir()
    cli._finish_reading(config.load(), t.session_id, t.path)
    assert free_between_slices == [True] * 4  # five one-line slices, the lock free between them
    queued = [json.loads(p.read_text())["messages"] for p in spool.chunk_files()]
    assert [m["textContent"] for chunk in queued for m in chunk] == [f"prompt {n}" for n in range(5)]
