"""The cycle log: when each cycle ran and what it did, for `status` and the catch-up after
downtime; only the last KEEP_CYCLES are kept."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .engine import Database, Fields

KEEP_CYCLES = 100  # status shows 5; the daemon reads only the newest finished one
CYCLE_FIELDS = Fields.of(
    "key",
    "number",
    "started",
    "finished",
    optional=("keywords", "archive_error", "interrupted", "mail", "error"),
)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class CycleLog:
    def __init__(self, database: Database):
        self.database = database
        # The key is the number as text: KeyedTable keys are strings.
        self.table = database.keyed("cycles", "key", CYCLE_FIELDS)

    def last_number(self) -> int:
        return max((r["number"] for r in self.table.records.values()), default=0)

    def begin(self) -> int:
        """Record a new cycle's start (and forget the oldest beyond KEEP_CYCLES); its number."""
        number = self.last_number() + 1
        with self.database.batch():
            self.table.put(
                {"key": str(number), "number": number, "started": now_iso(), "finished": None}
            )
            for old in sorted(r["number"] for r in self.table.records.values())[:-KEEP_CYCLES]:
                self.table.remove(str(old))
        return number

    def update(self, number: int, **fields: Any) -> None:
        with self.database.batch():
            self.table.put(self.table.records[str(number)] | fields)

    def finish(self, number: int, **fields: Any) -> None:
        self.update(number, finished=now_iso(), **fields)

    def all(self) -> list[dict[str, Any]]:
        """Oldest first, without the table's own key."""
        return sorted(
            ({k: v for k, v in r.items() if k != "key"} for r in self.table.records.values()),
            key=lambda r: r["number"],
        )
