"""Acting on one message from the mailbox: a command, a bounce report, or nothing.

Safety rules, each enforced here:
- Nobody can change somebody else's subscription: every change asked for from
  a From address (which anyone can forge) waits for a reply carrying a code
  that was mailed to that address. Only the unsubscribe token of a digest's
  List-Unsubscribe mailto acts at once: it proves the mail was theirs.
- Replies go to the From address only, never Reply-To: otherwise a forger
  could have the confirmation code sent to themselves.
- Auto-replies, bounces, list mail and mail from daemons are never answered,
  and every reply says `Auto-Submitted: auto-replied`, so two robots cannot
  mail each other forever; at most `max_replies_per_hour` replies per address.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from email.utils import formataddr

from ..addresses import address_key
from ..config import Settings
from ..store import PendingRequest, Store
from ..subscribers import (
    Subscriber,
    SubscriberError,
    canonical_keywords,
    check_name,
    load_subscribers,
    remove_subscriber,
    save_subscriber,
)
from ..tokens import find_by_token, load_or_create_secret, token
from .commands import (
    CODE_LENGTH,
    CONFIRM,
    HELP,
    KEYWORDS,
    SUBSCRIBE,
    TOKEN_UNSUBSCRIBE,
    UNSUBSCRIBE,
    Command,
    parse_command,
)
from .parse import Incoming, message_key, parse_incoming
from .replies import (
    Reply,
    Voice,
    already_reply,
    build_reply,
    confirm_request,
    done_reply,
    help_reply,
    not_subscribed_reply,
    problem_reply,
)
from .sources import MailItem, MailSourceError

log = logging.getLogger(__name__)


def new_code() -> str:
    return base64.b32encode(secrets.token_bytes(20)).decode().lower()[:CODE_LENGTH]


def code_hash(code: str) -> str:
    return hashlib.sha256(code.lower().encode()).hexdigest()


class Inbox:
    """One poll's state: settings, the open store, the token secret, who is subscribed."""

    def __init__(self, settings: Settings, store: Store, now: datetime):
        assert settings.inbox is not None
        self.settings = settings
        self.config = settings.inbox
        self.store = store
        self.now = now
        self.secret = load_or_create_secret(settings.web.secret_file)
        roster = load_subscribers(settings.subscribers.dir, settings.keyword_names)
        self.subscribers: dict[str, Subscriber] = {s.key: s for s in roster.subscribers}
        name = settings.digest.list_name
        self.voice = Voice(
            name, self.config.address, settings.keyword_names, self.config.confirm_hours
        )
        self.sender = formataddr((name, self.config.address))
        self.own = {address_key(self.config.address), address_key(settings.digest.sender_address)}
        self.counts: Counter[str] = Counter()

    # -- one message ----------------------------------------------------------

    def take(self, item: MailItem) -> None:
        """Parse, act, and remember the message as handled (in the caller's batch)."""
        self.counts["read"] += 1
        try:
            incoming = parse_incoming(item.data)
        except Exception:  # parse_incoming is meant never to raise; if it does, go on
            log.exception("inbox: %s: unreadable; marked handled", item.ref)
            self.counts["ignored"] += 1
            self.store.inbox.mark_processed(message_key("", item.data), self.now)
            return
        who = incoming.sender or "(no usable sender)"
        if self.store.inbox.is_processed(incoming.key):
            self.counts["ignored"] += 1
            log.info("inbox: %s from %s: already handled", item.ref, who)
            return
        if item.truncated:
            log.warning("inbox: %s from %s: over 1 MiB, only its start was read", item.ref, who)
        try:
            outcome = self.handle(incoming)
        except (OSError, MailSourceError):
            raise  # our files or the mailbox: stop the poll, the message is tried again
        except Exception:  # a message we failed on must not stop the others, nor come back
            log.exception("inbox: %s from %s: failed; marked handled", item.ref, who)
            outcome = "failed"
        self.store.inbox.mark_processed(incoming.key, self.now)
        log.info("inbox: %s from %s: %s", item.ref, who, outcome)

    def handle(self, incoming: Incoming) -> str:
        """Act on one message; returns what happened, for the log."""
        if incoming.bounces:
            return self._bounces(incoming)
        reason = incoming.automatic or (
            "; ".join(incoming.problems) if incoming.sender is None else ""
        )
        if not reason and address_key(incoming.sender or "") in self.own:
            reason = "sent from our own address"
        if reason:
            self.counts["ignored"] += 1
            return f"not answered ({reason})"
        self.counts["acted"] += 1
        command = parse_command(incoming.subject, incoming.lines, incoming.text)
        handlers: dict[str, Callable[[Incoming, Command], str]] = {
            SUBSCRIBE: self._subscribe,
            KEYWORDS: self._keywords,
            UNSUBSCRIBE: self._unsubscribe,
            TOKEN_UNSUBSCRIBE: self._token_unsubscribe,
            CONFIRM: self._confirm,
            HELP: self._help,
        }
        return handlers[command.verb](incoming, command)

    # -- commands -------------------------------------------------------------

    def _help(self, incoming: Incoming, command: Command) -> str:
        self._reply(incoming, help_reply(self.voice, self._from(incoming), command.understood))
        return (
            "help sent" if command.understood else f"not understood ({command.said!r}); help sent"
        )

    def _choose(self, command: Command) -> tuple[str, ...]:
        if command.everything:
            return self.settings.keyword_names
        if not command.keywords:
            raise SubscriberError(
                f"say which keywords, like: {command.verb} {self.settings.keyword_names[0]} "
                f"(or: {command.verb} all)"
            )
        return canonical_keywords(command.keywords, self.settings.keyword_names)

    def _subscribe(self, incoming: Incoming, command: Command) -> str:
        sender = self._from(incoming)
        try:
            keywords = self._choose(command)
        except SubscriberError as err:
            self._reply(incoming, problem_reply(self.voice, sender, f"Nothing changed: {err}."))
            return f"refused: {err}"
        current = self.subscribers.get(address_key(sender))
        restart = self._bouncing(sender)
        if current is not None and current.keywords == keywords and not restart:
            self._reply(incoming, already_reply(self.voice, sender, keywords))
            return "already subscribed"
        action = SUBSCRIBE if current is None or restart else KEYWORDS
        return self._ask(incoming, action, keywords)

    def _keywords(self, incoming: Incoming, command: Command) -> str:
        sender = self._from(incoming)
        current = self.subscribers.get(address_key(sender))
        if current is None:
            self._reply(incoming, not_subscribed_reply(self.voice, sender))
            return "keywords asked by someone not subscribed"
        try:
            keywords = self._choose(command)
        except SubscriberError as err:
            self._reply(incoming, problem_reply(self.voice, sender, f"Nothing changed: {err}."))
            return f"refused: {err}"
        if keywords == current.keywords:
            self._reply(incoming, already_reply(self.voice, sender, keywords))
            return "keywords unchanged"
        return self._ask(incoming, KEYWORDS, keywords)

    def _unsubscribe(self, incoming: Incoming, command: Command) -> str:
        sender = self._from(incoming)
        if address_key(sender) not in self.subscribers:
            self.store.inbox.drop_pending(address_key(sender))
            self._reply(incoming, not_subscribed_reply(self.voice, sender))
            return "unsubscribe asked by someone not subscribed"
        return self._ask(incoming, UNSUBSCRIBE, ())

    def _token_unsubscribe(self, incoming: Incoming, command: Command) -> str:
        """The List-Unsubscribe mailto: the token proves the digest was theirs, so at once."""
        person = find_by_token(
            self.secret, command.secret, self.subscribers.values(), lambda s: s.email
        )
        if person is not None:
            self._remove(person.email)
            self._reply(incoming, done_reply(self.voice, person.email, UNSUBSCRIBE, ()))
            return f"{person.email} unsubscribed by token"
        sender = self._from(incoming)
        if hmac.compare_digest(token(self.secret, sender), command.secret):
            self._reply(incoming, not_subscribed_reply(self.voice, sender))
            return "token of an address no longer subscribed"
        # Altered, or somebody else's: worth no more than a plain "unsubscribe".
        return self._unsubscribe(incoming, command) + " (token not valid)"

    def _confirm(self, incoming: Incoming, command: Command) -> str:
        request = self.store.inbox.pending_request(code_hash(command.secret))
        if request is None or datetime.fromisoformat(request.expires) <= self.now:
            what = (
                "That confirmation code is unknown or has expired, so nothing changed. "
                "Send your request again to get a new code."
            )
            self._reply(incoming, problem_reply(self.voice, self._from(incoming), what))
            return "unknown or expired confirmation code"
        # The file first, the store after: if the file cannot be written, the poll stops
        # with the request still pending, and the same message confirms it next time.
        if request.action == UNSUBSCRIBE:
            self._remove(request.email)
        else:
            try:
                self._save(request)
            except SubscriberError as err:  # a keyword was removed from settings meanwhile
                self.store.inbox.drop_pending(request.key)
                what = f"Nothing changed: {err}."
                self._reply(incoming, problem_reply(self.voice, request.email, what))
                return f"confirmed, but refused: {err}"
        self.store.inbox.drop_pending(request.key)
        self._reply(
            incoming, done_reply(self.voice, request.email, request.action, request.keywords)
        )
        return f"confirmed: {request.action} {', '.join(request.keywords)}".rstrip()

    def _bounces(self, incoming: Incoming) -> str:
        """A bounce report: count each permanent failure of a subscriber; never answered."""
        counted = []
        for bounce in incoming.bounces:
            person = self.subscribers.get(address_key(bounce.recipient))
            if person is None or not bounce.permanent:
                continue
            record = self.store.deliveries.record_bounce(
                person.key,
                person.created,
                detail=bounce.detail(),
                max_bounces=self.settings.smtp.max_bounces,
            )
            counted.append(f"{person.email} ({record.bounces}, {record.state})")
        self.counts["bounces"] += len(counted)
        self.counts["ignored" if not counted else "acted"] += 1
        if not counted:
            return "bounce report naming no subscriber's permanent failure; not answered"
        return "bounce report counted for " + ", ".join(counted)

    # -- effects --------------------------------------------------------------

    def _from(self, incoming: Incoming) -> str:
        assert incoming.sender is not None
        return incoming.sender

    def _bouncing(self, address: str) -> bool:
        return self.store.deliveries.is_bouncing(address_key(address))

    def _ask(self, incoming: Incoming, action: str, keywords: tuple[str, ...]) -> str:
        """Save a pending request and mail its code to the From address (and only there)."""
        sender = self._from(incoming)
        code = new_code()
        if not self._reply(incoming, confirm_request(self.voice, sender, action, keywords, code)):
            return f"{action}: not asked (reply limit reached)"
        try:
            name = check_name(incoming.sender_name)
        except SubscriberError:
            name = ""
        self.store.inbox.save_pending(
            PendingRequest(
                key=address_key(sender),
                email=sender,
                action=action,
                code_hash=code_hash(code),
                created=self.now.isoformat(timespec="seconds"),
                expires=(self.now + timedelta(hours=self.config.confirm_hours)).isoformat(
                    timespec="seconds"
                ),
                keywords=keywords,
                name=name,
            )
        )
        return f"{action} {', '.join(keywords)}: confirmation asked".replace("  ", " ")

    def _save(self, request: PendingRequest) -> None:
        subscriber, _ = save_subscriber(
            self.settings.subscribers.dir,
            request.email,
            request.keywords,
            self.settings.keyword_names,
            name=request.name or None,
            source="email",
            confirmed=self.now.isoformat(timespec="seconds") if request.action == SUBSCRIBE else "",
            restart=self._bouncing(request.email),
        )
        self.subscribers[subscriber.key] = subscriber

    def _remove(self, address: str) -> None:
        remove_subscriber(self.settings.subscribers.dir, address)
        self.subscribers.pop(address_key(address), None)
        self.store.inbox.drop_pending(address_key(address))

    def _reply(self, incoming: Incoming, reply: Reply) -> bool:
        """Queue a reply in the store (sent after the batch is saved); False over the limit."""
        per_hour = self.config.max_replies_per_hour
        if not self.store.inbox.allow_reply(address_key(reply.recipient), self.now, per_hour):
            log.warning(
                "inbox: no reply to %s: %d replies in the last hour already",
                reply.recipient,
                per_hour,
            )
            return False
        message = build_reply(
            reply, sender=self.sender, answering=incoming.message_id, references=incoming.references
        )
        self.store.inbox.queue_reply(reply.recipient, message.as_bytes(), self.now)
        return True
