"""The papers: the working set in full, every other paper ever seen as a compact entry.

A paper's full record (text, authors, keywords, the cycle that first saw it)
is kept only while something can still show it: a keyword's table, a digest
still due, a monthly page not yet written. The cycle decides which those are
(`retention.py`) and `prune` moves the rest to the seen ids. The working set is
one small TinyDB file, written once by the diff and once by the pruning;
the seen ids are read only while a cycle needs them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any

from ..crashpoints import crashpoint
from ..papers import Paper, StoredPaper
from .engine import Database, Fields
from .records import KeywordDiff
from .seen import SeenIds

# The first_seen of a paper taken back into the working set from the seen ids: it
# is not new (it was seen before), so no digest counts it as news again.
LONG_AGO = 0
PAPER_FIELDS = Fields.of(*(f.name for f in fields(Paper)), "keywords", "first_seen")
UNCOUNTED_FIELDS = Fields.of("key", "first_seen", "keywords", "count")


class PaperStore:
    """The working set (`papers` file) and, loaded on demand, the seen ids (`seen` file)."""

    def __init__(
        self,
        path: Path,
        seen_path: Path,
        data: dict | None = None,
        guard: Callable[[], None] | None = None,
    ):
        self.database = Database(path, "papers", data, guard)
        self.guard = guard
        self.table = self.database.keyed("papers", "id", PAPER_FIELDS)
        # Pruned papers that a digest still due would have counted: see `prune`.
        self.uncounted = self.database.keyed("uncounted", "key", UNCOUNTED_FIELDS)
        self.seen_path = seen_path
        self._seen: SeenIds | None = None
        self._released_writes = 0  # writes of seen ids since released
        self._released_seconds = 0.0

    # -- reading -------------------------------------------------------------

    def count(self) -> int:
        """Papers kept in full."""
        return len(self.table)

    def seen(self) -> SeenIds:
        """The seen ids, read at first use; `release_seen` lets them go."""
        if self._seen is None:
            self._seen = SeenIds(self.seen_path, guard=self.guard)
        return self._seen

    def release_seen(self) -> None:
        """Drop the seen ids from memory (the daemon keeps only the working set between cycles)."""
        if self._seen is not None:
            self._released_writes += self._seen.database.writes
            self._released_seconds += self._seen.database.write_seconds
        self._seen = None

    @property
    def seen_writes(self) -> int:
        return self._released_writes + (self._seen.database.writes if self._seen else 0)

    @property
    def seen_write_seconds(self) -> float:
        current = self._seen.database.write_seconds if self._seen else 0.0
        return self._released_seconds + current

    def stored(self) -> list[StoredPaper]:
        return [_stored(record) for record in self.table.records.values()]

    def keywords(self) -> set[str]:
        return {k for record in self.table.records.values() for k in record["keywords"]}

    def published_of(self, paper_id: str) -> datetime | None:
        """The first version's time of any paper ever seen, or None."""
        record = self.table.get(paper_id)
        if record is not None:
            return datetime.fromisoformat(record["published"])
        entry = self.seen().get(paper_id)
        return entry[1] if entry else None

    # -- the diff ------------------------------------------------------------

    def apply_fetch(
        self, cycle: int, fetched: Mapping[str, Iterable[Paper]]
    ) -> dict[str, KeywordDiff]:
        """Diff one cycle's fetched papers against every paper ever seen and save the result.

        A paper is new when its versionless id was never seen; a later version of a
        known paper updates its record (link, dates, text) but is not new again, and
        counts as updated, as does a keyword added to it. A paper known only by its
        seen id comes back into the working set from what arXiv sent, with the
        keywords that fetched it, as seen long ago (not news again); it counts as
        updated only when its version is later than the one remembered.
        One write of the working set.
        """
        records: dict[str, dict[str, Any]] = {}  # copies of the records this fetch read
        changed: set[str] = set()
        fresh: set[str] = set()  # first seen in this cycle
        restored: set[str] = set()  # back from the seen ids
        counts: dict[str, KeywordDiff] = {}
        for keyword, papers in fetched.items():
            new = updated = 0
            for paper in papers:
                record = records.get(paper.id)
                if record is None:
                    known = self.table.get(paper.id)
                    if known is not None:
                        record = records[paper.id] = dict(known)
                    else:
                        seen = self.seen().get(paper.id)
                        records[paper.id] = _from_fetch(paper, keyword, cycle, seen)
                        changed.add(paper.id)
                        if seen is None:
                            fresh.add(paper.id)
                            new += 1
                        else:
                            restored.add(paper.id)
                            updated += paper.version > seen[0]
                        continue
                merged = _merge(record, paper, keyword)
                if merged:
                    changed.add(paper.id)
                if paper.id in fresh:
                    new += 1
                elif merged and paper.id not in restored:
                    updated += 1
            counts[keyword] = KeywordDiff(new=new, updated=updated)
        with self.database.batch():
            for paper_id in changed:
                self.table.put(records[paper_id])
            crashpoint("after-diff")
        return counts

    # -- pruning -------------------------------------------------------------

    def prune(self, keep: set[str], pending_after: int | None = None) -> int:
        """Every paper not in `keep` leaves the working set and is kept as a seen id.

        Those first seen after `pending_after` (the oldest digest still due) are also
        tallied by the keywords they matched, so a digest that waited can still say
        how many more there are (`uncounted_after`); tallies nobody can need are dropped.
        The seen ids are written first: a kill between the two writes leaves a paper in
        both, which is harmless (the full record wins)."""
        gone = [record for key, record in self.table.records.items() if key not in keep]
        if gone:
            seen = self.seen()
            seen.add((r["id"], r["version"], datetime.fromisoformat(r["published"])) for r in gone)
            crashpoint("after-seen")
        with self.database.batch():
            for record in gone:
                self.table.remove(record["id"])
                if pending_after is not None and record["first_seen"] > pending_after:
                    self._tally(record["first_seen"], record["keywords"])
            for key, tally in list(self.uncounted.records.items()):
                if pending_after is None or tally["first_seen"] <= pending_after:
                    self.uncounted.remove(key)
        return len(gone)

    def _tally(self, first_seen: int, keywords: list[str]) -> None:
        key = f"{first_seen}|" + "|".join(keywords)
        old = self.uncounted.get(key)
        count = old["count"] + 1 if old else 1
        self.uncounted.put(
            {"key": key, "first_seen": first_seen, "keywords": keywords, "count": count}
        )

    def uncounted_after(self, cycle: int) -> dict[tuple[str, ...], int]:
        """Papers first seen after `cycle` that are no longer held in full, counted by the
        keywords they matched."""
        counts: dict[tuple[str, ...], int] = {}
        for tally in self.uncounted.records.values():
            if tally["first_seen"] > cycle:
                keywords = tuple(tally["keywords"])
                counts[keywords] = counts.get(keywords, 0) + tally["count"]
        return counts


def _stored(record: Mapping[str, Any]) -> StoredPaper:
    return StoredPaper(
        paper=Paper.from_record(dict(record)),
        keywords=tuple(record["keywords"]),
        first_seen=record["first_seen"],
    )


def _from_fetch(
    paper: Paper, keyword: str, cycle: int, seen: tuple[int, datetime] | None
) -> dict[str, Any]:
    """A record made from what arXiv sent: a new paper's, or one known only by its seen id
    (then it is not news, and keeps the first version's time it was seen with)."""
    record = paper.to_record() | {"keywords": [keyword], "first_seen": cycle}
    if seen is not None:
        record["first_seen"] = LONG_AGO
        record["published"] = min(record["published"], seen[1].isoformat())
    return record


def _merge(record: dict[str, Any], paper: Paper, keyword: str) -> bool:
    """Fold a fetched paper into its record; True when anything changed."""
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
