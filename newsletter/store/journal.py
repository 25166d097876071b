"""The delivery journal: one appended line per accepted message, between two store writes."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


class Journal:
    """Append-only lines of accepted deliveries, between two rewrites of the store.

    One write() per line on an O_APPEND descriptor: a process killed at any
    moment leaves every earlier line intact (at worst a torn last line, which
    is ignored). Lines are replayed into the store at the next open.

    A power loss is another matter: a line the kernel has not written out is
    lost, and its message is sent again. Lines are fsynced in groups, when the
    oldest unsynced one is `sync_ms` old (every line with 0): after a power loss
    at most the messages accepted within that time are sent twice, at the cost
    of one fsync per group rather than per message.
    """

    def __init__(self, path: Path, guard: Callable[[], None] | None = None, sync_ms: float = 0.0):
        self.path = path
        self.guard = guard
        self.sync_seconds = sync_ms / 1000
        self._fd: int | None = None
        self._unsynced_since: float | None = None
        self.lines = 0
        self.syncs = 0

    def read(self) -> list[tuple[str, str, int, str, str]]:
        """(key, since, cycle, at, day) of each line; `day` is "" in lines of the release
        before, which had none."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        entries = []
        for line in text.splitlines():
            try:
                item = json.loads(line)
                entry = (item["key"], item["since"], int(item["cycle"]), item["at"])
                entries.append((*entry, str(item.get("day", ""))))
            except (ValueError, KeyError, TypeError):
                log.warning("%s: ignored a torn line", self.path)
        return entries

    def append(self, key: str, since: str, cycle: int, at: str, day: str = "") -> None:
        if self.guard is not None:
            self.guard()
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        fields = {"key": key, "since": since, "cycle": cycle, "at": at}
        line = json.dumps(fields | ({"day": day} if day else {})) + "\n"
        os.write(self._fd, line.encode())
        self.lines += 1
        now = time.monotonic()
        if self._unsynced_since is None:
            self._unsynced_since = now
        if now - self._unsynced_since >= self.sync_seconds:
            self.sync()

    def sync(self) -> None:
        """Make every line appended so far survive a power loss."""
        if self._fd is not None and self._unsynced_since is not None:
            os.fdatasync(self._fd)
            self.syncs += 1
        self._unsynced_since = None

    def clear(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
        elif self.path.exists():
            self.path.write_bytes(b"")
        self.lines = 0
        self._unsynced_since = None

    def close(self) -> None:
        if self._fd is not None:
            self.sync()
            os.close(self._fd)
            self._fd = None
