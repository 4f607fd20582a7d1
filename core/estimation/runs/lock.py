"""One writer per run folder: the run's lock file (``RunDir.lock_path``) holds the writer's PID while it runs.

The lock is an ``flock`` on the lock file (so the kernel releases it when the writer dies,
however it dies) and the file's content says who holds it (PID, host, start time), so a
refused second writer can name the holder. A lock file left by a dead process is stale: the
next writer takes it over and says so.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from core.errors import RunStateError


def read_lock(path: str | os.PathLike) -> dict[str, Any] | None:
    """The holder recorded in a lock file (None when absent or unreadable)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError, UnicodeDecodeError):
        return None


def _holder_of_busy_lock(path: Path, wait: float = 2.0) -> dict[str, Any]:
    """The holder of a lock another process holds; waits briefly, because the holder takes the
    flock first and writes its PID just after, so a loser racing it can find the file still empty."""
    deadline = time.monotonic() + wait
    while True:
        holder = read_lock(path) or {}
        if holder.get("pid") or time.monotonic() >= deadline:
            return holder
        time.sleep(0.02)


class RunLock:
    """Context manager holding ``path`` exclusively; raises :class:`RunStateError` if another process holds it."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._fd: int | None = None
        self.stale: dict[str, Any] | None = None  # the dead holder whose lock was taken over, if any

    def acquire(self) -> "RunLock":
        for _ in range(20):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:  # read-only folder, permission denied, disk full
                raise RunStateError(f"{self.path.parent}: cannot write the run folder ({exc.strerror}); choose a "
                                    "folder you may write to, or fix its permissions.") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                holder = _holder_of_busy_lock(self.path)
                pid = holder.get("pid", "?")
                raise RunStateError(
                    f"{self.path.parent}: another process (PID {pid} on {holder.get('host', '?')}, started "
                    f"{holder.get('started', '?')}) is writing this run; wait for it to finish or stop it first. "
                    "Two writers on one run folder are refused.") from None
            # The file may have been removed and recreated between open and flock: lock the current one.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            old = read_lock(self.path)
            if old and old.get("pid") and old.get("pid") != os.getpid():
                self.stale = old  # its writer died without releasing (the kernel dropped its flock)
            info = {"pid": os.getpid(), "host": socket.gethostname(),
                    "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
            os.fsync(fd)
            self._fd = fd
            return self
        raise RunStateError(f"{self.path}: could not take the run lock (the file keeps changing); retry.")

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:  # gone, or the folder became read-only: closing the fd below still releases the lock
            pass
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def holder_of(path: str | os.PathLike) -> dict[str, Any] | None:
    """Who holds the lock file ``path`` right now (PID, host, started), or None when nobody does.

    Never blocks and never takes the lock for longer than the check. The run folder names its
    lock file: ask :meth:`core.estimation.runs.folder.RunDir.writer`.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return read_lock(path) or {"pid": None}
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
