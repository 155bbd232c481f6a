"""The file lock: exclusive, released on close, with a fallback where fcntl is missing."""

from claude_code_sync import locks


def test_lock_is_exclusive_and_released(tmp_path):
    first, second = locks.FileLock(tmp_path / "x.lock"), locks.FileLock(tmp_path / "x.lock")
    assert first.acquire()
    assert not second.acquire(timeout=0.1)
    first.release()
    assert second.acquire()
    second.release()


def test_fallback_without_fcntl(tmp_path, monkeypatch):
    monkeypatch.setattr(locks, "fcntl", None)
    first, second = locks.FileLock(tmp_path / "x.lock"), locks.FileLock(tmp_path / "x.lock")
    assert first.acquire()
    assert not second.acquire(timeout=0.05)
    first.release()
    assert second.acquire()
    second.release()
    assert not (tmp_path / "x.lock.held").exists()


def test_fallback_breaks_a_stale_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(locks, "fcntl", None)
    monkeypatch.setattr(locks, "STALE_SECONDS", 0)
    (tmp_path / "x.lock.held").write_text("12345")  # left by a crashed process
    assert locks.FileLock(tmp_path / "x.lock").acquire(timeout=0.2)
