"""Configuration: the file (mode 0600), environment overrides, upstream's variables."""

import json
import stat

import pytest
from claude_code_sync import config


def write(home, data, mode=0o600):
    path = home / ".claude-code-sync.json"
    path.write_text(json.dumps(data))
    path.chmod(mode)
    return path


def test_defaults_when_nothing_is_configured(home):
    cfg = config.load()
    assert not cfg.configured
    assert (cfg.auto_sync, cfg.tool_calls, cfg.thinking, cfg.redact) == (True, True, False, True)


def test_file_values_and_upstream_convex_url_key(home):
    write(home, {"convexUrl": "https://happy-otter-123.convex.cloud/", "apiKey": "osk_a", "syncThinking": True})
    cfg = config.load()
    assert cfg.url == "https://happy-otter-123.convex.site"
    assert cfg.api_key == "osk_a" and cfg.thinking is True and cfg.configured
    assert cfg.url_source == str(home / ".claude-code-sync.json")


def test_environment_overrides_the_file_opensync_first(home, monkeypatch):
    write(home, {"url": "http://file:1", "apiKey": "osk_file"})
    monkeypatch.setenv("CLAUDE_SYNC_CONVEX_URL", "http://upstream:2/")
    monkeypatch.setenv("CLAUDE_SYNC_API_KEY", "osk_upstream")
    cfg = config.load()
    assert (cfg.url, cfg.api_key, cfg.url_source) == ("http://upstream:2", "osk_upstream", "env CLAUDE_SYNC_CONVEX_URL")
    monkeypatch.setenv("OPENSYNC_URL", "http://opensync:3")
    monkeypatch.setenv("OPENSYNC_API_KEY", "osk_env")
    cfg = config.load()
    assert (cfg.url, cfg.api_key, cfg.key_source) == ("http://opensync:3", "osk_env", "env OPENSYNC_API_KEY")


@pytest.mark.parametrize(
    ("value", "expected"), [("false", False), ("0", False), ("no", False), ("true", True), ("ON", True), ("?", True)]
)
def test_boolean_environment_options(home, monkeypatch, value, expected):
    write(home, {"syncToolCalls": True})
    monkeypatch.setenv("CLAUDE_SYNC_TOOL_CALLS", value)
    assert config.load().tool_calls is expected


def test_save_writes_mode_0600_and_logout_keeps_options(home):
    write(home, {"syncThinking": True}, mode=0o600)
    config.save_credentials("http://127.0.0.1:8000/", "osk_key")
    path = home / ".claude-code-sync.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["url"] == "http://127.0.0.1:8000" and data["apiKey"] == "osk_key"
    assert (data["syncThinking"], data["autoSync"], data["syncToolCalls"], data["redactSecrets"]) == (True,) * 4
    assert config.clear_credentials() is True
    assert json.loads(path.read_text())["syncThinking"] is True and not config.load().configured
    assert config.clear_credentials() is False


def test_a_file_readable_by_others_is_fixed_on_read(home):
    path = write(home, {"url": "http://x", "apiKey": "osk_x"}, mode=0o644)
    assert config.load().configured
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_invalid_file_is_ignored(home):
    (home / ".claude-code-sync.json").write_text("{not json")
    assert not config.load().configured


def test_key_masking():
    assert config.mask_key("osk_abcdefghijklmnopqrstuvwxyz123456") == "osk_abcd…3456"
