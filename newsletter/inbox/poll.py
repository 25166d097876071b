"""Reading the mailbox once: `poll_inbox()`, the entry point of commands by email.

The daemon calls it every `inbox.poll_seconds`, `newsletter inbox --once` once.
Each poll reads the new messages, acts on each, and only then marks them
handled in the mailbox:

    mailbox ─▶ parse ─▶ command ─▶ effect ─▶ one store write ─▶ mark
                                    └─▶ reply queued in the store ─▶ SMTP

A message is acted on at most once: its effect, its reply and the fact that it
was handled are saved in one store write, before the mailbox is marked. A
message that fails is left unmarked and tried again at the next poll, and after
MAX_TRIES failures set aside (marked, and flagged for a person); the others go on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..config import Settings
from ..crashpoints import crashpoint
from ..sending.smtp import (
    HELD,
    PERMANENT,
    SENT,
    MailerError,
    Outbound,
    Outcome,
    ehlo_name,
    read_password,
    send_all,
)
from ..sending.smtp_wire import wire_form
from ..store import Store
from .actions import DONE, SET_ASIDE, Inbox
from .sources import MailSourceError, open_source

log = logging.getLogger(__name__)

# Messages whose effects are saved in one store write before they are marked. After
# the first two, a chunk is as large as all the poll handled before it: the state file
# grows with each chunk's requests and replies, and doubling keeps what a poll writes
# in proportion to its messages (a kill costs at most that chunk, handled again).
CHUNK = 25


@dataclass(frozen=True)
class InboxReport:
    read: int = 0
    acted: int = 0  # commands carried out or answered
    ignored: int = 0  # automatic mail, no usable sender, our own mail, already handled
    bounces: int = 0  # permanent failures counted from bounce reports
    replies_sent: int = 0
    replies_waiting: int = 0  # queued, not yet accepted by the SMTP server: retried next poll
    dropped: int = 0  # requests dropped without a reply, over a reply cap
    set_aside: int = 0  # messages that failed MAX_TRIES times, marked and flagged
    error: str = ""  # the mailbox, the SMTP server or a message failed: one line

    @property
    def ok(self) -> bool:
        return not self.error

    def summary(self) -> str:
        line = (
            f"inbox: read {self.read}, acted on {self.acted}, ignored {self.ignored}, "
            f"bounces {self.bounces}, replies sent {self.replies_sent}, "
            f"waiting {self.replies_waiting}"
        )
        if self.dropped:
            line += f", dropped {self.dropped} (over the reply caps)"
        if self.set_aside:
            line += f", set aside {self.set_aside}"
        return line + (f"; FAILED: {self.error}" if self.error else "")


def send_replies(
    settings: Settings, store: Store, now: datetime, stop: threading.Event | None = None
) -> int:
    """Send the queued replies; returns how many the server accepted. A reply older
    than confirm_hours is dropped: its code would have expired anyway."""
    assert settings.inbox is not None
    queued = store.inbox.outbox()
    too_old = now - timedelta(hours=settings.inbox.confirm_hours)
    stale = [r for r in queued if datetime.fromisoformat(r.created) < too_old]
    for reply in stale:
        log.warning("inbox: reply to %s dropped after %d tries", reply.recipient, reply.tries)
    fresh = [r for r in queued if r not in stale]
    outcomes: dict[str, list[str]] = {SENT: [], PERMANENT: [], "temporary": [], HELD: []}

    def report(outcome: Outcome) -> None:
        outcomes[outcome.status].append(outcome.item.key)
        if outcome.status not in (SENT, HELD):
            log.warning(
                "inbox: reply to %s: %s failure: %s",
                outcome.item.recipient,
                outcome.status,
                outcome.detail,
            )

    server_down = None
    try:
        if fresh:
            server_down = send_all(
                settings.smtp,
                settings.inbox.address,
                iter([Outbound(r.recipient, wire_form(r.data), key=str(r.id)) for r in fresh]),
                report,
                password=read_password(settings.smtp),
                stop=stop,
                helo_name=ehlo_name(settings.smtp, settings.digest.domain),
            )
    finally:
        with store.batch():
            store.inbox.drop_replies([r.id for r in stale] + outcomes[SENT] + outcomes[PERMANENT])
            store.inbox.count_reply_tries(outcomes["temporary"])
    if server_down:
        raise MailerError(server_down)
    return len(outcomes[SENT])


def poll_inbox(
    settings: Settings,
    store: Store,
    stop: threading.Event | None = None,
    *,
    now: datetime | None = None,
    alive: Callable[[], None] | None = None,
    secret: bytes | None = None,
) -> InboxReport:
    """Read the mailbox once, act on each new message, send the replies.

    Uses the caller's open Store (whose lock keeps other instances away) and the
    token secret the caller loaded (checked here when not given). The
    store is not thread-safe: call this from the thread that runs the cycles,
    between them. Mailbox and SMTP problems end up in `InboxReport.error` (the
    daemon logs them and tries again next poll); a store that cannot be written
    raises StoreError, as in a cycle.
    """
    if settings.inbox is None:
        return InboxReport(error=f"{settings.file}: [inbox] is not configured")
    stop = stop or threading.Event()
    now = now or datetime.now(UTC)
    with store.batch():
        expired = store.inbox.expire_pending(now)
        store.inbox.forget_processed(now)
        store.inbox.forget_reply_times(now)
    if expired:
        log.info("inbox: %d confirmation requests expired unanswered", expired)
    inbox = Inbox(settings, store, now, secret)
    errors = []
    try:
        with open_source(settings.inbox) as source:
            refs = source.waiting()
            start = 0
            while start < len(refs) and not stop.is_set():
                chunk = refs[start : start + max(CHUNK, start)]
                fates: dict[str, list[str]] = {DONE: [], SET_ASIDE: []}
                with store.batch():
                    for ref in chunk:
                        if alive is not None:
                            alive()  # the daemon's watchdog heartbeat
                        item = source.read(ref)
                        if item is not None:
                            fates.setdefault(inbox.take(item), []).append(ref)
                crashpoint("inbox-after-save")
                source.done(fates[DONE])
                source.set_aside(fates[SET_ASIDE])
                start += len(chunk)
    except MailSourceError as err:
        errors.append(str(err))
        log.error("inbox: %s", err)
    except OSError as err:
        errors.append(f"{err.filename or 'a file'}: {err.strerror}; tried again next poll")
        log.error("inbox: %s", errors[-1])
    errors[:0] = inbox.problems
    counts = inbox.counts
    if counts["dropped"]:
        log.warning(
            "inbox: %d requests dropped without a reply, over the reply caps (a flood of "
            "forged mail?); `newsletter status` counts them",
            counts["dropped"],
        )
    sent = 0
    try:
        sent = send_replies(settings, store, now, stop)
    except MailerError as err:
        errors.append(str(err))
        log.error("inbox: replies not sent: %s", err)
    return InboxReport(
        read=counts["read"],
        acted=counts["acted"],
        ignored=counts["ignored"],
        bounces=counts["bounces"],
        replies_sent=sent,
        replies_waiting=len(store.inbox.outbox()),
        dropped=counts["dropped"],
        set_aside=counts["set_aside"],
        error="; ".join(errors),
    )
