"""README command 1 (`make run` = `python -m opensync.run`) on fresh data folders, over HTTP."""

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from .live import BASE_DIR, free_port, request, stop, wait_for_health

pytestmark = pytest.mark.slow


def launch(data_dir, port, pump: bool = True) -> tuple[subprocess.Popen, list[str]]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "PYTEST_CURRENT_TEST"}}
    env.update(
        DJANGO_SETTINGS_MODULE="opensync.settings", OPENSYNC_DATA_DIR=str(data_dir), PORT=str(port), WEB_CONCURRENCY="2"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "opensync.run"], cwd=BASE_DIR, env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []

    def pump_output():
        for line in proc.stdout:
            lines.append(line)

    import threading

    if pump:
        threading.Thread(target=pump_output, daemon=True).start()
    return proc, lines


def manage(data_dir, *args) -> str:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL"}}
    env.update(DJANGO_SETTINGS_MODULE="opensync.settings", OPENSYNC_DATA_DIR=str(data_dir))
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def leftovers(data_dir, port) -> list[str]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(data_dir) in cmdline or f"127.0.0.1:{port}" in cmdline:
            found.append(f"{proc.info['pid']}: {cmdline}")
    return found


def interrupt(proc) -> int:
    """Ctrl-C: the terminal sends SIGINT to the launcher."""
    if proc.poll() is not None:
        return proc.returncode
    os.kill(proc.pid, signal.SIGINT)
    return proc.wait(timeout=60)


def test_run_serves_syncs_stops_cleanly_and_restarts_with_data(tmp_path):
    data_a, data_b = tmp_path / "a", tmp_path / "b"
    port_a, port_b = free_port(), free_port()
    # Two data folders side by side on two ports.
    proc_a, out_a = launch(data_a, port_a)
    proc_b, out_b = launch(data_b, port_b)
    try:
        wait_for_health(port_a, proc_a)
        wait_for_health(port_b, proc_b)
        assert any("password:" in line for line in out_a), "first admin credentials are printed"
        assert (data_a / "admin-credentials.txt").exists()

        # manage.py from "another terminal" finds the running embedded database by itself.
        key = manage(data_a, "create_api_key", "--email", "dev@example.com").strip()
        assert key.startswith("osk_") and "\n" not in key
        status, body = request(port_a, "POST", "/sync/session", {"externalId": "s1", "title": "kept"}, key=key)
        assert (status, body["ok"]) == (200, True)
        status, _ = request(
            port_a,
            "POST",
            "/sync/message",
            {"sessionExternalId": "s1", "externalId": "m1", "role": "user", "textContent": "hi"},
            key=key,
        )
        assert status == 200
        assert request(port_b, "POST", "/sync/session", {"externalId": "s1"}, key=key)[0] == 401  # B has its own data

        # The Celery worker is up and reachable through the embedded broker. It may still be
        # booting after /health answers (gunicorn is faster), so ask until it replies.
        ping_env = {
            **{k: v for k, v in os.environ.items() if k not in {"CELERY_BROKER_URL", "DATABASE_URL"}},
            "DJANGO_SETTINGS_MODULE": "opensync.settings",
            "OPENSYNC_DATA_DIR": str(data_a),
        }
        deadline = time.monotonic() + 90
        while True:
            ping = subprocess.run(
                [sys.executable, "-m", "celery", "-A", "opensync", "inspect", "ping", "--timeout", "5"],
                cwd=BASE_DIR, capture_output=True, text=True, timeout=60, env=ping_env,
            )  # fmt: skip
            if "pong" in ping.stdout or time.monotonic() > deadline:
                break
        assert "pong" in ping.stdout, ping.stdout + ping.stderr
    except Exception:
        print("".join(out_a), "".join(out_b))
        raise
    finally:
        code_a = interrupt(proc_a)
        code_b = interrupt(proc_b)
    assert code_a == 0 and code_b == 0
    time.sleep(0.5)
    assert leftovers(data_a, port_a) == []
    assert leftovers(data_b, port_b) == []

    # Second start: seconds, not minutes; the data survived; no second admin.
    started = time.monotonic()
    proc_a, out_a = launch(data_a, port_a)
    try:
        wait_for_health(port_a, proc_a)
        second_start = time.monotonic() - started
        status, body = request(port_a, "GET", "/sync/sessions/list", key=key)
        assert (status, body) == (200, {"sessionIds": ["s1"]})
        assert not any("password:" in line for line in out_a)
    finally:
        assert interrupt(proc_a) == 0
    assert second_start < 30, f"second start took {second_start:.1f}s"
    time.sleep(0.5)
    assert leftovers(data_a, port_a) == []


def test_run_refuses_a_port_in_use(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc, out = launch(tmp_path / "data", port)
        assert proc.wait(timeout=60) == 1
    assert any("already in use" in line for line in out)


def test_sigterm_also_stops_everything(tmp_path):
    data, port = tmp_path / "data", free_port()
    proc, _ = launch(data, port)
    wait_for_health(port, proc)
    assert stop(proc, sig=signal.SIGTERM, timeout=60) == 0
    time.sleep(0.5)
    assert leftovers(data, port) == []


def test_ctrl_c_after_the_terminal_is_gone_still_stops_everything(tmp_path):
    """`make run | tee log` and Ctrl-C: tee dies first, so every later write to stdout fails."""
    data, port = tmp_path / "data", free_port()
    proc, _ = launch(data, port, pump=False)
    wait_for_health(port, proc)
    proc.stdout.close()
    assert interrupt(proc) == 0
    time.sleep(0.5)
    assert leftovers(data, port) == []


def test_a_dead_or_zombie_holder_does_not_keep_postgres_running():
    """`make run` prunes holders that died without unregistering before it releases PostgreSQL."""
    from opensync.settings.embedded import _alive

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _alive(os.getpid())
    assert not _alive(child.pid)  # exited, not yet reaped: still answers kill(pid, 0)
    child.wait()
    assert not _alive(child.pid)
