"""When cycles are due: the schedule's times of day, in its time zone.

Pure functions on aware datetimes (zoneinfo), used to catch up after downtime
and to show the next run in `newsletter status`; the daemon's loop itself runs
on the `schedule` library.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from .config import ScheduleSettings


def _times(settings: ScheduleSettings) -> list[time]:
    return [time.fromisoformat(t) for t in settings.times]


def _candidates(settings: ScheduleSettings, now: datetime) -> list[datetime]:
    zone = ZoneInfo(settings.timezone)
    today = now.astimezone(zone).date()
    return [
        datetime.combine(today + timedelta(days=offset), at, tzinfo=zone)
        for offset in (-1, 0, 1)
        for at in _times(settings)
    ]


def previous_due(settings: ScheduleSettings, now: datetime | None = None) -> datetime:
    """The latest scheduled instant at or before `now` (UTC)."""
    now = now or datetime.now(UTC)
    return max(c for c in _candidates(settings, now) if c <= now).astimezone(UTC)


def next_due(settings: ScheduleSettings, now: datetime | None = None) -> datetime:
    """The first scheduled instant after `now` (UTC)."""
    now = now or datetime.now(UTC)
    return min(c for c in _candidates(settings, now) if c > now).astimezone(UTC)


def missed_since(
    settings: ScheduleSettings, last_finished: datetime | None, now: datetime | None = None
) -> bool:
    """True when a scheduled time passed after the last completed cycle (downtime)."""
    if last_finished is None:
        return False
    return previous_due(settings, now) > last_finished


def first_due_from(settings: ScheduleSettings, day: date, now: datetime | None = None) -> datetime:
    """The first scheduled instant after `now` (UTC) on or after `day` in the schedule's
    zone: when a weekly digest due on `day` goes out."""
    now = now or datetime.now(UTC)
    first = next_due(settings, now)
    zone = ZoneInfo(settings.timezone)
    if first.astimezone(zone).date() >= day:
        return first
    return min(datetime.combine(day, at, tzinfo=zone) for at in _times(settings)).astimezone(UTC)
