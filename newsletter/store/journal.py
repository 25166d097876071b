"""The delivery journal: one appended line per accepted message, between two store writes."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


class Journal:
    """Append-only lines of accepted deliveries, between two rewrites of the store.

    One write() per line on an O_APPEND descriptor: a process killed at any
    moment leaves every earlier line intact (at worst a torn last line, which
    is ignored). Lines are replayed into the store at the next open.
    """

    def __init__(self, path: Path, guard: Callable[[], None] | None = None):
        self.path = path
        self.guard = guard
        self._fd: int | None = None
        self.lines = 0

    def read(self) -> list[tuple[str, str, int, str]]:
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        entries = []
        for line in text.splitlines():
            try:
                item = json.loads(line)
                entries.append((item["key"], item["since"], int(item["cycle"]), item["at"]))
            except (ValueError, KeyError, TypeError):
                log.warning("%s: ignored a torn line", self.path)
        return entries

    def append(self, key: str, since: str, cycle: int, at: str) -> None:
        if self.guard is not None:
            self.guard()
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        line = json.dumps({"key": key, "since": since, "cycle": cycle, "at": at}) + "\n"
        os.write(self._fd, line.encode())
        self.lines += 1

    def clear(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
        elif self.path.exists():
            self.path.write_bytes(b"")
        self.lines = 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
