"""What each subscription's mail became: one record per subscriber, never one per paper.

An accepted message is recorded at once as a journal line (journal.py), and
the records are written to the state file once per sending phase, or every
FLUSH_EVERY messages on a long list, to keep the journal and its replay short.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from .cycles import now_iso
from .engine import Database, Fields
from .journal import Journal
from .records import Delivery

DELIVERY_FIELDS = [f.name for f in fields(Delivery)]
ADDED_FIELDS = ("bounce_log", "last_day")  # absent from records an earlier release wrote
FLUSH_EVERY = 10_000
# Bounce reports arrive after the relay accepted the digest, so an accepted
# digest does not reset a count that bounce reports raised within this time
# (the idea of Mailman's bounce_info_stale_after).
BOUNCE_MEMORY = timedelta(days=7)
MAX_BOUNCE_LOG = 20  # entries kept per subscriber, the newest


@dataclass(frozen=True)
class BouncePolicy:
    """When refusals make a subscriber bouncing: `max_bounces` of them within `days`."""

    max_bounces: int
    days: float = 30.0


def _delivery(doc: dict[str, Any]) -> Delivery:
    log = tuple((int(cycle), str(at)) for cycle, at in doc.get("bounce_log") or ())
    return Delivery(**(doc | {"bounce_log": log}))


class Deliveries:
    def __init__(self, database: Database, journal: Journal):
        self.database = database
        required = [f for f in DELIVERY_FIELDS if f not in ADDED_FIELDS]
        self.table = database.keyed(
            "deliveries", "key", Fields.of(*required, optional=ADDED_FIELDS)
        )
        self.records: dict[str, Delivery] = {
            key: _delivery(doc) for key, doc in self.table.records.items()
        }
        self.journal = journal
        self._changed: set[str] = set()
        for key, since, cycle, at, day in journal.read():
            self._apply_sent(key, since, cycle, at, day)

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

    def _apply_sent(self, key: str, since: str, cycle: int, at: str, day: str = "") -> None:
        old = self.records.get(key)
        same = old is not None and old.since == since
        last = old.last_cycle if same else 0
        if same and cycle < last:  # a line older than the record (never written so)
            day = old.last_day
        new = Delivery(
            key=key, since=since, last_cycle=max(last, cycle), last_sent=at, last_day=day
        )
        if same and old.last_bounce and _age(old.last_bounce, at) < BOUNCE_MEMORY:
            new = replace(old, last_cycle=new.last_cycle, last_sent=at, last_day=day, failures=0)
        self.records[key] = new
        self._changed.add(key)

    def record_sent(self, key: str, since: str, cycle: int, day: str = "") -> None:
        """Called right after the server accepted a message; `day` is the cycle's date in
        the schedule's zone. The journal line makes it survive a kill at once; the state
        file is written at the end of the phase (`flush`) or after FLUSH_EVERY lines."""
        at = now_iso()
        self.journal.append(key, since, cycle, at, day)
        self._apply_sent(key, since, cycle, at, day)
        if self.journal.lines >= FLUSH_EVERY:
            self.flush()

    def record_failure(
        self,
        key: str,
        since: str,
        *,
        permanent: bool,
        detail: str,
        policy: BouncePolicy,
        cycle: int = 0,
    ) -> Delivery:
        """A message refused: temporary (pending, counted in `failures`) or permanent
        (`cycle`'s digest counted as one bounce, at most once)."""
        old = self.records.get(key)
        if old is None or old.since != since:
            old = Delivery(key=key, since=since)
        if permanent:
            new = _bounced(old, cycle, policy, detail) or replace(old, last_error=detail)
        else:
            new = replace(old, failures=old.failures + 1, last_error=detail)
        self.records[key] = new
        self._changed.add(key)
        return new

    def record_bounce(
        self, key: str, since: str, *, cycle: int, detail: str, policy: BouncePolicy
    ) -> Delivery | None:
        """A bounce report (DSN) that proved it answers `cycle`'s digest to this
        subscription: a permanent failure like a 5xx at send time, remembered across
        accepted digests for BOUNCE_MEMORY. None when that digest was counted already."""
        old = self.records.get(key)
        if old is None or old.since != since:
            old = Delivery(key=key, since=since)
        new = _bounced(old, cycle, policy, detail)
        if new is None:
            return None
        self.records[key] = replace(new, last_bounce=now_iso())
        # Saved with the caller's batch, not via flush: that would also empty the
        # journal before the batch reaches the disk.
        with self.database.batch():
            self._put([key])
        self._changed.discard(key)
        return self.records[key]

    def reactivate(self, key: str) -> Delivery | None:
        """A bouncing subscriber wrote to the list: their mail is tried again, counts
        cleared. None when they were not bouncing."""
        old = self.records.get(key)
        if old is None or old.state != "bouncing":
            return None
        self.records[key] = replace(
            old, state="active", bounces=0, bounce_log=(), last_bounce="", failures=0
        )
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


def _bounced(old: Delivery, cycle: int, policy: BouncePolicy, detail: str) -> Delivery | None:
    """`old` with one more bounce for `cycle`'s digest, counting only the last
    `policy.days`; None when that digest's bounce was counted already."""
    if cycle and any(counted == cycle for counted, _ in old.bounce_log):
        return None
    now = datetime.now(UTC)
    horizon = timedelta(days=policy.days)
    recent = [(c, at) for c, at in old.bounce_log if _age(at, now.isoformat()) < horizon]
    log = (*recent, (cycle, now.isoformat(timespec="seconds")))[-MAX_BOUNCE_LOG:]
    bouncing = len(log) >= policy.max_bounces
    return replace(
        old,
        bounces=len(log),
        bounce_log=log,
        state="bouncing" if bouncing else old.state,
        last_error=detail,
    )


def _age(earlier: str, later: str) -> timedelta:
    try:
        return datetime.fromisoformat(later) - datetime.fromisoformat(earlier)
    except ValueError:
        return BOUNCE_MEMORY
