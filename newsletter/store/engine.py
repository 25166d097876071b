"""TinyDB underneath the store: files read once, tables held by key, one atomic write per batch.

TinyDB rewrites its whole file on every write and scans a table for every
query, so the store uses it under three rules:

- a file is parsed once, at open, and only this process writes it (the
  instance lock guarantees that); reads come from memory;
- a table's documents are held in a dict by their key field (`KeyedTable`),
  so a lookup never scans, and changes reach TinyDB once per batch, as one
  insert, one update and one remove, however many documents changed;
- `Database.batch()` makes any number of changes one file write, and every
  write is atomic (temp file, fsync, rename): a kill leaves the previous file
  or the next one, and a file we cannot parse is reported, never reset.

The store's data is split over several such files by how often it changes, so
that a frequent write never rewrites data it did not change.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.middlewares import Middleware
from tinydb.storages import Storage
from tinydb.table import Table

from ..errors import NewsletterError
from ..files import write_atomic

Record = dict[str, Any]


class StoreError(NewsletterError):
    """The store cannot be used as it is; str() names the file and the problem."""


def read_tables(path: Path) -> dict[str, Any] | None:
    """A TinyDB file's tables, or None when there is no file; StoreError when unusable."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise StoreError(f"{path}: cannot read the store: {err.strerror}") from None
    if not text.strip():
        raise StoreError(
            f"{path}: the store file is empty; restore it from a backup or move it away"
        )
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as err:
        raise StoreError(
            f"{path}: the store is not valid JSON ({err}); "
            "it was left untouched: restore it from a backup or move it away"
        ) from None
    if not isinstance(data, dict) or not all(isinstance(t, dict) for t in data.values()):
        raise StoreError(f"{path}: not a newsletter store (expected TinyDB tables)")
    return data


def write_tables(path: Path, data: dict[str, Any], label: str) -> None:
    """Replace a TinyDB file atomically; `label` names its crash points (`LABEL-write-middle`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    try:
        write_atomic(path, payload, name=label)
    except OSError as err:
        raise StoreError(
            f"{path}: cannot save the store: {err.strerror}; the previous file is intact"
        ) from None


class AtomicJSONStorage(Storage):
    """TinyDB's JSONStorage rewrites the file in place; this one replaces it atomically."""

    def __init__(self, path: Path, label: str):
        self.path = path
        self.label = label

    def read(self) -> dict[str, Any] | None:
        return read_tables(self.path)

    def write(self, data: dict[str, Any]) -> None:
        write_tables(self.path, data, self.label)


class MemoryMiddleware(Middleware):
    """Holds the file's data in memory: TinyDB's writes only change it and mark it dirty;
    `save` writes it (the Database calls it once per batch)."""

    def __init__(self, storage_cls: Any, data: dict[str, Any] | None = None):
        super().__init__(storage_cls)
        self.cache = data
        self.dirty = False
        self.writes = 0
        self.write_seconds = 0.0

    def read(self) -> dict[str, Any] | None:
        if self.cache is None:
            self.cache = self.storage.read() or {}
        return self.cache

    def write(self, data: dict[str, Any]) -> None:
        self.cache = data
        self.dirty = True

    def save(self) -> None:
        if self.dirty and self.cache is not None:
            started = time.perf_counter()
            self.storage.write(self.cache)
            self.writes += 1
            self.write_seconds += time.perf_counter() - started
        self.dirty = False


