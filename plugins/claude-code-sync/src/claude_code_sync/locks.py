"""An exclusive lock on a file: fcntl.flock where available, else an O_EXCL lock file.

flock locks die with their process, so a crashed hook never leaves a lock behind. The fallback
(no fcntl, e.g. Windows) treats a lock file older than STALE_SECONDS as abandoned; a long holder
calls refresh().
"""

import contextlib
import os
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - exercised by monkeypatching in the tests
    fcntl = None

POLL_SECONDS = 0.02
STALE_SECONDS = 300


class FileLock:
    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None
        self._fallback_path: Path | None = None

    def acquire(self, timeout: float = 0) -> bool:
        """Try for up to `timeout` seconds (0: once). True when the lock is held."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        while True:
            if self._try():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_SECONDS)

    def _try(self) -> bool:
        if fcntl is None:
            return self._try_exclusive_file()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def _try_exclusive_file(self) -> bool:
        path = self.path.with_name(self.path.name + ".held")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            try:
                if time.time() - path.stat().st_mtime > STALE_SECONDS:
                    path.unlink(missing_ok=True)
            except OSError:
                pass
            return False
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        self._fallback_path = path
        return True

    def refresh(self) -> None:
        """Show that the holder is alive: the fallback lock file's age is how others tell a crashed
        holder, so a holder busy for longer than STALE_SECONDS must refresh it now and then."""
        if self._fallback_path is not None:
            with contextlib.suppress(OSError):
                os.utime(self._fallback_path)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None
        if self._fallback_path is not None:
            self._fallback_path.unlink(missing_ok=True)
            self._fallback_path = None
