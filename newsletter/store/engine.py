"""TinyDB's file layer for a store that must survive any kill: atomic writes, one per batch.

TinyDB rewrites its whole file on every write and reads it on every query, so:

- reads come from memory: the file is parsed once, and only this process
  writes it (the instance lock guarantees that);
- writes are grouped: inside `batch()` any number of table operations make one
  file write;
- every write is atomic (temp file, fsync, rename): a kill leaves the previous
  file or the next one, and a file we cannot parse is reported, never reset.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tinydb.middlewares import Middleware
from tinydb.storages import Storage

from ..errors import NewsletterError
from ..files import write_atomic


class StoreError(NewsletterError):
    """The store cannot be used as it is; str() names the file and the problem."""


class AtomicJSONStorage(Storage):
    """TinyDB's JSONStorage rewrites the file in place; this one replaces it atomically."""

    def __init__(self, path: Path):
        self.path = path

    def read(self) -> dict[str, Any] | None:
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise StoreError(f"{self.path}: cannot read the store: {err.strerror}") from None
        if not text.strip():
            raise StoreError(
                f"{self.path}: the store file is empty; restore it from a backup or move it away"
            )
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as err:
            raise StoreError(
                f"{self.path}: the store is not valid JSON ({err}); "
                "it was left untouched: restore it from a backup or move it away"
            ) from None
        if not isinstance(data, dict) or not all(isinstance(t, dict) for t in data.values()):
            raise StoreError(f"{self.path}: not a newsletter store (expected TinyDB tables)")
        return data

    def write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        try:
            write_atomic(self.path, payload, name="store")
        except OSError as err:
            raise StoreError(
                f"{self.path}: cannot save the store: {err.strerror}; the previous file is intact"
            ) from None


class BatchingMiddleware(Middleware):
    """Keeps the database in memory and writes it once per batch.

    Outside a batch every write goes straight to the storage (TinyDB's usual
    behaviour); inside `batch()` writes only mark the data dirty and the last
    exit of a (possibly nested) batch writes once.
    """

    def __init__(self, storage_cls: Any):
        super().__init__(storage_cls)
        self.cache: dict[str, Any] | None = None
        self.depth = 0
        self.dirty = False
        self.writes = 0
        self.write_seconds = 0.0

    def read(self) -> dict[str, Any] | None:
        if self.cache is None:
            self.cache = self.storage.read() or {}
        return self.cache

    def write(self, data: dict[str, Any]) -> None:
        self.cache = data
        if self.depth:
            self.dirty = True
        else:
            self.flush()

    def flush(self) -> None:
        if self.cache is not None:
            started = time.perf_counter()
            self.storage.write(self.cache)
            self.writes += 1
            self.write_seconds += time.perf_counter() - started
        self.dirty = False

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
        if not self.depth and self.dirty:
            self.flush()