class KeyedTable:
    """A TinyDB table whose documents each have a unique `field`, held in a dict by it.

    `get` and `in` never scan; `put` and `remove` change the dict and remember
    what changed, and `flush` hands those changes to TinyDB in at most three
    operations. Records handed out are the table's own: change a copy, then `put` it.
    """

    def __init__(self, table: Table, field: str, fields: Fields, where: str):
        self.table = table
        self.field = field
        self.records: dict[str, Record] = {}
        self._doc_ids: dict[str, int] = {}
        for doc in table.all():
            _check(doc, doc.doc_id, field, fields, where)
            self.records[doc[field]] = dict(doc)
            self._doc_ids[doc[field]] = doc.doc_id
        self._changed: set[str] = set()
        self._removed: list[int] = []

    def __len__(self) -> int:
        return len(self.records)

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def get(self, key: str) -> Record | None:
        return self.records.get(key)

    def put(self, record: Record) -> None:
        key = record[self.field]
        self.records[key] = record
        self._changed.add(key)

    def remove(self, key: str) -> None:
        if self.records.pop(key, None) is None:
            return
        self._changed.discard(key)
        doc_id = self._doc_ids.pop(key, None)
        if doc_id is not None:
            self._removed.append(doc_id)

    def flush(self) -> None:
        if self._removed:
            self.table.remove(doc_ids=self._removed)
            self._removed = []
        new = [key for key in self._changed if key not in self._doc_ids]
        changed = {self._doc_ids[key]: key for key in self._changed if key in self._doc_ids}
        self._changed = set()
        if new:
            ids = self.table.insert_multiple(self.records[key] for key in new)
            self._doc_ids.update(zip(new, ids, strict=True))
        if changed:
            records, field = self.records, self.field

            def replace(doc: Record) -> None:
                record = records[doc[field]]
                doc.clear()
                doc.update(record)

            self.table.update(replace, doc_ids=list(changed))


@dataclass(frozen=True)
class Fields:
    """The fields a table's records have: each one `required`, and those that may be absent."""

    required: frozenset[str]
    optional: frozenset[str] = frozenset()

    @classmethod
    def of(cls, *required: str, optional: tuple[str, ...] = ()) -> Fields:
        return cls(frozenset(required), frozenset(optional))


def _check(doc: Record, doc_id: int, field: str, fields: Fields, where: str) -> None:
    """A record this release cannot read (another release wrote it, or a hand) is one line
    naming the file, the table, the record and the field; never a traceback."""
    name = repr(doc.get(field, f"#{doc_id}"))
    missing = sorted(fields.required - doc.keys())
    unknown = sorted(doc.keys() - fields.required - fields.optional)
    if missing or unknown:
        problem = (
            f"lacks the field {missing[0]!r}" if missing else f"has an unknown field {unknown[0]!r}"
        )
        raise StoreError(
            f"{where}: the record {name} {problem} (written by another release?); "
            "restore the file from a backup, or from the release that wrote it"
        )


class Database:
    """One TinyDB file: read at open (or given its data), its keyed tables, and batches
    that each end in at most one atomic write."""

    def __init__(
        self,
        path: Path,
        label: str,
        data: dict[str, Any] | None = None,
        guard: Callable[[], None] | None = None,
    ):
        self.path = path
        self.guard = guard  # called before each write: raises when the lock was lost
        self.middleware = MemoryMiddleware(AtomicJSONStorage, data)
        self.db = TinyDB(path, label, storage=self.middleware)
        self.middleware.read()  # parse now, so a broken file fails at open
        self.tables: list[KeyedTable] = []
        self._depth = 0

    def keyed(self, name: str, field: str, fields: Fields) -> KeyedTable:
        where = f"{self.path}: table {name!r}"
        table = KeyedTable(self.db.table(name, cache_size=0), field, fields, where)
        self.tables.append(table)
        return table

    @property
    def writes(self) -> int:
        """How many times the file was written since open (tests and the benchmark read it)."""
        return self.middleware.writes

    @property
    def write_seconds(self) -> float:
        return self.middleware.write_seconds

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Changes inside are written once, when the outermost batch ends without an error;
        after an error they stay in memory and go with the next batch."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if not self._depth:
            self.save()

    def save(self) -> None:
        for table in self.tables:
            table.flush()
        if self.middleware.dirty and self.guard is not None:
            self.guard()
        self.middleware.save()
