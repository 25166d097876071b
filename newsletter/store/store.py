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
import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tinydb import TinyDB

from ..crashpoints import crashpoint
from ..files import InstanceLock, remove_stale_temps
from ..papers import Paper, StoredPaper
from .engine import AtomicJSONStorage, BatchingMiddleware, StoreError
from .journal import Journal
from .records import Delivery, PendingRequest, QueuedReply

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KeywordDiff:
    new: int
    updated: int


# Deliveries kept only in the journal before the store is rewritten. The journal
# line is what makes a delivery survive a crash (one small append, ~20 µs); the
# rewrite costs the whole store (50 ms at 10,000 subscribers, seconds at 100,000
# papers), so it happens at the end of the sending phase, and mid-phase only
# for lists this long, to keep the journal (and its replay at start) bounded.
FLUSH_EVERY = 10_000
# Bounce reports arrive after the relay accepted the digest, so an accepted
# digest does not reset a count that bounce reports raised within this time
# (the idea of Mailman's bounce_info_stale_after).
BOUNCE_MEMORY = timedelta(days=7)


def lock_path(store_path: Path) -> Path:
    """The instance lock's file, next to the store (it holds the owner's pid)."""
    return store_path.with_name(store_path.name + ".lock")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Store:
    """Papers, cycles and deliveries in one TinyDB file; see the module doc for why so."""

    def __init__(self, path: Path, *, lock: bool = True):
        self.path = path
        self.lock = InstanceLock(lock_path(path)) if lock else None
        if self.lock:
            try:
                self.lock.acquire()
            except OSError as err:
                raise StoreError(
                    f"{self.lock.path}: cannot create the lock file: {err.strerror}"
                ) from None
            remove_stale_temps(path)
        try:
            self._middleware = BatchingMiddleware(AtomicJSONStorage)
            self.db = TinyDB(path, storage=self._middleware)
            self._middleware.read()  # parse now, so a broken file fails at open
            self._papers = self.db.table("papers", cache_size=0)
            self._cycles = self.db.table("cycles", cache_size=0)
            self._paper_doc: dict[str, int] = {doc["id"]: doc.doc_id for doc in self._papers.all()}
            self._deliveries = self.db.table("deliveries", cache_size=0)
            delivery_docs = self._deliveries.all()
            self._delivery: dict[str, Delivery] = {
                doc["key"]: Delivery(**doc) for doc in delivery_docs
            }
            self._delivery_doc = {doc["key"]: doc.doc_id for doc in delivery_docs}
            self._pending = self.db.table("pending", cache_size=0)
            self._replies = self.db.table("reply_times", cache_size=0)
            self._processed = self.db.table("processed_mail", cache_size=0)
            self._outbox = self.db.table("outbox", cache_size=0)
            self._changed: set[str] = set()
            self.journal = Journal(path.with_name(path.name + ".journal"))
            for key, since, cycle, at in self.journal.read():
                self._apply_sent(key, since, cycle, at)
            if lock and self._changed:
                self.flush_deliveries()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        journal = getattr(self, "journal", None)
        if journal is not None:
            journal.close()
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

    @property
    def write_seconds(self) -> float:
        """Time spent writing the file since open (the benchmark reports it)."""
        return self._middleware.write_seconds

    def batch(self) -> contextlib.AbstractContextManager[None]:
        return self._middleware.batch()

    # -- papers ---------------------------------------------------------------

    def paper_count(self) -> int:
        return len(self._paper_doc)

    def stored_papers(self, seen_after: int | None = None) -> list[StoredPaper]:
        """All papers, or those first seen after a cycle (filtered before conversion: cheap)."""
        docs = self._papers.all()
        if seen_after is not None:
            docs = [d for d in docs if d["first_seen"] > seen_after]
        return [_stored(doc) for doc in docs]

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
                by_id = {r["id"]: r for r in updates.values()}
                self._papers.update(_replace_by("id", by_id), doc_ids=list(updates))
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

    # -- deliveries -----------------------------------------------------------

    def delivery(self, key: str) -> Delivery | None:
        return self._delivery.get(key)

    def deliveries(self) -> dict[str, Delivery]:
        return dict(self._delivery)

    def is_bouncing(self, key: str) -> bool:
        delivery = self._delivery.get(key)
        return delivery is not None and delivery.state == "bouncing"

    def _apply_sent(self, key: str, since: str, cycle: int, at: str) -> None:
        old = self._delivery.get(key)
        same = old is not None and old.since == since
        last = old.last_cycle if same else 0
        new = Delivery(key=key, since=since, last_cycle=max(last, cycle), last_sent=at)
        if same and old.last_bounce and _age(old.last_bounce, at) < BOUNCE_MEMORY:
            new = replace(old, last_cycle=new.last_cycle, last_sent=at, failures=0)
        self._delivery[key] = new
        self._changed.add(key)

    def record_sent(self, key: str, since: str, cycle: int) -> None:
        """Called right after the server accepted a message. The journal line makes it
        survive a kill at once; the store itself is rewritten at the end of the phase
        (`flush_deliveries`) or after FLUSH_EVERY lines."""
        at = _now()
        self.journal.append(key, since, cycle, at)
        self._apply_sent(key, since, cycle, at)
        if self.journal.lines >= FLUSH_EVERY:
            self.flush_deliveries()

    def record_failure(
        self, key: str, since: str, *, permanent: bool, detail: str, max_bounces: int
    ) -> Delivery:
        old = self._delivery.get(key)
        if old is None or old.since != since:
            old = Delivery(key=key, since=since)
        if permanent:
            bounces = old.bounces + 1
            new = replace(
                old,
                bounces=bounces,
                state="bouncing" if bounces >= max_bounces else old.state,
                last_error=detail,
            )
        else:
            new = replace(old, failures=old.failures + 1, last_error=detail)
        self._delivery[key] = new
        self._changed.add(key)
        return new

    def record_bounce(self, key: str, since: str, *, detail: str, max_bounces: int) -> Delivery:
        """A bounce report (DSN) that arrived by mail: a permanent failure like a 5xx at
        send time, remembered across accepted digests for BOUNCE_MEMORY."""
        self.record_failure(key, since, permanent=True, detail=detail, max_bounces=max_bounces)
        self._delivery[key] = replace(self._delivery[key], last_bounce=_now())
        # Written with the caller's batch, not via flush_deliveries: that would also empty
        # the journal before the batch reaches the disk.
        self._write_deliveries([key])
        self._changed.discard(key)
        return self._delivery[key]

    def flush_deliveries(self) -> None:
        """Write changed delivery records to the store (one write), then empty the journal."""
        if not self._changed:
            self.journal.clear()
            return
        self._write_deliveries(self._changed)
        self._changed.clear()
        self.journal.clear()

    def _write_deliveries(self, keys: Iterable[str]) -> None:
        inserts = []
        updates: dict[int, dict[str, Any]] = {}
        for key in keys:
            # Flat fields: a copy of vars() does what asdict's deep copy does, 10x faster.
            record = dict(vars(self._delivery[key]))
            doc_id = self._delivery_doc.get(key)
            if doc_id is None:
                inserts.append(record)
            else:
                updates[doc_id] = record
        with self.batch():
            if inserts:
                ids = self._deliveries.insert_multiple(inserts)
                self._delivery_doc.update(zip((r["key"] for r in inserts), ids, strict=True))
            if updates:
                by_key = {r["key"]: r for r in updates.values()}
                self._deliveries.update(_replace_by("key", by_key), doc_ids=list(updates))

    # -- inbox: pending requests, reply limits, processed mail, outbox --------

    def pending_request(self, code_hash: str) -> PendingRequest | None:
        doc = next((d for d in self._pending.all() if d["code_hash"] == code_hash), None)
        return None if doc is None else _pending(doc)

    def save_pending(self, request: PendingRequest) -> None:
        """Replace the address's pending request, if any: only the latest code works."""
        with self.batch():
            self.drop_pending(request.key)
            self._pending.insert(asdict(request) | {"keywords": list(request.keywords)})

    def drop_pending(self, key: str) -> None:
        ids = [d.doc_id for d in self._pending.all() if d["key"] == key]
        if ids:
            self._pending.remove(doc_ids=ids)

    def expire_pending(self, now: datetime) -> int:
        ids = [d.doc_id for d in self._pending.all() if _time(d["expires"]) <= now]
        if ids:
            self._pending.remove(doc_ids=ids)
        return len(ids)

    def allow_reply(self, key: str, now: datetime, per_hour: int) -> bool:
        """True (and counted) when this address has had fewer than `per_hour` replies
        in the last hour; False means: say nothing to it now."""
        doc = next((d for d in self._replies.all() if d["key"] == key), None)
        recent = [t for t in (doc["times"] if doc else []) if now - _time(t) < timedelta(hours=1)]
        if len(recent) >= per_hour:
            return False
        times = [*recent, now.isoformat(timespec="seconds")]
        if doc is None:
            self._replies.insert({"key": key, "times": times})
        else:
            self._replies.update({"times": times}, doc_ids=[doc.doc_id])
        return True

    def forget_reply_times(self, now: datetime) -> None:
        stale = [
            d.doc_id
            for d in self._replies.all()
            if all(now - _time(t) >= timedelta(hours=1) for t in d["times"])
        ]
        if stale:
            self._replies.remove(doc_ids=stale)

    def is_processed(self, message_key: str) -> bool:
        return any(d["key"] == message_key for d in self._processed.all())

    def mark_processed(self, message_key: str, now: datetime) -> None:
        self._processed.insert({"key": message_key, "at": now.isoformat(timespec="seconds")})

    def forget_processed(self, before: datetime) -> None:
        ids = [d.doc_id for d in self._processed.all() if _time(d["at"]) < before]
        if ids:
            self._processed.remove(doc_ids=ids)

    def queue_reply(self, recipient: str, data: bytes, now: datetime) -> None:
        # latin-1 maps every byte to one character: any message survives JSON unchanged.
        self._outbox.insert(
            {
                "recipient": recipient,
                "data": data.decode("latin-1"),
                "created": now.isoformat(timespec="seconds"),
                "tries": 0,
            }
        )

    def outbox(self) -> list[QueuedReply]:
        return [
            QueuedReply(
                id=d.doc_id,
                recipient=d["recipient"],
                data=d["data"].encode("latin-1"),
                created=d["created"],
                tries=d["tries"],
            )
            for d in self._outbox.all()
        ]

    def drop_replies(self, ids: Iterable[int]) -> None:
        ids = list(ids)
        if ids:
            self._outbox.remove(doc_ids=ids)

    def count_reply_tries(self, ids: Iterable[int]) -> None:
        for doc_id in ids:
            doc = self._outbox.get(doc_id=doc_id)
            if doc is not None:
                self._outbox.update({"tries": doc["tries"] + 1}, doc_ids=[doc_id])


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _age(earlier: str, later: str) -> timedelta:
    try:
        return _time(later) - _time(earlier)
    except ValueError:
        return BOUNCE_MEMORY


def _pending(doc: Mapping[str, Any]) -> PendingRequest:
    return PendingRequest(**(dict(doc) | {"keywords": tuple(doc["keywords"])}))


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


def _replace_by(field: str, records: Mapping[str, dict[str, Any]]) -> Any:
    """One TinyDB update operation replacing many documents, matched on `field`
    (one pass over the table, one write)."""

    def transform(doc: dict[str, Any]) -> None:
        record = records[doc[field]]
        doc.clear()
        doc.update(record)

    return transform
