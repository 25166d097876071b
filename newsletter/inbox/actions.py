"""Acting on one message from the mailbox: a command, a bounce report, or nothing.

Safety rules, each enforced here:
- Nobody can change somebody else's subscription: every change asked for from
  a From address (which anyone can forge) waits for a reply carrying a code
  that was mailed to that address. Only the unsubscribe token of a digest's
  List-Unsubscribe mailto acts at once: it proves the mail was theirs.
- Replies go to the From address only, never Reply-To: otherwise a forger
  could have the confirmation code sent to themselves. They carry no text of
  the message they answer (replies.py).
- Nobody can turn the inbox into a mail cannon: at most `max_replies_per_hour`
  replies to one mailbox (+tags and Gmail's dots folded), and replies to mail
  that proves nothing about its sender are capped per domain and in all; over
  a cap, the request is dropped without a reply and counted.
- A bounce report counts only when it quotes the signed Message-ID of a digest
  we sent to that subscriber, once per digest (tokens.is_digest_to).
- Auto-replies, bounces, list mail and mail from daemons are never answered,
  and every reply says `Auto-Submitted: auto-replied`, so two robots cannot
  mail each other forever.
- A message we fail on is tried again at the next polls, MAX_TRIES in all,
  then set aside; it never holds up the others.

One piece past 400 lines on purpose: every command ends in the same few
effects (a reply under the caps, a pending request, a subscriber file), and
the rules above are kept in one place only if those effects are.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import logging
import secrets
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from email.utils import formataddr

from ..addresses import address_key, mailbox_key
from ..cadence import Cadence, parse_cadence
from ..config import Settings
from ..files import LostLock
from ..store import BouncePolicy, PendingRequest, Store, StoreError
from ..subscribers import (
    Subscriber,
    SubscriberError,
    canonical_keywords,
    check_name,
    load_subscribers,
    remove_subscriber,
    save_subscriber,
)
from ..tokens import Tokens, check_secret, is_digest_to, legacy_cutoff
from .commands import (
    CADENCE,
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
    already_cadence_reply,
    already_reply,
    build_reply,
    confirm_request,
    done_reply,
    help_reply,
    keywords_reply,
    not_subscribed_reply,
    problem_reply,
)
from .sources import MailItem, MailSourceError

log = logging.getLogger(__name__)

# What the mailbox does with a message once the inbox has taken it.
DONE, SET_ASIDE, RETRY = "done", "set aside", "retry"
MAX_TRIES = 3  # polls that may fail on one message before it is set aside
# Failures of the machine, not of the message: the message waits for the next poll,
# uncounted, and the others are still tried.
ENVIRONMENT_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EROFS,
    errno.EIO,
    errno.EACCES,
    errno.EPERM,
    errno.ENOMEM,
    errno.EMFILE,
    errno.ENFILE,
}


def new_code() -> str:
    return base64.b32encode(secrets.token_bytes(20)).decode().lower()[:CODE_LENGTH]


def code_hash(code: str) -> str:
    return hashlib.sha256(code.lower().encode()).hexdigest()


def _describe(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        return f"{err.filename}: {err.strerror}" if err.filename else err.strerror
    return f"{type(err).__name__}: {err}"[:300]


class Inbox:
    """One poll's state: settings, the open store, the token secret, who is subscribed."""

    def __init__(
        self, settings: Settings, store: Store, now: datetime, secret: bytes | None = None
    ):
        assert settings.inbox is not None
        self.settings = settings
        self.config = settings.inbox
        self.store = store
        self.now = now
        if secret is None:
            secret = check_secret(settings.web.secret_file, store.links_mailed())
        self.secret = secret
        self.tokens = Tokens(secret, legacy_cutoff(store.tokens_bound_since, now))
        self.policy = BouncePolicy(settings.smtp.max_bounces, settings.smtp.bounce_days)
        roster = load_subscribers(settings.subscribers.dir, settings.keyword_names)
        self.subscribers: dict[str, Subscriber] = {s.key: s for s in roster.subscribers}
        name = settings.digest.list_name
        self.voice = Voice(
            name, self.config.address, settings.keyword_names, self.config.confirm_hours
        )
        self.sender = formataddr((name, self.config.address))
        self.own = {address_key(self.config.address), address_key(settings.digest.sender_address)}
        self.counts: Counter[str] = Counter()
        self.problems: list[str] = []  # messages tried again next poll, one line each

    # -- one message ----------------------------------------------------------

    def take(self, item: MailItem) -> str:
        """Parse, act, and remember the message (in the caller's batch). Returns what the
        mailbox should do with it: DONE, SET_ASIDE, or RETRY (leave it for the next poll)."""
        self.counts["read"] += 1
        try:
            incoming = parse_incoming(item.data)
        except Exception:  # parse_incoming is meant never to raise; if it does, it will again
            log.exception("inbox: %s: unreadable; set aside", item.ref)
            self.counts["set_aside"] += 1
            self.store.inbox.mark_processed(message_key("", item.data), self.now)
            return SET_ASIDE
        who = incoming.sender or "(no usable sender)"
        if self.store.inbox.is_processed(incoming.key):
            self.counts["ignored"] += 1
            log.info("inbox: %s from %s: already handled", item.ref, who)
            return DONE
        if item.truncated:
            log.warning("inbox: %s from %s: over 1 MiB, only its start was read", item.ref, who)
        try:
            outcome = self.handle(incoming)
        except (StoreError, MailSourceError, LostLock):
            raise  # the store or the mailbox: stop the poll, the message is tried again
        except OSError as err:
            if err.errno not in ENVIRONMENT_ERRNOS:
                return self._failed(item, incoming, err)
            # The disk or the permissions, not this message: it waits, the others are tried.
            problem = f"{item.ref}: {_describe(err)}; tried again next poll"
            log.error("inbox: %s from %s: %s", item.ref, who, problem)
            self.problems.append(problem)
            return RETRY
        except Exception as err:  # a message we failed on must not stop the others
            return self._failed(item, incoming, err)
        if incoming.key in self.store.inbox.failures:
            self.store.inbox.forget_failure(incoming.key)
        self.store.inbox.mark_processed(incoming.key, self.now)
        log.info("inbox: %s from %s: %s", item.ref, who, outcome)
        return DONE

    def _failed(self, item: MailItem, incoming: Incoming, err: Exception) -> str:
        """This message failed: tried again at the next poll, and set aside (marked, and
        logged with its Message-ID and why) once it has failed MAX_TRIES times."""
        who = incoming.sender or "(no usable sender)"
        named = f"{item.ref} (Message-ID {incoming.message_id or 'none'}) from {who}"
        why = _describe(err)
        tries = self.store.inbox.count_failure(incoming.key, why, self.now)
        if tries < MAX_TRIES:
            log.warning(
                "inbox: %s: failed (try %d of %d): %s; tried again next poll",
                named,
                tries,
                MAX_TRIES,
                why,
                exc_info=not isinstance(err, OSError),
            )
            self.problems.append(f"{item.ref}: {why}; tried again next poll")
            return RETRY
        log.error("inbox: %s: set aside after %d tries: %s", named, tries, why)
        self.store.inbox.forget_failure(incoming.key)
        self.store.inbox.mark_processed(incoming.key, self.now)
        self.counts["set_aside"] += 1
        return SET_ASIDE

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
        back = self._back(self._from(incoming)) if command.understood else ""
        handlers: dict[str, Callable[[Incoming, Command], str]] = {
            SUBSCRIBE: self._subscribe,
            KEYWORDS: self._keywords,
            CADENCE: self._cadence,
            UNSUBSCRIBE: self._unsubscribe,
            TOKEN_UNSUBSCRIBE: self._token_unsubscribe,
            CONFIRM: self._confirm,
            HELP: self._help,
        }
        return handlers[command.verb](incoming, command) + back

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
            raise SubscriberError("no keywords named")
        return canonical_keywords(command.keywords, self.settings.keyword_names)

    def _subscribe(self, incoming: Incoming, command: Command) -> str:
        sender = self._from(incoming)
        try:
            keywords = self._choose(command)
        except SubscriberError as err:
            self._reply(incoming, keywords_reply(self.voice, sender))
            return f"refused: {err}"
        current = self.subscribers.get(address_key(sender))
        if current is not None and current.keywords == keywords:
            self._reply(incoming, already_reply(self.voice, sender, keywords))
            return "already subscribed"
        action = SUBSCRIBE if current is None else KEYWORDS
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
            self._reply(incoming, keywords_reply(self.voice, sender))
            return f"refused: {err}"
        if keywords == current.keywords:
            self._reply(incoming, already_reply(self.voice, sender, keywords))
            return "keywords unchanged"
        return self._ask(incoming, KEYWORDS, keywords)

    def _cadence(self, incoming: Incoming, command: Command) -> str:
        """`daily`, `weekly`, `weekly friday`: the sender's own cadence, confirmed by a code
        as a keyword change is."""
        sender = self._from(incoming)
        current = self.subscribers.get(address_key(sender))
        if current is None:
            self._reply(incoming, not_subscribed_reply(self.voice, sender))
            return "cadence asked by someone not subscribed"
        cadence = parse_cadence(command.cadence, command.weekday)  # the grammar's days only
        if cadence == current.cadence:
            self._reply(incoming, already_cadence_reply(self.voice, sender, cadence.describe()))
            return f"already {cadence.describe()}"
        return self._ask(incoming, CADENCE, (), cadence)

    def _unsubscribe(self, incoming: Incoming, command: Command) -> str:
        sender = self._from(incoming)
        if address_key(sender) not in self.subscribers:
            self.store.inbox.drop_pending(address_key(sender))
            self._reply(incoming, not_subscribed_reply(self.voice, sender))
            return "unsubscribe asked by someone not subscribed"
        return self._ask(incoming, UNSUBSCRIBE, ())

    def _token_unsubscribe(self, incoming: Incoming, command: Command) -> str:
        """The List-Unsubscribe mailto: the token proves the digest was theirs, so at once.
        A token of an earlier subscription of the address proves nothing now."""
        person = self.tokens.find(command.secret, self.subscribers.values())
        if person is not None:
            self._remove(person.email)
            self._reply(incoming, done_reply(self.voice, person.email, UNSUBSCRIBE, ()), True)
            return f"{person.email} unsubscribed by token"
        # Altered, old, or somebody else's: worth no more than a plain "unsubscribe".
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
        # The file first, the store after: if the file cannot be written, the message is
        # tried again at the next poll with the request still pending.
        if request.action == UNSUBSCRIBE:
            self._remove(request.email)
        elif request.action == CADENCE and request.key not in self.subscribers:
            # Unsubscribed since the request: there is nothing to change.
            self.store.inbox.drop_pending(request.key)
            self._reply(incoming, not_subscribed_reply(self.voice, request.email), True)
            return "confirmed, but not subscribed any more"
        else:
            try:
                self._save(request)
            except SubscriberError as err:  # a keyword was removed from settings meanwhile
                self.store.inbox.drop_pending(request.key)
                self._reply(incoming, keywords_reply(self.voice, request.email), True)
                return f"confirmed, but refused: {err}"
        self.store.inbox.drop_pending(request.key)
        cadence = _requested_cadence(request)
        described = cadence.describe() if cadence else ""
        done = done_reply(self.voice, request.email, request.action, request.keywords, described)
        self._reply(incoming, done, True)
        what = described or ", ".join(request.keywords)
        return f"confirmed: {request.action} {what}".rstrip()

    def _bounces(self, incoming: Incoming) -> str:
        """A bounce report: counted for the subscriber whose digest it returns, once per
        digest, and only when it quotes that digest's signed Message-ID; never answered."""
        failed = [b for b in incoming.bounces if b.permanent]
        if not failed:
            self.counts["ignored"] += 1
            return "bounce report naming no permanent failure; not answered"
        named = [b.recipient for b in failed]
        counted = []
        for address in dict.fromkeys(address_key(a) for a in named):
            person = self.subscribers.get(address)
            if person is None:
                continue
            cycle = self._answered_digest(person, incoming.returned.message_ids)
            if cycle is None:
                continue
            bounce = next((b for b in failed if address_key(b.recipient) == address), failed[0])
            was_bouncing = self.store.deliveries.is_bouncing(person.key)
            record = self.store.deliveries.record_bounce(
                person.key, person.created, cycle=cycle, detail=bounce.detail(), policy=self.policy
            )
            if record is None:
                counted.append(f"{person.email} (cycle {cycle}: counted already)")
                continue
            self.counts["bounces"] += 1
            counted.append(f"{person.email} (cycle {cycle}: {record.bounces}, {record.state})")
            if record.state == "bouncing" and not was_bouncing:
                log.warning(
                    "inbox: %s is now marked bouncing (%d bounce reports within %g days); "
                    "no digests until they write to the list",
                    person.email,
                    record.bounces,
                    self.policy.days,
                )
        if not counted:
            self.counts["ignored"] += 1
            return (
                "bounce report not counted: it quotes no digest of ours to a subscriber it "
                "names (forged, or the original was not returned); not answered"
            )
        self.counts["acted"] += 1
        return "bounce report for " + ", ".join(counted)

    def _answered_digest(self, person: Subscriber, message_ids: tuple[str, ...]) -> int | None:
        """The cycle of our digest to this subscription that a report returns, or None."""
        domain = self.settings.digest.domain
        for message_id in message_ids:
            cycle = is_digest_to(self.secret, message_id, person.email, person.created, domain)
            if cycle is not None:
                return cycle
        return None

    # -- effects --------------------------------------------------------------

    def _from(self, incoming: Incoming) -> str:
        assert incoming.sender is not None
        return incoming.sender

    def _back(self, address: str) -> str:
        """A bouncing subscriber who writes to the list is tried again: mail from them
        is worth as much as the bounce reports (and a forged one costs little: their
        digest bounces again, and after max_bounces they are bouncing again)."""
        key = address_key(address)
        if key not in self.subscribers or self.store.deliveries.reactivate(key) is None:
            return ""
        log.info("inbox: %s was bouncing and wrote to the list: digests are tried again", address)
        return "; was bouncing, tried again"

    def _ask(
        self,
        incoming: Incoming,
        action: str,
        keywords: tuple[str, ...],
        cadence: Cadence | None = None,
    ) -> str:
        """Save a pending request and mail its code to the From address (and only there)."""
        sender = self._from(incoming)
        code = new_code()
        described = cadence.describe() if cadence else ""
        asked = confirm_request(self.voice, sender, action, keywords, code, described)
        if not self._reply(incoming, asked):
            return f"{action}: not asked (over a reply limit)"
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
                cadence=cadence.every if cadence else "",
                weekday=cadence.weekday if cadence else "",
            )
        )
        what = described or ", ".join(keywords)
        return f"{action} {what}: confirmation asked".replace("  ", " ")

    def _save(self, request: PendingRequest) -> None:
        subscriber, _ = save_subscriber(
            self.settings.subscribers.dir,
            request.email,
            request.keywords if request.action != CADENCE else None,
            self.settings.keyword_names,
            name=request.name or None,
            source="email",
            confirmed=self.now.isoformat(timespec="seconds") if request.action == SUBSCRIBE else "",
            restart=self.store.deliveries.is_bouncing(address_key(request.email)),
            cadence=_requested_cadence(request),
        )
        self.subscribers[subscriber.key] = subscriber

    def _remove(self, address: str) -> None:
        remove_subscriber(self.settings.subscribers.dir, address)
        self.subscribers.pop(address_key(address), None)
        self.store.inbox.drop_pending(address_key(address))

    def _limits(self, recipient: str, proven: bool) -> list[tuple[str, int]]:
        """(key, replies per hour) that a reply to `recipient` counts against: its mailbox;
        and unless the mail it answers proved its sender, its domain and all replies."""
        config = self.config
        mailbox = mailbox_key(recipient)
        limits = [(mailbox, config.max_replies_per_hour)]
        if not proven:
            domain = "@" + mailbox.rpartition("@")[2]
            limits.append((domain, config.max_confirmations_per_domain_per_hour))
            limits.append(("*", config.max_confirmations_per_hour))
        return limits

    def _reply(self, incoming: Incoming, reply: Reply, proven: bool = False) -> bool:
        """Queue a reply in the store (sent after the batch is saved); False, and the
        request dropped and counted, when it is over a limit. `proven`: the mail carried
        a confirmation code or an unsubscribe token, so it came from the recipient."""
        over = self.store.inbox.over_limit(self._limits(reply.recipient, proven), self.now)
        if over:
            self.store.inbox.count_drop(self.now)
            self.counts["dropped"] += 1
            which = {"*": "replies in all"}.get(over, f"replies to {over}")
            log.info("inbox: no reply to %s: the hour's %s have been sent", reply.recipient, which)
            return False
        message = build_reply(
            reply, sender=self.sender, answering=incoming.message_id, references=incoming.references
        )
        self.store.inbox.queue_reply(reply.recipient, message.as_bytes(), self.now)
        return True


def _requested_cadence(request: PendingRequest) -> Cadence | None:
    """The cadence a confirmed request sets; None: the subscriber's stays (other requests)."""
    if request.action != CADENCE:
        return None
    return parse_cadence(request.cadence, request.weekday)
