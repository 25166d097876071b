"""One inbox poll of many mails, measured: the cost must follow the mails, not their square.

Every message's handling looks things up by key (was it handled before, how
many replies its sender had this hour, which request a code belongs to); a
lookup that scans a table makes a poll quadratic in its mails. So the same
poll is timed at two sizes, ten times apart, on a fresh store and Maildir
each, and the ratio of the two times is what to read (about ten is linear).

The mail is what an MTA delivers (tests/mails.py) from distinct senders, in a
realistic mix: subscribe requests, help, unsubscribe from people who are not
subscribed, bounce reports naming subscribers, and replies carrying a wrong
confirmation code. The poll is `poll_inbox` itself, in this process, with the
replies sent to an SMTP sink.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO / "tests"))

from mails import INBOX, dsn, mail, make_maildir  # noqa: E402

from newsletter.config import load_settings  # noqa: E402
from newsletter.inbox.poll import InboxReport, poll_inbox  # noqa: E402
from newsletter.store import Store  # noqa: E402
from newsletter.subscribers import Subscriber, file_name, render_subscriber  # noqa: E402
from newsletter.tokens import load_or_create_secret  # noqa: E402

KEYWORDS = ("Hallucination", "MLLM", "Reasoning", "Reward Model")
SUBSCRIBERS = 1_000  # in the store before the poll, at both sizes

SETTINGS = """\
[arxiv]
api_url = "http://127.0.0.1:9/api/query"

{keywords}
[store]
path = "state/newsletter.json"

[archive]
path = "archive/README.md"

[subscribers]
dir = "subscribers"

[digest]
from = "Daily Papers <papers@example.org>"
templates = "{templates}"

[smtp]
host = "127.0.0.1"
port = {port}
timeout_seconds = 30
retries = 1
retry_delay_seconds = 0.1

[web]
secret_file = "state/secret.key"

