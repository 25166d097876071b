"""`newsletter preview`: a subscriber's next digest, rendered, with nothing sent or saved."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ..addresses import address_key
from ..cadence import local_today
from ..clock import first_due_from
from ..config import Settings
from ..store import Store
from ..subscribers import Roster, SubscriberError, load_subscribers
from ..tokens import load_secret
from .deliver import make_renderer, personal
from .plan import Planner, plan_all


@dataclass(frozen=True)
class Preview:
    """The next digest's parts (html None: nothing is due), its cadence, and the scheduled
    cycle that sends it: a weekly one waits for its weekday."""

    html: str | None
    text: str | None
    subject: str
    cadence: str  # "daily", "weekly on Friday"
    goes_out: datetime  # UTC


def preview_next(settings: Settings, email: str, now: datetime | None = None) -> Preview:
    """Reads only: no lock, no secret created, nothing recorded. A weekly digest is
    planned as of its day, with the papers known now."""
    now = now or datetime.now(UTC)
    roster = load_subscribers(settings.subscribers.dir, settings.keyword_names)
    wanted = address_key(email.strip())
    subscriber = next((s for s in roster.subscribers if s.key == wanted), None)
    if subscriber is None:
        raise SubscriberError("not a subscriber (see `newsletter subscribers`)")
    cadence = subscriber.cadence.describe()
    today = local_today(settings.schedule.timezone, now)
    if not settings.store.path.exists():
        return Preview(None, None, "", cadence, first_due_from(settings.schedule, today, now))
    with Store(settings.store.path, lock=False) as store:
        planner = Planner(settings, store, today)
        delivery = store.deliveries.get(subscriber.key)
        day = today
        if not planner.due(subscriber, delivery):
            day = subscriber.cadence.next_day(planner.last_day(delivery), today)
        groups, _, _ = plan_all(settings, store, Roster((subscriber,), ()), day)
    goes_out = first_due_from(settings.schedule, day, now)
    if not groups.members:
        return Preview(None, None, "", cadence, goes_out)
    (digest,) = groups.digests.values()
    secret = load_secret(settings.web.secret_file) or b"preview: no secret file yet"
    rendered = make_renderer(settings).render(digest, subscriber.keywords, day)
    html, text = rendered.personalise(personal(settings, secret, subscriber, 0))
    return Preview(html, text, rendered.subject, cadence, goes_out)
