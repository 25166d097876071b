"""Who is due which digest this cycle: every subscriber planned from one snapshot of the
store, and grouped with those who get byte for byte the same papers.

A weekly subscriber is due on the first cycle on or after their weekday
(cadence.py); their digest is chosen as a daily one is, from their last
delivered cycle, and carries the period it covers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date

from ..cadence import day_of, local_today, weekly_period
from ..config import Settings
from ..papers import all_by_keyword
from ..store import Delivery, Store
from ..subscribers import Roster, Subscriber
from .select import Digest, select_new, select_welcome


def is_new_subscription(subscriber: Subscriber, delivery: Delivery | None) -> bool:
    """No record, or a record of an earlier subscription of the same address."""
    return delivery is None or delivery.since != subscriber.created


class Planner:
    """Plans digests from one snapshot of the working set; caches by what determines one."""

    def __init__(self, settings: Settings, store: Store, today: date | None = None):
        self.timezone = settings.schedule.timezone
        self.today = today or local_today(self.timezone)
        self.order = settings.keyword_names
        self.limit = settings.digest.max_papers_per_keyword
        self.store = store
        self.by_keyword = all_by_keyword(store.papers.stored(), self.order)
        self._cache: dict[tuple, Digest] = {}

    def last_day(self, delivery: Delivery | None) -> date | None:
        """The day the last digest went out, in the schedule's zone; None if never."""
        if delivery is None:
            return None
        return day_of(delivery.last_day or delivery.last_sent, self.timezone)

    def due(self, subscriber: Subscriber, delivery: Delivery | None) -> bool:
        """A new subscription's welcome issue is due whatever the cadence."""
        if is_new_subscription(subscriber, delivery):
            return True
        return subscriber.cadence.due(self.last_day(delivery), self.today)

    def plan(self, subscriber: Subscriber, delivery: Delivery | None) -> Digest:
        keywords = subscriber.keywords
        if is_new_subscription(subscriber, delivery):
            key: tuple = ("welcome", keywords)
            if key not in self._cache:
                self._cache[key] = select_welcome(keywords, self.order, self.by_keyword, self.limit)
        else:
            assert delivery is not None
            after = delivery.last_cycle
            key = ("new", keywords, after)
            if key not in self._cache:
                uncounted = self.store.papers.uncounted_after(after)
                self._cache[key] = select_new(
                    keywords, self.order, self.by_keyword, after, self.limit, uncounted
                )
            if subscriber.cadence.weekly:
                period = weekly_period(self.last_day(delivery), self.today)
                return replace(self._cache[key], period=period)
        return self._cache[key]


@dataclass
class Groups:
    """Subscribers who get byte-for-byte the same papers, keyed by what they share (a weekly
    digest's period too: it is in the subject and the intro)."""

    digests: dict[tuple, Digest] = field(default_factory=dict)
    members: dict[tuple, list[Subscriber]] = field(default_factory=dict)
    waiting: int = 0  # weekly subscribers whose weekday has not come since their last digest

    def add(self, subscriber: Subscriber, digest: Digest) -> None:
        more = tuple(s.more for s in digest.sections)
        key = (subscriber.keywords, digest.welcome, digest.period, digest.paper_ids(), more)
        self.digests.setdefault(key, digest)
        self.members.setdefault(key, []).append(subscriber)


def plan_all(
    settings: Settings, store: Store, roster: Roster, today: date | None = None
) -> tuple[Groups, int, int]:
    """Group everyone due a digest on `today` (the cycle's date in the schedule's zone; by
    default the clock's); returns (groups, bouncing, nothing_new)."""
    deliveries = {s.key: store.deliveries.get(s.key) for s in roster.subscribers}
    planner = Planner(settings, store, today)
    groups = Groups()
    bouncing = nothing = 0
    for subscriber in roster.subscribers:
        delivery = deliveries[subscriber.key]
        if not is_new_subscription(subscriber, delivery) and delivery.state == "bouncing":
            bouncing += 1
            continue
        if not planner.due(subscriber, delivery):
            groups.waiting += 1
            continue
        digest = planner.plan(subscriber, delivery)
        if not digest.sections:
            nothing += 1
            continue
        groups.add(subscriber, digest)
    return groups, bouncing, nothing