[inbox]
address = "{inbox}"
maildir = "Maildir"
# Every reply is built and sent, as before the caps on replies existed: the poll's
# cost per mail is what is measured, not the caps.
max_confirmations_per_hour = 1000000
max_confirmations_per_domain_per_hour = 1000000
"""


class TableLike(Protocol):
    def add(self, name: str, value: str) -> None: ...


def subscriber_email(n: int) -> str:
    return f"member{n:05d}@dept{n % 23}.example.edu"


def wrong_code(i: int) -> str:
    """26 base32 characters that no request was ever sent: a code from nowhere."""
    return base64.b32encode(hashlib.sha256(b"%d" % i).digest()).decode().lower()[:26]


class Mix:
    """The mail, per 20 messages: 8 subscribe, 3 help, 3 unsubscribe from people who are
    not subscribed, 3 bounce reports naming a subscriber, 3 replies with a wrong code;
    every person writes once. tests/mails.py writes one message of each kind, with
    placeholders where the sender, the Message-ID and the code go; each mail is that
    message with its own values (the email package would take longer to build 10,000
    than the poll takes to read them)."""

    SENDER, ADDRESS, ID, CODE = "Sender Placeholder", "sender@placeholder.invalid", "ID0", "C" * 26

    def __init__(self, subscribers: int):
        self.subscribers = subscribers
        sender = f"{self.SENDER} <{self.ADDRESS}>"
        message_id = f"<{self.ID}@client.example.net>"

        def template(subject: str, body: str = "") -> bytes:
            return mail(sender, subject, body, message_id=message_id)

        self.subscribe = {
            n: template(f"subscribe {KEYWORDS[n]}, {KEYWORDS[(n + 1) % 4]}") for n in range(4)
        }
        self.help = template("help", "How does this list work?")
        self.unsubscribe = template("unsubscribe", "Please take me off this list.")
        self.wrong = template(f"Re: [Daily Papers] confirm {self.CODE.lower()}", "Yes, please.")

    def message(self, i: int) -> bytes:
        kind = i % 20
        if 14 <= kind < 17:
            return dsn(subscriber_email(i % self.subscribers))
        if kind < 8:
            data = self.subscribe[i % 4]
        elif kind < 11:
            data = self.help
        elif kind < 14:
            data = self.unsubscribe
        else:
            data = self.wrong.replace(self.CODE.lower().encode(), wrong_code(i).encode())
        return (
            data.replace(self.SENDER.encode(), f"Person {i}".encode())
            .replace(self.ADDRESS.encode(), f"person{i:05d}@mail{i % 97}.example.net".encode())
            .replace(self.ID.encode(), f"bench{i}".encode())
        )


def deliver_all(maildir: Path, messages: Iterable[bytes]) -> None:
    """As an MTA delivers: each message written in tmp/, then renamed into new/ under a
    unique name that starts with the time (mailbox.Maildir.add does the same, plus an
    fsync per message that would make building 10,000 take longer than reading them)."""
    make_maildir(maildir)
    stamp = int(time.time())
    for n, data in enumerate(messages):
        name = f"{stamp}.M{n:06d}P{os.getpid()}.bench"
        (maildir / "tmp" / name).write_bytes(data)
        os.rename(maildir / "tmp" / name, maildir / "new" / name)


def prepare(root: Path, mails: int, smtp_port: int) -> Path:
    """A folder with settings, subscriber files, their delivery records and a Maildir
    holding `mails` new messages; returns the settings file."""
    root.mkdir(parents=True)
    (root / "archive").mkdir()
    settings = root / "settings.toml"
    settings.write_text(
        SETTINGS.format(
            keywords="".join(f'[[keywords]]\nname = "{k}"\n\n' for k in KEYWORDS),
            templates=REPO / "templates",
            port=smtp_port,
            inbox=INBOX,
        )
    )
    folder = root / "subscribers"
    folder.mkdir()
    people = [
        Subscriber(
            email=subscriber_email(n),
            keywords=(KEYWORDS[n % 4],),
            source="bench",
            created="2025-01-01T09:00:00+00:00",
        )
        for n in range(SUBSCRIBERS)
    ]
    for person in people:
        (folder / file_name(person.email)).write_text(render_subscriber(person))
    with Store(root / "state" / "newsletter.json") as store, store.batch():
        for person in people:
            store.deliveries.record_sent(person.key, person.created, 1)
        store.deliveries.flush()
    load_or_create_secret(root / "state" / "secret.key")  # what that first cycle made
    mix = Mix(SUBSCRIBERS)
    deliver_all(root / "Maildir", (mix.message(i) for i in range(mails)))
    return settings


@dataclass(frozen=True)
class Poll:
    mails: int
    seconds: float
    report: InboxReport


def timed_poll(root: Path, mails: int, smtp_port: int) -> Poll:
    settings = load_settings(prepare(root, mails, smtp_port))
    with Store(settings.store.path) as store:
        started = time.perf_counter()
        report = poll_inbox(settings, store)
        seconds = time.perf_counter() - started
    if not report.ok or report.read != mails:
        raise RuntimeError(f"the poll of {mails} mails went wrong: {report.summary()}")
    return Poll(mails, seconds, report)


@dataclass(frozen=True)
class InboxResult:
    small: Poll
    large: Poll

    @property
    def ratio(self) -> float:
        return self.large.seconds / self.small.seconds


def measure_inbox(root: Path, mails: int, smtp_port: int, table: TableLike) -> InboxResult:
    """One poll of mails // 10 messages, then one of `mails`, each on a fresh store."""
    counter = itertools.count()
    polls = []
    for size in (mails // 10, mails):
        polls.append(timed_poll(root / f"inbox-{size}-{next(counter)}", size, smtp_port))
    small, large = polls
    result = InboxResult(small, large)
    table.add(
        f"inbox: {large.mails:,} mails in one poll",
        f"{large.seconds:.2f} s ({small.mails:,}: {small.seconds:.2f} s; ratio {result.ratio:.1f})",
    )
    table.add("  what it did", large.report.summary())
    return result
