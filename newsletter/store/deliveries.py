"""What each subscription's mail became: one record per subscriber, never one per paper.

An accepted message is recorded at once as a journal line (journal.py), and
the records are written to the state file once per sending phase, or every
FLUSH_EVERY messages on a long list, to keep the journal and its replay short.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields, replace
from datetime import datetime, timedelta

from .cycles import now_iso
from .engine import Database, Fields
from .journal import Journal
from .records import Delivery

DELIVERY_FIELDS = [f.name for f in fields(Delivery)]
FLUSH_EVERY = 10_000
# Bounce reports arrive after the relay accepted the digest, so an accepted
# digest does not reset a count that bounce reports raised within this time
# (the idea of Mailman's bounce_info_stale_after).
BOUNCE_MEMORY = timedelta(days=7)


class Deliveries:
    def __init__(self, database: Database, journal: Journal):
        self.database = database
        self.table = database.keyed("deliveries", "key", Fields.of(*DELIVERY_FIELDS))
        self.records: dict[str, Delivery] = {
            key: Delivery(**doc) for key, doc in self.table.records.items()
        }
        self.journal = journal
        self._changed: set[str] = set()
        for key, since, cycle, at in journal.read():
            self._apply_sent(key, since, cycle, at)

    @property
    def unsaved(self) -> bool:
        """Journal lines replayed (or sends recorded) that the state file does not hold yet."""
        return bool(self._changed)

    def get(self, key: str) -> Delivery | None:
        return self.records.get(key)

    def all(self) -> dict[str, Delivery]:
        return dict(self.records)

    def is_bouncing(self, key: str) -> bool:
        delivery = self.records.get(key)
        return delivery is not None and delivery.state == "bouncing"

    def _apply_sent(self, key: str, since: str, cycle: int, at: str) -> None:
        old = self.records.get(key)
        same = old is not None and old.since == since
        last = old.last_cycle if same else 0
        new = Delivery(key=key, since=since, last_cycle=max(last, cycle), last_sent=at)
        if same and old.last_bounce and _age(old.last_bounce, at) < BOUNCE_MEMORY:
            new = replace(old, last_cycle=new.last_cycle, last_sent=at, failures=0)
        self.records[key] = new
        self._changed.add(key)

    def record_sent(self, key: str, since: str, cycle: int) -> None:
        """Called right after the server accepted a message. The journal line makes it
        survive a kill at once; the state file is written at the end of the phase
        (`flush`) or after FLUSH_EVERY lines."""
        at = now_iso()
        self.journal.append(key, since, cycle, at)
        self._apply_sent(key, since, cycle, at)
        if self.journal.lines >= FLUSH_EVERY:
            self.flush()

    def record_failure(
        self, key: str, since: str, *, permanent: bool, detail: str, max_bounces: int
    ) -> Delivery:
        old = self.records.get(key)
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
        self.records[key] = new
        self._changed.add(key)
        return new

    def record_bounce(self, key: str, since: str, *, detail: str, max_bounces: int) -> Delivery:
        """A bounce report (DSN) that arrived by mail: a permanent failure like a 5xx at
        send time, remembered across accepted digests for BOUNCE_MEMORY."""
        self.record_failure(key, since, permanent=True, detail=detail, max_bounces=max_bounces)
        self.records[key] = replace(self.records[key], last_bounce=now_iso())
        # Saved with the caller's batch, not via flush: that would also empty the
        # journal before the batch reaches the disk.
        with self.database.batch():
            self._put([key])
        self._changed.discard(key)
        return self.records[key]

    def flush(self) -> None:
        """Write the changed records (one write of the state file), then empty the journal."""
        if self._changed:
            with self.database.batch():
                self._put(self._changed)
            self._changed.clear()
        self.journal.clear()

    def _put(self, keys: Iterable[str]) -> None:
        for key in keys:
            # Flat fields: a copy of vars() does what asdict's deep copy does, faster.
            self.table.put(dict(vars(self.records[key])))


def _age(earlier: str, later: str) -> timedelta:
    try:
        return datetime.fromisoformat(later) - datetime.fromisoformat(earlier)
    except ValueError:
        return BOUNCE_MEMORY
