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
import logging
import os
import stat
from pathlib import Path

from .crashpoints import crashpoint
from .errors import NewsletterError

log = logging.getLogger(__name__)
_warned: set[str] = set()


def exposure(path: Path, what: str) -> str:
    """ "" when only its owner can read `path` (a password, the token secret); else the
    problem, in one line naming the file. We never chmod it ourselves: who may read it
    is the admin's decision, made visible."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return ""
    if not mode & (stat.S_IRGRP | stat.S_IROTH):
        return ""
    return (
        f"{path}: {what} can be read by group or others (mode {stat.filemode(mode)}); "
        f"chmod 600 {path}"
    )


def check_private(path: Path, what: str) -> str:
    """`exposure`, logged as a WARNING once per file and mode (the preflight warnings
    at start count as that once)."""
    problem = exposure(path, what)
    if problem and problem not in _warned:
        _warned.add(problem)
        log.warning("%s", problem)
    return problem


def already_warned(problem: str) -> None:
    """Said by the caller (the warnings at start): `check_private` need not say it again."""
    _warned.add(problem)


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


class LostLock(NewsletterError):
    """The locked folder is no longer the one at its path: another process may now use the
    store there, so this one must stop writing."""


class InstanceLock:
    """An flock on the store's folder, with the owner's pid in the lock file.

    flock, not a pid file alone: the kernel releases it when the process dies,
    so a crash never leaves a stale lock. The folder, not the file: a lock file
    can be deleted under a running instance, and the next process would lock a
    new one beside it; the folder cannot be removed while it holds the store.
    If it is replaced all the same (moved away, made anew), `check` says so
    before a write, so the writes stop instead of landing beside another
    instance's. One store per folder, then: two would lock each other out.
    """

    def __init__(self, path: Path):
        self.path = path  # the lock file, holding the owner's pid (for people and status)
        self.folder = path.parent
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None

    def acquire(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
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
        self._fd = fd
        stat = os.fstat(fd)
        self._identity = (stat.st_dev, stat.st_ino)
        write_atomic(self.path, f"{os.getpid()}\n".encode(), name="lock")

    def check(self) -> None:
        """Raise LostLock when the folder at the lock's path is not the one locked."""
        if self._identity is None:
            return
        try:
            stat = os.stat(self.folder)
            current = (stat.st_dev, stat.st_ino)
        except OSError:
            current = None
        if current != self._identity:
            raise LostLock(
                f"{self.folder}: the store's folder was removed or replaced while this process "
                "ran, so another one may be using the store there; stopping without writing"
            )

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
            self._identity = None
