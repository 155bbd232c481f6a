"""Settings: ~/.claude-code-sync.json (mode 0600), overridden by environment variables.

Server URL: OPENSYNC_URL, else CLAUDE_SYNC_CONVEX_URL (the upstream plugin's), else the file's
`url` (or upstream's `convexUrl`). API key: OPENSYNC_API_KEY, else CLAUDE_SYNC_API_KEY, else
`apiKey`. Options: autoSync, syncToolCalls, syncThinking, redactSecrets, each overridable by
CLAUDE_SYNC_AUTO_SYNC / CLAUDE_SYNC_TOOL_CALLS / CLAUDE_SYNC_THINKING / CLAUDE_SYNC_REDACT.
"""

import os
import stat
from dataclasses import dataclass

from . import log, paths, storage

OPTIONS = {
    # file key: (default, environment variable)
    "autoSync": (True, "CLAUDE_SYNC_AUTO_SYNC"),
    "syncToolCalls": (True, "CLAUDE_SYNC_TOOL_CALLS"),
    "syncThinking": (False, "CLAUDE_SYNC_THINKING"),
    "redactSecrets": (True, "CLAUDE_SYNC_REDACT"),
}
URL_SOURCES = (("OPENSYNC_URL", "env OPENSYNC_URL"), ("CLAUDE_SYNC_CONVEX_URL", "env CLAUDE_SYNC_CONVEX_URL"))
KEY_SOURCES = (("OPENSYNC_API_KEY", "env OPENSYNC_API_KEY"), ("CLAUDE_SYNC_API_KEY", "env CLAUDE_SYNC_API_KEY"))
TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Config:
    url: str | None
    api_key: str | None
    url_source: str | None
    key_source: str | None
    auto_sync: bool
    tool_calls: bool
    thinking: bool
    redact: bool

    @property
    def configured(self) -> bool:
        return bool(self.url and self.api_key)


def normalise_url(url: str) -> str:
    """Upstream's `.convex.cloud` -> `.convex.site` (first occurrence), no trailing slash."""
    return url.strip().replace(".convex.cloud", ".convex.site", 1).rstrip("/")


def env_bool(name: str) -> bool | None:
    value = os.environ.get(name, "").strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    return None


def read_file() -> dict:
    """The config file's object ({} when missing or invalid), tightening its mode to 0600."""
    path = paths.config_file()
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return {}
    if mode & 0o077:
        try:
            path.chmod(0o600)
            log.warning(f"{path} was readable by others (mode {mode:o}); changed it to 0600")
        except OSError as exc:
            log.warning(f"could not chmod {path}: {exc}")
    data = storage.read_json(path, {})
    return data if isinstance(data, dict) else {}


def _pick(data: dict, env_sources, file_keys) -> tuple[str | None, str | None]:
    for name, label in env_sources:
        value = os.environ.get(name, "").strip()
        if value:
            return value, label
    for key in file_keys:
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip(), str(paths.config_file())
    return None, None


def load() -> Config:
    data = read_file()
    url, url_source = _pick(data, URL_SOURCES, ("url", "convexUrl"))
    key, key_source = _pick(data, KEY_SOURCES, ("apiKey",))
    options = {}
    for file_key, (default, env_name) in OPTIONS.items():
        value = env_bool(env_name)
        if value is None:
            value = data.get(file_key) if isinstance(data.get(file_key), bool) else default
        options[file_key] = value
    return Config(
        url=normalise_url(url) if url else None,
        api_key=key,
        url_source=url_source,
        key_source=key_source,
        auto_sync=options["autoSync"],
        tool_calls=options["syncToolCalls"],
        thinking=options["syncThinking"],
        redact=options["redactSecrets"],
    )


def write_file(data: dict) -> None:
    storage.write_json(paths.config_file(), data)
    paths.config_file().chmod(0o600)


def save_credentials(url: str, api_key: str) -> None:
    data = read_file()
    data.pop("convexUrl", None)
    data.update({"url": normalise_url(url), "apiKey": api_key})
    for file_key, (default, _env) in OPTIONS.items():
        data.setdefault(file_key, default)
    write_file(data)


def clear_credentials() -> bool:
    """Forget the URL and key (options stay). True when there was something to forget."""
    data = read_file()
    removed = [key for key in ("url", "convexUrl", "apiKey") if data.pop(key, None) is not None]
    if removed:
        write_file(data)
    return bool(removed)


def mask_key(key: str) -> str:
    return key if len(key) <= 12 else f"{key[:8]}…{key[-4:]}"
