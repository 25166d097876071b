"""The digest phase of a cycle: plan, render each distinct digest once, send, and record
every outcome as soon as it is known.

Cost grows with the number of *distinct* digests, not of people: subscribers
with the same keywords and the same pending papers share one jinja2 + premailer
render, and messages are built lazily as the SMTP workers take them, so memory
stays flat at thousands of subscribers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

from ..cadence import local_today
from ..config import Settings
from ..store import BouncePolicy, Store
from ..subscribers import Roster, Subscriber, load_subscribers
from ..tokens import check_secret, digest_message_id, token
from .mime import MailTemplate, unsubscribe_mailto
from .plan import plan_all
from .render import Personal, Rendered, Renderer
from .smtp import HELD, PERMANENT, SENT, Outbound, Outcome, ehlo_name, read_password, send_all

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryReport:
    sent: int = 0
    pending: int = 0  # due but not sent (temporary failure, server unusable, stopped): next cycle
    bounced: int = 0  # permanent refusals this cycle
    bouncing: int = 0  # skipped: marked bouncing after max_bounces refusals
    skipped: int = 0  # subscriber files with problems
    nothing_new: int = 0
    waiting: int = 0  # weekly subscribers whose weekday has not come yet
    digests: int = 0  # distinct digests: each rendered once, however many get it
    renders: int = 0  # jinja2 + premailer passes (more than digests when one is trimmed)
    error: str = ""  # the SMTP server could not be used: the pending stay for the next cycle

    def summary(self) -> str:
        return (
            f"mail: sent {self.sent}, pending {self.pending}, bounced {self.bounced}, "
            f"bouncing {self.bouncing}, skipped {self.skipped}"
            + (f", weekly not due yet {self.waiting}" if self.waiting else "")
            + (f"; FAILED: {self.error}" if self.error else "")
        )


def make_renderer(settings: Settings) -> Renderer:
    d = settings.digest
    return Renderer(
        d.templates,
        subject=d.subject,
        welcome_subject=d.welcome_subject,
        max_html_bytes=d.max_html_bytes,
        archive_url=settings.archive.public_url,
        unsubscribe_address=settings.reply_address if settings.inbox else "",
        ask_address="" if settings.unsubscribes_itself else d.sender_address,
    )


def make_mail(settings: Settings, rendered: Rendered) -> MailTemplate:
    """A rendered digest as mail, ready to be addressed to each of its readers."""
    d = settings.digest
    return MailTemplate(rendered, sender=d.sender, list_name=d.list_name, list_id=d.list_id)


def personal(settings: Settings, secret: bytes, subscriber: Subscriber, cycle: int) -> Personal:
    """This subscription's parts of `cycle`'s digest: its token, and the signed
    Message-ID a bounce report must quote to count."""
    tok = token(secret, subscriber.email, subscriber.created)
    return Personal(
        email=subscriber.email,
        name=subscriber.name,
        unsubscribe_mailto=unsubscribe_mailto(settings.reply_address, tok),
        unsubscribe_url=settings.web.unsubscribe_url(tok),
        message_id=digest_message_id(
            secret, cycle, subscriber.email, subscriber.created, settings.digest.domain
        ),
    )


def deliver_digests(
    settings: Settings,
    store: Store,
    cycle: int,
    *,
    roster: Roster | None = None,
    today: date | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[str], None] | None = None,
    secret: bytes | None = None,
) -> DeliveryReport:
    """Send every subscriber the digest due to them and record what happened; `roster` is
    the subscriber files as the cycle read them (read here when not given), `secret` the
    token secret (checked here when not given). `today`, when given, is also the day
    weekly cadences are counted on (tests); else that is the date in [schedule] timezone."""
    day = today or datetime.now(UTC).date()
    local_day = today or local_today(settings.schedule.timezone)
    if roster is None:
        roster = load_subscribers(settings.subscribers.dir, settings.keyword_names)
    for problem in roster.problems:
        log.warning("subscribers: %s", problem)
    groups, bouncing, nothing = plan_all(settings, store, roster, local_day)
    if not groups.members:
        return DeliveryReport(
            bouncing=bouncing,
            skipped=len(roster.problems),
            nothing_new=nothing,
            waiting=groups.waiting,
        )

    if secret is None:
        secret = check_secret(settings.web.secret_file, store.links_mailed())
    renderer = make_renderer(settings)
    policy = BouncePolicy(settings.smtp.max_bounces, settings.smtp.bounce_days)
    since = {s.key: s.created for s in roster.subscribers}

    def outbound() -> Iterator[Outbound]:
        for key, members in groups.members.items():
            rendered = renderer.render(groups.digests[key], members[0].keywords, day)
            mail = make_mail(settings, rendered)
            for subscriber in members:
                wire = mail.message(personal(settings, secret, subscriber, cycle))
                yield Outbound(subscriber.email, wire, key=subscriber.key)

    counts = {SENT: 0, "temporary": 0, PERMANENT: 0, HELD: 0}
    due = sum(len(members) for members in groups.members.values())
    show = progress or (lambda text: None)

    def report(outcome: Outcome) -> None:
        counts[outcome.status] += 1
        show(f"mail: {counts[SENT]} sent, {sum(counts.values())}/{due} done")
        key = outcome.item.key
        if outcome.status == SENT:
            store.deliveries.record_sent(key, since[key], cycle, local_day.isoformat())
            return
        if outcome.status == HELD:  # the server is unusable: said once, as the run's error
            return
        record = store.deliveries.record_failure(
            key,
            since[key],
            permanent=outcome.status == PERMANENT,
            detail=outcome.detail,
            policy=policy,
            cycle=cycle,
        )
        log.warning(
            "mail to %s: %s failure: %s%s",
            outcome.item.recipient,
            outcome.status,
            outcome.detail,
            "; now marked bouncing" if record.state == "bouncing" else "",
        )

    try:
        server_down = send_all(
            settings.smtp,
            settings.reply_address,
            outbound(),
            report,
            password=read_password(settings.smtp),
            stop=stop,
            helo_name=ehlo_name(settings.smtp, settings.digest.domain),
        )
    finally:
        store.deliveries.flush()
    return DeliveryReport(
        sent=counts[SENT],
        pending=due - counts[SENT] - counts[PERMANENT],
        bounced=counts[PERMANENT],
        bouncing=bouncing,
        skipped=len(roster.problems),
        nothing_new=nothing,
        waiting=groups.waiting,
        digests=len(groups.members),
        renders=renderer.renders,
        error=server_down or "",
    )
