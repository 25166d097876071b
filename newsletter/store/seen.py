"""Every paper that left the working set, as a compact entry in a TinyDB file of its own.

What the diff needs to classify a paper arXiv sends again is its id and version;
a monthly page also needs the first version's time to place the paper among
its rows. So an entry is `id: [version, published as Unix seconds]`, grouped
in one document per arXiv month (`2503`, or `hep-th/99` for old-style ids).
The file is read only while a cycle needs it and written when papers leave the
working set, never by the mail or inbox writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from .engine import Database, Fields, KeyedTable

BUCKET_FIELDS = Fields.of("bucket", "ids")


def bucket(paper_id: str) -> str:
    """'2503.03595' → '2503'; 'hep-th/9901001' → 'hep-th/99'."""
    archive, slash, number = paper_id.partition("/")
    return f"{archive}/{number[:2]}" if slash else paper_id[:4]


class SeenIds:
    """The compact entries: looked up by id, added to when papers are pruned."""

    def __init__(
        self, path: Path, data: dict | None = None, guard: Callable[[], None] | None = None
    ):
        self.database = Database(path, "seen", data, guard)
        self.buckets: KeyedTable = self.database.keyed("seen", "bucket", BUCKET_FIELDS)

    def __len__(self) -> int:
        return sum(len(doc["ids"]) for doc in self.buckets.records.values())

    def get(self, paper_id: str) -> tuple[int, datetime] | None:
        """(version, first version's time) of a paper seen before, or None."""
        doc = self.buckets.get(bucket(paper_id))
        entry = doc["ids"].get(paper_id) if doc else None
        if entry is None:
            return None
        version, published = entry
        return version, datetime.fromtimestamp(published, UTC)

    def add(self, entries: Iterable[tuple[str, int, datetime]]) -> None:
        """Remember (id, version, published) for each paper; one write."""
        changed: dict[str, dict] = {}
        for paper_id, version, published in entries:
            key = bucket(paper_id)
            doc = changed.get(key)
            if doc is None:
                old = self.buckets.get(key)
                doc = changed[key] = {"bucket": key, "ids": dict(old["ids"]) if old else {}}
            doc["ids"][paper_id] = [version, int(published.timestamp())]
        with self.database.batch():
            for doc in changed.values():
                self.buckets.put(doc)
