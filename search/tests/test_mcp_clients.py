"""The agents' configuration snippets for /mcp (search.mcp.clients): each parsed the way its
client reads it, on Settings → API keys (with a new key filled in) and in the README (with the
placeholder); the README's snippets must be the very ones the code makes."""

import html
import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest

from search.mcp import clients

README = Path(__file__).resolve().parents[2] / "README.md"
URL = "https://sync.example.com"
KEY = "osk_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcd"


def parsed(snippet: clients.Snippet):
    if snippet.language == "json":
        return json.loads(snippet.text)
    if snippet.language == "toml":
        return tomllib.loads(snippet.text)
    return shlex.split(snippet.text)


def check(by_client: dict[str, clients.Snippet], url: str, key: str) -> None:
    endpoint = f"{url}/mcp"
    assert set(by_client) == {"Claude Code", "OpenCode", "Codex", "Cursor"}
    # claude mcp add --transport http <name> <url> --header "Authorization: Bearer …" (options
    # after the name: --header takes several values and would swallow it)
    assert parsed(by_client["Claude Code"]) == [
        "claude", "mcp", "add", "--transport", "http", "opensync", endpoint, "--header", f"Authorization: Bearer {key}",
    ]  # fmt: skip
    # OpenCode: a remote server under mcp.servers (its V2 config), the header in `headers`
    opencode = parsed(by_client["OpenCode"])
    assert opencode["$schema"] == "https://opencode.ai/config.json"
    assert opencode["mcp"]["servers"]["opensync"] == {
        "type": "remote",
        "url": endpoint,
        "headers": {"Authorization": f"Bearer {key}"},
    }
    # Codex: [mcp_servers.<name>] with url; the key comes from the variable bearer_token_env_var names
    codex = parsed(by_client["Codex"])
    assert codex == {"mcp_servers": {"opensync": {"url": endpoint, "bearer_token_env_var": clients.KEY_ENV}}}
    assert f"export {clients.KEY_ENV}={key}" in by_client["Codex"].text
    # Cursor: mcp.json's mcpServers, url and headers
    assert parsed(by_client["Cursor"]) == {
        "mcpServers": {"opensync": {"url": endpoint, "headers": {"Authorization": f"Bearer {key}"}}}
    }


def test_each_snippet_parses_as_its_client_reads_it():
    check({s.client: s for s in clients.snippets(URL + "/", KEY)}, URL, KEY)


def test_the_readme_shows_exactly_these_snippets():
    """Every snippet (placeholder key, the default local URL) appears verbatim in a README code
    block of its language, so the README can't drift from what the app shows."""
    readme = README.read_text()
    blocks = re.findall(r"```(\w+)\n(.*?)```", readme, re.DOTALL)
    found = {}
    for snippet in clients.snippets("http://127.0.0.1:8000"):
        matching = [
            body for language, body in blocks if language == snippet.language and body.strip() == snippet.text.strip()
        ]
        assert matching, f"README has no {snippet.language} block with the {snippet.client} snippet:\n{snippet.text}"
        found[snippet.client] = clients.Snippet(snippet.client, snippet.where, snippet.language, matching[0])
    check(found, "http://127.0.0.1:8000", clients.PLACEHOLDER_KEY)


@pytest.mark.django_db
def test_settings_shows_the_snippets_with_a_new_key(client, user, personal_workspace):
    client.force_login(user)
    page = client.get("/settings/api-keys/").content.decode()
    assert "Let your agents search this history (MCP)" in page and "http://testserver/mcp" in page
    assert page.count('data-language="') == 4 and clients.PLACEHOLDER_KEY in page
    created = client.post(
        "/settings/api-keys/", {"name": "agent", "workspace": personal_workspace.pk, "scope": "read"}
    ).content.decode()
    key = re.search(r'<code id="new-key">(osk_[^<]+)</code>', created)[1]
    snippets = re.findall(
        r'<pre id="mcp-\d+" data-client="([^"]+)" data-language="(\w+)">(.*?)</pre>', created, re.DOTALL
    )
    shown = {name: clients.Snippet(name, "", language, html.unescape(text)) for name, language, text in snippets}
    check(shown, "http://testserver", key)
    assert clients.PLACEHOLDER_KEY not in created
