"""How often a subscriber gets a digest: daily (every cycle with news) or weekly on a weekday.

Pure functions on dates. The day that counts is the cycle's date in
`[schedule] timezone`, and a weekly digest is due when their weekday has come
since the day their last digest went out (`Delivery.last_day`): so a weekday
missed while the daemon was down is sent by the next cycle, and several cycles
a day still send one digest a week. What a digest holds does not depend on
this: it is every paper first seen since the last one delivered, as for daily.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

DAILY, WEEKLY = "daily", "weekly"
CADENCES = (DAILY, WEEKLY)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class CadenceError(ValueError):
    """A cadence or weekday that does not exist; str() says which values do."""


@dataclass(frozen=True)
class Cadence:
    every: str = DAILY  # daily | weekly
    weekday: str = "monday"  # a weekly digest's day; unused for daily

    @property
    def weekly(self) -> bool:
        return self.every == WEEKLY

    def describe(self) -> str:
        """'daily', or 'weekly on Friday': for listings and replies."""
        return f"weekly on {self.weekday.capitalize()}" if self.weekly else DAILY

    def due(self, last_day: date | None, today: date) -> bool:
        """Whether this cycle (on `today`) sends the digest; `last_day`: when the last one
        went out (None: never, or not known)."""
        if not self.weekly or last_day is None:
            return True
        return self.latest_weekday(today) > last_day

    def latest_weekday(self, today: date) -> date:
        """The last day on or before `today` that is this cadence's weekday."""
        return today - timedelta(days=(today.weekday() - WEEKDAYS.index(self.weekday)) % 7)

    def next_day(self, last_day: date | None, today: date) -> date:
        """The first day from `today` on whose cycle sends the next digest."""
        if self.due(last_day, today):
            return today
        return self.latest_weekday(today) + timedelta(days=7)


def parse_cadence(every: str, weekday: str = "") -> Cadence:
    """A cadence from what a file, a command line or a mail says (any case); weekday
    may be a day's full name or its first three letters, and is "monday" when empty."""
    every = every.strip().lower()
    if every not in CADENCES:
        raise CadenceError(f'must be "daily" or "weekly", got {every[:40]!r}')
    day = weekday.strip().lower() or "monday"
    full = next((w for w in WEEKDAYS if day in (w, w[:3])), None)
    if full is None:
        raise CadenceError(f'must be a day of the week like "friday", got {weekday[:40]!r}')
    return Cadence(every, full)


@dataclass(frozen=True)
class Period:
    """The days a weekly digest covers: from the day after the last digest to the day of
    this one (`first` None: no digest was delivered before)."""

    first: date | None
    last: date

    def text(self) -> str:
        if self.first is None:
            return f"weekly, to {self.last.isoformat()}"
        return f"weekly, {self.first.isoformat()} to {self.last.isoformat()}"


def weekly_period(last_day: date | None, today: date) -> Period:
    first = None if last_day is None else min(last_day + timedelta(days=1), today)
    return Period(first, today)


def local_today(timezone: str, now: datetime | None = None) -> date:
    """Today's date in the schedule's time zone, the one weekdays are counted in."""
    zone = ZoneInfo(timezone)
    return (now or datetime.now(zone)).astimezone(zone).date()


def day_of(text: str, timezone: str) -> date | None:
    """A recorded day ('2025-03-10') or time ('2025-03-10T06:00:00+00:00', as records of
    the release before hold) as a date in the schedule's zone; None when empty or bad."""
    if not text:
        return None
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        return local_today(timezone, datetime.fromisoformat(text))
    except ValueError:
        return None
