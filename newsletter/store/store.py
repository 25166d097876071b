"""The state that must survive restarts, split by how often it changes, under one lock.

    PATH                 cycles, deliveries, the inbox's tables: small, written often
    PATH.journal         deliveries accepted since that file was last written
    NAME.papers.json     the working set: papers something can still show, in full
    NAME.seen.json       every other paper ever seen, as a compact entry
    PATH.lock            the instance lock (flock), holding the owner's pid

(PATH is `[store] path`, NAME.json its file name.) A delivery batch or an
inbox poll writes only PATH; a cycle writes the papers once for its diff and
once when it prunes. So what a write costs, and what the daemon holds between
cycles, follows the keywords, the subscribers and the open inbox requests, not
the years of papers behind them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from ..config.settings import StoreSettings
from ..files import InstanceLock, remove_stale_temps
from .convert import FORMAT, backup_path, convert, format_of, new_state, split_first_release
from .cycles import CycleLog, now_iso
from .deliveries import Deliveries
from .engine import Database, StoreError, read_tables
from .inbox_state import InboxState
from .journal import Journal
from .papers import PaperStore


def lock_path(store_path: Path) -> Path:
    """The instance lock's file, next to the store (it holds the owner's pid)."""
    return store_path.with_name(store_path.name + ".lock")


def sibling(store_path: Path, part: str) -> Path:
    """`state/newsletter.json` → `state/newsletter.PART.json`."""
    return store_path.with_name(f"{store_path.stem}.{part}{store_path.suffix}")


class Store:
    """The open store: `papers`, `cycles`, `deliveries` and `inbox`, each a room of its own.

    With `lock` (every command that writes) the instance lock is taken first, a
    store of the first release is converted on disk, and deliveries left in the
    journal are saved. Without it (status, preview) nothing is ever written.
    """

    def __init__(
        self,
        path: Path,
        *,
        lock: bool = True,
        journal_sync_ms: float = StoreSettings.journal_sync_ms,
    ):
        self.path = path
        self.papers_path = sibling(path, "papers")
        self.seen_path = sibling(path, "seen")
        self.lock = InstanceLock(lock_path(path)) if lock else None
        if self.lock:
            try:
                self.lock.acquire()
            except OSError as err:
                raise StoreError(
                    f"{self.lock.path}: cannot create the lock file: {err.strerror}"
                ) from None
            for file in (path, self.papers_path, self.seen_path):
                remove_stale_temps(file)
        guard = self.lock.check if self.lock else None
        self.journal = Journal(path.with_name(path.name + ".journal"), guard, journal_sync_ms)
        try:
            state, papers = self._read()
            self.state = Database(path, "state", state, guard)
            self.cycles = CycleLog(self.state)
            self.deliveries = Deliveries(self.state, self.journal)
            self.inbox = InboxState(self.state)
            self.papers = PaperStore(self.papers_path, self.seen_path, papers, guard)
            if lock and self.deliveries.unsaved:
                self.deliveries.flush()
            self.tokens_bound_since = self._bound_since(write=lock)
        except BaseException:
            self.close()
            raise

    def _read(self) -> tuple[dict, dict | None]:
        """The state file's tables (converted when written by the first release), and the
        working set's when that conversion made them; None: read the papers file."""
        data = read_tables(self.path)
        if data is None:
            return new_state(), None
        if format_of(self.path, data) == FORMAT:
            return data, None
        if self.lock:
            return convert(self.path, data, self.papers_path)
        return split_first_release(data)

    def _bound_since(self, *, write: bool) -> str:
        """When this release (unsubscribe tokens bound to a subscription) first opened the
        store: older subscriptions keep their earlier tokens for a while (tokens.py)."""
        meta = self.state.db.table("meta", cache_size=0)
        doc = next(iter(meta.all()), None)
        found = doc.get("tokens_bound_since", "") if doc is not None else ""
        if found or not write or doc is None:
            return found
        found = now_iso()
        # Saved with the next write: opening the store writes nothing.
        meta.update({"tokens_bound_since": found}, doc_ids=[doc.doc_id])
        return found

    def links_mailed(self) -> str:
        """What shows that links signed with the token secret went out ("" if nothing):
        recorded deliveries, or confirmation requests waiting (tokens.check_secret)."""
        found = []
        if self.deliveries.records:
            found.append(f"{len(self.deliveries.records)} subscribers' deliveries recorded")
        if len(self.inbox.pending):
            found.append(f"{len(self.inbox.pending)} confirmation requests waiting")
        return " and ".join(found)

    def close(self) -> None:
        self.journal.close()
        if self.lock:
            self.lock.release()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check_lock(self) -> None:
        """Raise LostLock when the store's folder is no longer the one this process locked."""
        if self.lock:
            self.lock.check()

    def batch(self) -> contextlib.AbstractContextManager[None]:
        """Changes to cycles, deliveries and the inbox's tables inside: one write of PATH."""
        return self.state.batch()

    def _databases(self) -> Iterator[Database]:
        yield self.state
        yield self.papers.database

    def write_counts(self) -> dict[str, int]:
        """Writes since open, per file: `state` (PATH), `papers` and `seen`."""
        seen = self.papers.seen_writes
        return {"state": self.state.writes, "papers": self.papers.database.writes, "seen": seen}

    @property
    def writes(self) -> int:
        return sum(self.write_counts().values())

    @property
    def write_seconds(self) -> float:
        return sum(d.write_seconds for d in self._databases()) + self.papers.seen_write_seconds

    def files(self) -> list[Path]:
        """The store's files that exist (not the lock, nor a kept backup)."""
        candidates = (self.path, self.journal.path, self.papers_path, self.seen_path)
        return [p for p in candidates if p.exists()]

    def backup(self) -> Path | None:
        """The first release's file, kept after its conversion, if it is still there."""
        path = backup_path(self.path)
        return path if path.exists() else None
