"""The state that must survive restarts: papers, cycles and deliveries (TinyDB).

TinyDB rewrites its whole file on every write and reads it on every query, so
the store is built around three rules:

- reads come from memory: the file is parsed once at open, and only this
  process writes it (the instance lock guarantees that);
- writes are grouped: `with store.batch():` turns any number of table
  operations into one file write, so a cycle writes a bounded number of times,
  never once per paper or per subscriber;
- every write is atomic (temp file, fsync, rename): a kill leaves the previous
  file or the next one, and a file we cannot parse is reported, never reset.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.middlewares import Middleware
from tinydb.storages import Storage

from .crashpoints import crashpoint
from .fsutil import InstanceLock, remove_stale_temps, write_atomic
from .papers import Paper

log = logging.getLogger(__name__)


class StoreError(Exception):
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
            self.storage.write(self.cache)
            self.writes += 1
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


@dataclass(frozen=True)
class StoredPaper:
    paper: Paper
    keywords: tuple[str, ...]
    first_seen: int  # the cycle that first saw it


@dataclass(frozen=True)
class KeywordDiff:
    new: int
    updated: int


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Store:
    """Papers, cycles and deliveries in one TinyDB file; see the module doc for why so."""

    def __init__(self, path: Path, *, lock: bool = True):
        self.path = path
        self.lock = InstanceLock(path.with_name(path.name + ".lock")) if lock else None
        if self.lock:
            self.lock.acquire()
            remove_stale_temps(path)
        try:
            self._middleware = BatchingMiddleware(AtomicJSONStorage)
            self.db = TinyDB(path, storage=self._middleware)
            self._middleware.read()  # parse now, so a broken file fails at open
            self._papers = self.db.table("papers", cache_size=0)
            self._cycles = self.db.table("cycles", cache_size=0)
            self._paper_doc: dict[str, int] = {doc["id"]: doc.doc_id for doc in self._papers.all()}
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.lock:
            self.lock.release()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def writes(self) -> int:
        """How many times the file was written since open (the benchmark reports it)."""
        return self._middleware.writes

    def batch(self) -> contextlib.AbstractContextManager[None]:
        return self._middleware.batch()

    # -- papers ---------------------------------------------------------------

    def __contains__(self, paper_id: str) -> bool:
        return paper_id in self._paper_doc

    def paper_count(self) -> int:
        return len(self._paper_doc)

    def stored_papers(self) -> list[StoredPaper]:
        return [_stored(doc) for doc in self._papers.all()]

    def keywords_with_papers(self) -> set[str]:
        return {k for doc in self._papers.all() for k in doc["keywords"]}

    def apply_fetch(
        self, cycle: int, fetched: Mapping[str, Iterable[Paper]]
    ) -> dict[str, KeywordDiff]:
        """Diff one cycle's fetched papers against the store and save the result.

        A paper is new when its versionless id is unknown; a later version of a
        known paper updates its record (link, dates, text) but is not new again.
        Keywords that matched are added to the record. One batched write.
        """
        inserts: dict[str, dict[str, Any]] = {}
        updates: dict[int, dict[str, Any]] = {}
        counts: dict[str, list[int]] = {}
        for keyword, papers in fetched.items():
            new = updated = 0
            for paper in papers:
                if paper.id in inserts:
                    record = inserts[paper.id]
                    _merge(record, paper, keyword)
                    new += 1
                    continue
                doc_id = self._paper_doc.get(paper.id)
                if doc_id is None:
                    record = paper.to_record() | {"keywords": [keyword], "first_seen": cycle}
                    inserts[paper.id] = record
                    new += 1
                    continue
                record = updates.get(doc_id) or dict(self._papers.get(doc_id=doc_id))
                if _merge(record, paper, keyword):
                    updates[doc_id] = record
                    updated += 1
            counts[keyword] = [new, updated]
        with self.batch():
            if inserts:
                ids = self._papers.insert_multiple(inserts.values())
                self._paper_doc.update(zip(inserts, ids, strict=True))
            if updates:
                self._papers.update(_replace_from(updates.values()), doc_ids=list(updates))
            crashpoint("after-diff")
        return {k: KeywordDiff(new=n, updated=u) for k, (n, u) in counts.items()}

    # -- cycles ---------------------------------------------------------------

    def last_cycle_number(self) -> int:
        return max((doc["number"] for doc in self._cycles.all()), default=0)

    def begin_cycle(self) -> int:
        number = self.last_cycle_number() + 1
        self._cycles.insert({"number": number, "started": _now(), "finished": None})
        return number

    def update_cycle(self, number: int, **fields: Any) -> None:
        doc = next(d for d in self._cycles.all() if d["number"] == number)
        self._cycles.update(fields, doc_ids=[doc.doc_id])

    def finish_cycle(self, number: int, **fields: Any) -> None:
        self.update_cycle(number, finished=_now(), **fields)

    def cycles(self) -> list[dict[str, Any]]:
        return sorted((dict(d) for d in self._cycles.all()), key=lambda d: d["number"])


def _stored(doc: Mapping[str, Any]) -> StoredPaper:
    return StoredPaper(
        paper=Paper.from_record(dict(doc)),
        keywords=tuple(doc["keywords"]),
        first_seen=doc["first_seen"],
    )


def _merge(record: dict[str, Any], paper: Paper, keyword: str) -> bool:
    """Fold a fetched paper into its stored record; True when anything changed."""
    changed = False
    if keyword not in record["keywords"]:
        record["keywords"] = [*record["keywords"], keyword]
        changed = True
    fresh = paper.to_record()
    if (fresh["version"], fresh["updated"]) > (record["version"], record["updated"]):
        keep = {"keywords": record["keywords"], "first_seen": record["first_seen"]}
        # The first version's timestamp orders the archive: never move it.
        fresh["published"] = min(record["published"], fresh["published"])
        record.clear()
        record.update(fresh | keep)
        changed = True
    return changed


def _replace_from(records: Iterable[dict[str, Any]]) -> Any:
    """One TinyDB update operation replacing many paper documents (one pass, one write)."""
    by_id = {record["id"]: record for record in records}

    def transform(doc: dict[str, Any]) -> None:
        record = by_id[doc["id"]]
        doc.clear()
        doc.update(record)

    return transform
