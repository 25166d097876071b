"""Atomic file writes and the single-instance lock.

Every file we own (store, archive, subscriber files) is replaced, never edited
in place: write a temp file in the same directory, fsync it, rename it over the
old one, fsync the directory. A kill at any instant leaves the old file or the
new one, never half of each.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

from .crashpoints import crashpoint
from .errors import NewsletterError


def write_atomic(path: Path, data: bytes, mode: int = 0o644, *, name: str = "file") -> None:
    """Replace `path` with `data` atomically; `name` labels the crash points of this write."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        try:
            half = len(data) // 2
            _write_all(fd, data[:half])
            crashpoint(f"{name}-write-middle")
            _write_all(fd, data[half:])
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def remove_stale_temps(path: Path) -> None:
    """Delete temp files a killed writer of `path` left behind (call while holding the lock)."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            stale.unlink()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class AlreadyRunning(NewsletterError):
    """Another process holds the lock; str() names it."""


class InstanceLock:
    """An flock on a file next to the store, holding the owner's pid.

    flock, not a pid file alone: the kernel releases it when the process dies,
    so a crash never leaves a stale lock that blocks the next start.
    """

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise AlreadyRunning(
                f"{self.path}: another newsletter process is using this store"
                f" (pid {self.owner() or 'unknown'})"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def owner(self) -> int | None:
        try:
            text = self.path.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
