"""The inbox's state: confirmation requests waiting for their code, replies sent in the last
hour (per mailbox, per domain, in all), the messages already handled, messages that failed
and will be tried again, requests dropped over the caps, and replies not yet accepted by SMTP.

Every lookup is by key, never a scan, so a poll's cost follows its messages.
What is kept is bounded: requests expire after `confirm_hours`, reply times
after an hour, drop counts after two days, handled and failed messages after
PROCESSED_MEMORY (handled ones also beyond MAX_PROCESSED).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, fields
from datetime import datetime, timedelta

from .engine import Database, Fields
from .records import PendingRequest, QueuedReply

PENDING_FIELDS = [f.name for f in fields(PendingRequest)]
PENDING_ADDED = ("cadence", "weekday")  # absent from requests an earlier release saved
OUTBOX_FIELDS = Fields.of("key", "recipient", "data", "created", "tries")
FAILURE_FIELDS = Fields.of("key", "tries", "first", "error")
DROP_FIELDS = Fields.of("key", "count")
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
PROCESSED_MEMORY = timedelta(days=30)  # how long handled messages are remembered
MAX_PROCESSED = 20_000  # and at most this many, the newest


class InboxState:
    def __init__(self, database: Database):
        self.database = database
        required = [f for f in PENDING_FIELDS if f not in PENDING_ADDED]
        self.pending = database.keyed(
            "pending", "key", Fields.of(*required, optional=PENDING_ADDED)
        )
        self.by_code = {r["code_hash"]: key for key, r in self.pending.records.items()}
        self.reply_times = database.keyed("reply_times", "key", Fields.of("key", "times"))
        self.processed = database.keyed("processed_mail", "key", Fields.of("key", "at"))
        self.outbox_table = database.keyed("outbox", "key", OUTBOX_FIELDS)
        self.failures = database.keyed("failed_mail", "key", FAILURE_FIELDS)
        self.drops = database.keyed("dropped_requests", "key", DROP_FIELDS)

    # -- confirmation requests ------------------------------------------------

    def pending_request(self, code_hash: str) -> PendingRequest | None:
        key = self.by_code.get(code_hash)
        record = self.pending.get(key) if key else None
        if record is None:
            return None
        return PendingRequest(**(record | {"keywords": tuple(record["keywords"])}))

    def save_pending(self, request: PendingRequest) -> None:
        """Replace the address's pending request, if any: only the latest code works."""
        with self.database.batch():
            self.drop_pending(request.key)
            self.pending.put(asdict(request) | {"keywords": list(request.keywords)})
            self.by_code[request.code_hash] = request.key

    def drop_pending(self, key: str) -> None:
        record = self.pending.get(key)
        if record is not None:
            with self.database.batch():
                self.pending.remove(key)
            self.by_code.pop(record["code_hash"], None)

    def expire_pending(self, now: datetime) -> int:
        expired = [k for k, r in self.pending.records.items() if _time(r["expires"]) <= now]
        with self.database.batch():
            for key in expired:
                self.drop_pending(key)
        return len(expired)

    # -- reply limits -----------------------------------------------------------

    def over_limit(self, limits: Sequence[tuple[str, int]], now: datetime) -> str:
        """The first key of `limits` ((key, replies per hour)) that has had its replies
        in the last hour; "" when none has, and then one more reply is counted for each."""
        recents = []
        for key, per_hour in limits:
            record = self.reply_times.get(key)
            recent = [t for t in (record["times"] if record else []) if now - _time(t) < HOUR]
            if len(recent) >= per_hour:
                return key
            recents.append((key, recent))
        with self.database.batch():
            for key, recent in recents:
                self.reply_times.put({"key": key, "times": [*recent, _iso(now)]})
        return ""

    def count_drop(self, now: datetime) -> None:
        """A request dropped without a reply, over a cap: counted per hour, for `status`."""
        hour = _iso(now)[:13]
        record = self.drops.get(hour)
        with self.database.batch():
            self.drops.put({"key": hour, "count": (record["count"] if record else 0) + 1})

    def dropped_since(self, since: datetime) -> int:
        first = _iso(since)[:13]
        return sum(r["count"] for key, r in self.drops.records.items() if key >= first)

    def forget_reply_times(self, now: datetime) -> None:
        stale = [
            key
            for key, record in self.reply_times.records.items()
            if all(now - _time(t) >= HOUR for t in record["times"])
        ]
        old_hours = [key for key in self.drops.records if key < _iso(now - 2 * DAY)[:13]]
        with self.database.batch():
            for key in stale:
                self.reply_times.remove(key)
            for key in old_hours:
                self.drops.remove(key)

    # -- handled messages -------------------------------------------------------

    def is_processed(self, message_key: str) -> bool:
        return message_key in self.processed

    def mark_processed(self, message_key: str, now: datetime) -> None:
        with self.database.batch():
            self.processed.put({"key": message_key, "at": _iso(now)})

    def forget_processed(self, now: datetime) -> None:
        """Forget handled messages older than PROCESSED_MEMORY, and the oldest beyond
        MAX_PROCESSED (ISO times in UTC sort as text)."""
        cutoff = _iso(now - PROCESSED_MEMORY)
        by_age = sorted(self.processed.records.values(), key=lambda r: r["at"], reverse=True)
        old = [r["key"] for n, r in enumerate(by_age) if n >= MAX_PROCESSED or r["at"] < cutoff]
        failed = [k for k, r in self.failures.records.items() if r["first"] < cutoff]
        with self.database.batch():
            for key in old:
                self.processed.remove(key)
            for key in failed:
                self.failures.remove(key)

    # -- messages that failed ---------------------------------------------------

    def count_failure(self, message_key: str, error: str, now: datetime) -> int:
        """One more failed try at this message; returns how many there were."""
        record = self.failures.get(message_key) or {"key": message_key, "tries": 0}
        record = record | {
            "tries": record["tries"] + 1,
            "first": record.get("first") or _iso(now),
            "error": error[:300],
        }
        with self.database.batch():
            self.failures.put(record)
        return record["tries"]

    def forget_failure(self, message_key: str) -> None:
        with self.database.batch():
            self.failures.remove(message_key)

    # -- the outbox -------------------------------------------------------------

    def queue_reply(self, recipient: str, data: bytes, now: datetime) -> None:
        # latin-1 maps every byte to one character: any message survives JSON unchanged.
        key = f"{time.time_ns():020d}"  # orders the outbox by queueing time
        while key in self.outbox_table:
            key = f"{int(key) + 1:020d}"
        record = {
            "key": key,
            "recipient": recipient,
            "data": data.decode("latin-1"),
            "created": _iso(now),
            "tries": 0,
        }
        with self.database.batch():
            self.outbox_table.put(record)

    def outbox(self) -> list[QueuedReply]:
        """The queued replies, oldest first."""
        return [
            QueuedReply(
                id=r["key"],
                recipient=r["recipient"],
                data=r["data"].encode("latin-1"),
                created=r["created"],
                tries=r["tries"],
            )
            for r in sorted(self.outbox_table.records.values(), key=lambda r: r["key"])
        ]

    def drop_replies(self, ids: Iterable[str]) -> None:
        with self.database.batch():
            for key in ids:
                self.outbox_table.remove(key)

    def count_reply_tries(self, ids: Iterable[str]) -> None:
        with self.database.batch():
            for key in ids:
                record = self.outbox_table.get(key)
                if record is not None:
                    self.outbox_table.put(record | {"tries": record["tries"] + 1})


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)
