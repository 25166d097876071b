"""The digest phase of a cycle: plan each subscriber's digest, render each distinct
digest once, send, and record every outcome as soon as it is known.

Cost grows with the number of *distinct* digests, not of people: subscribers
with the same keywords and the same pending papers share one jinja2 + premailer
render, and messages are built lazily as the SMTP workers take them, so memory
stays flat at thousands of subscribers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from .addresses import address_key
from .archive import newest_by_keyword
from .config import Settings
from .digest import (
    Digest,
    MailTemplate,
    Personal,
    Rendered,
    Renderer,
    select_new,
    select_welcome,
    unsubscribe_mailto,
)
from .mailer import PERMANENT, SENT, Outbound, Outcome, read_password, send_all
from .store import Delivery, Store
from .subscribers import Roster, Subscriber, SubscriberError, load_subscribers
from .tokens import load_or_create_secret, load_secret, token

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryReport:
    sent: int = 0
    pending: int = 0  # due but not sent (temporary failure, or stopped): sent next cycle
    bounced: int = 0  # permanent refusals this cycle
    bouncing: int = 0  # skipped: marked bouncing after max_bounces refusals
    skipped: int = 0  # subscriber files with problems
    nothing_new: int = 0
    digests: int = 0  # distinct digests: each rendered once, however many get it
    renders: int = 0  # jinja2 + premailer passes (more than digests when one is trimmed)

    def summary(self) -> str:
        return (
            f"mail: sent {self.sent}, pending {self.pending}, bounced {self.bounced}, "
            f"bouncing {self.bouncing}, skipped {self.skipped}"
        )


def reply_address(settings: Settings) -> str:
    """Where people write to us: the unsubscribe mailto, and the envelope sender of
    digests, so that bounce reports arrive where the inbox reads them."""
    return settings.inbox.address if settings.inbox else settings.digest.sender_address


def is_new_subscription(subscriber: Subscriber, delivery: Delivery | None) -> bool:
    """No record, or a record of an earlier subscription of the same address."""
    return delivery is None or delivery.since != subscriber.created


class Planner:
    """Plans digests from one snapshot of the store; caches by what determines a digest."""

    def __init__(self, settings: Settings, store: Store, after_cycles: list[int]):
        self.order = settings.keyword_names
        self.limit = settings.digest.max_papers_per_keyword
        self.store = store
        # Papers not yet delivered to someone; none to convert when everyone is new.
        self.pending = store.stored_papers(seen_after=min(after_cycles)) if after_cycles else []
        self._newest: dict[str, list] | None = None
        self._cache: dict[tuple, Digest] = {}

    def newest(self) -> dict[str, list]:
        if self._newest is None:
            self._newest = newest_by_keyword(self.store.stored_papers(), self.order, self.limit)
        return self._newest

    def plan(self, subscriber: Subscriber, delivery: Delivery | None) -> Digest:
        if is_new_subscription(subscriber, delivery):
            key: tuple = ("welcome", subscriber.keywords)
            if key not in self._cache:
                self._cache[key] = select_welcome(subscriber.keywords, self.order, self.newest())
        else:
            assert delivery is not None
            key = ("new", subscriber.keywords, delivery.last_cycle)
            if key not in self._cache:
                self._cache[key] = select_new(
                    subscriber.keywords, self.order, self.pending, delivery.last_cycle
                )
        return self._cache[key]


def make_renderer(settings: Settings) -> Renderer:
    d = settings.digest
    return Renderer(
        d.templates,
        subject=d.subject,
        welcome_subject=d.welcome_subject,
        max_html_bytes=d.max_html_bytes,
        archive_url=settings.archive.public_url,
        unsubscribe_address=reply_address(settings),
    )


def make_mail(settings: Settings, rendered: Rendered, cycle: int) -> MailTemplate:
    """A rendered digest as mail, ready to be addressed to each of its readers."""
    d = settings.digest
    return MailTemplate(
        rendered,
        sender=d.sender,
        list_name=d.list_name,
        list_id=d.list_id,
        cycle=cycle,
        domain=d.domain,
    )


def personal(settings: Settings, secret: bytes, subscriber: Subscriber) -> Personal:
    tok = token(secret, subscriber.email)
    return Personal(
        email=subscriber.email,
        name=subscriber.name,
        unsubscribe_mailto=unsubscribe_mailto(reply_address(settings), tok),
        unsubscribe_url=settings.web.unsubscribe_url(tok),
    )


@dataclass
class _Groups:
    """Subscribers who get byte-for-byte the same papers, keyed by what they share."""

    digests: dict[tuple, Digest] = field(default_factory=dict)
    members: dict[tuple, list[Subscriber]] = field(default_factory=dict)

    def add(self, subscriber: Subscriber, digest: Digest) -> None:
        key = (subscriber.keywords, digest.welcome, digest.paper_ids())
        self.digests.setdefault(key, digest)
        self.members.setdefault(key, []).append(subscriber)


def plan_all(settings: Settings, store: Store, roster: Roster) -> tuple[_Groups, int, int]:
    """Group everyone due a digest; returns (groups, bouncing, nothing_new)."""
    deliveries = {s.key: store.delivery(s.key) for s in roster.subscribers}
    after = [
        d.last_cycle
        for s in roster.subscribers
        if (d := deliveries[s.key]) is not None and not is_new_subscription(s, d)
    ]
    planner = Planner(settings, store, after)
    groups = _Groups()
    bouncing = nothing = 0
    for subscriber in roster.subscribers:
        delivery = deliveries[subscriber.key]
        if not is_new_subscription(subscriber, delivery) and delivery.state == "bouncing":
            bouncing += 1
            continue
        digest = planner.plan(subscriber, delivery)
        if not digest.sections:
            nothing += 1
            continue
        groups.add(subscriber, digest)
    return groups, bouncing, nothing


def preview(settings: Settings, email: str) -> tuple[str | None, str | None, str]:
    """(html, text, subject) of this subscriber's next digest; (None, None, "") when
    nothing is due. Reads only: no lock, no secret created, nothing recorded."""
    roster = load_subscribers(settings.subscribers.dir, settings.keyword_names)
    wanted = address_key(email.strip())
    subscriber = next((s for s in roster.subscribers if s.key == wanted), None)
    if subscriber is None:
        raise SubscriberError("not a subscriber (see `newsletter subscribers`)")
    if not settings.store.path.exists():
        return None, None, ""
    with Store(settings.store.path, lock=False) as store:
        groups, _, _ = plan_all(settings, store, Roster((subscriber,), ()))
    if not groups.members:
        return None, None, ""
    (digest,) = groups.digests.values()
    secret = load_secret(settings.web.secret_file) or b"preview: no secret file yet"
    rendered = make_renderer(settings).render(digest, subscriber.keywords, datetime.now(UTC).date())
    html, text = rendered.personalise(personal(settings, secret, subscriber))
    return html, text, rendered.subject


def deliver_digests(
    settings: Settings,
    store: Store,
    cycle: int,
    *,
    today: date | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[str], None] | None = None,
) -> DeliveryReport:
    """Send every subscriber the digest due to them and record what happened."""
    day = today or datetime.now(UTC).date()
    roster = load_subscribers(settings.subscribers.dir, settings.keyword_names)
    for problem in roster.problems:
        log.warning("subscribers: %s", problem)
    groups, bouncing, nothing = plan_all(settings, store, roster)
    if not groups.members:
        return DeliveryReport(bouncing=bouncing, skipped=len(roster.problems), nothing_new=nothing)

    secret = load_or_create_secret(settings.web.secret_file)
    renderer = make_renderer(settings)
    since = {s.key: s.created for s in roster.subscribers}

    def outbound() -> Iterator[Outbound]:
        for key, members in groups.members.items():
            rendered = renderer.render(groups.digests[key], members[0].keywords, day)
            mail = make_mail(settings, rendered, cycle)
            for subscriber in members:
                wire = mail.message(personal(settings, secret, subscriber))
                yield Outbound(subscriber.email, wire, key=subscriber.key)

    counts = {SENT: 0, "temporary": 0, PERMANENT: 0}
    due = sum(len(members) for members in groups.members.values())
    show = progress or (lambda text: None)

    def report(outcome: Outcome) -> None:
        counts[outcome.status] += 1
        show(f"mail: {counts[SENT]} sent, {sum(counts.values())}/{due} done")
        key = outcome.item.key
        if outcome.status == SENT:
            store.record_sent(key, since[key], cycle)
            return
        record = store.record_failure(
            key,
            since[key],
            permanent=outcome.status == PERMANENT,
            detail=outcome.detail,
            max_bounces=settings.smtp.max_bounces,
        )
        log.warning(
            "mail to %s: %s failure: %s%s",
            outcome.item.recipient,
            outcome.status,
            outcome.detail,
            "; now marked bouncing" if record.state == "bouncing" else "",
        )

    try:
        send_all(
            settings.smtp,
            reply_address(settings),
            outbound(),
            report,
            password=read_password(settings.smtp),
            stop=stop,
        )
    finally:
        store.flush_deliveries()
    return DeliveryReport(
        sent=counts[SENT],
        pending=due - counts[SENT] - counts[PERMANENT],
        bounced=counts[PERMANENT],
        bouncing=bouncing,
        skipped=len(roster.problems),
        nothing_new=nothing,
        digests=len(groups.members),
        renders=renderer.renders,
    )
