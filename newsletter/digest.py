"""Who gets which papers (pure), and turning that into an email.

Selection is a pure function of (the subscriber's keywords, their last
delivered cycle, the stored papers), so subscribers with the same keywords and
the same history get the same `Digest` and can share one render: jinja2 and
premailer run once per distinct digest, and each person's parts (greeting,
address, unsubscribe links) are filled into the already-inlined HTML and text.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formataddr, formatdate
from pathlib import Path
from urllib.parse import quote

import jinja2
import premailer
from markupsafe import escape

from .archive import order_key
from .papers import StoredPaper

log = logging.getLogger(__name__)

HTML_TEMPLATE = "digest.html.j2"
TEXT_TEMPLATE = "digest.txt.j2"
STYLESHEET = "digest.css"
PERSONAL_MARGIN = 2_000  # bytes kept free under max_html_bytes for the personal parts


@dataclass(frozen=True)
class Item:
    stored: StoredPaper
    tags: tuple[str, ...]  # the paper's other keywords


@dataclass(frozen=True)
class Section:
    keyword: str
    items: tuple[Item, ...]
    more: int = 0  # papers left out to stay under the size limit


@dataclass(frozen=True)
class Digest:
    sections: tuple[Section, ...]
    welcome: bool = False

    @property
    def count(self) -> int:
        return sum(len(s.items) + s.more for s in self.sections)

    @property
    def keywords(self) -> tuple[str, ...]:
        return tuple(s.keyword for s in self.sections)

    def paper_ids(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return tuple((s.keyword, tuple(i.stored.paper.id for i in s.items)) for s in self.sections)


def select(
    keywords: Sequence[str],
    order: Sequence[str],
    pending: Iterable[StoredPaper],
) -> Digest:
    """Each paper once, under its first matching keyword in settings order; the
    subscriber's other matching keywords become tags; newest first."""
    chosen = [k for k in order if k in keywords]
    placed: dict[str, list[Item]] = {k: [] for k in chosen}
    seen: set[str] = set()
    for stored in pending:
        if stored.paper.id in seen:
            continue
        home = next((k for k in chosen if k in stored.keywords), None)
        if home is None:
            continue
        seen.add(stored.paper.id)
        tags = tuple(k for k in order if k in stored.keywords and k != home)
        placed[home].append(Item(stored, tags))
    return Digest(
        tuple(
            Section(k, tuple(sorted(items, key=lambda i: order_key(i.stored.paper), reverse=True)))
            for k, items in placed.items()
            if items
        )
    )


def select_new(
    keywords: Sequence[str], order: Sequence[str], papers: Iterable[StoredPaper], after_cycle: int
) -> Digest:
    """The papers first seen after the subscriber's last delivered cycle, on their keywords."""
    return select(keywords, order, (p for p in papers if p.first_seen > after_cycle))


def select_welcome(
    keywords: Sequence[str], order: Sequence[str], newest: Mapping[str, Sequence[StoredPaper]]
) -> Digest:
    """A new subscriber's first issue: the latest papers of their keywords, so nobody waits."""
    digest = select(keywords, order, (p for k in keywords for p in newest.get(k, ())))
    return replace(digest, welcome=True)


def trim_oldest(digest: Digest, keep: int) -> Digest:
    """Keep the `keep` newest papers; each section counts what it lost in `more`."""
    everything = sorted(
        (i.stored.paper for s in digest.sections for i in s.items), key=order_key, reverse=True
    )
    kept = {p.id for p in everything[:keep]}
    sections = []
    for s in digest.sections:
        items = tuple(i for i in s.items if i.stored.paper.id in kept)
        sections.append(Section(s.keyword, items, s.more + len(s.items) - len(items)))
    return Digest(tuple(sections), digest.welcome)


@dataclass(frozen=True)
class Personal:
    """The parts of a digest that differ between people who get the same papers."""

    email: str
    name: str
    unsubscribe_mailto: str
    unsubscribe_url: str  # https one-click page, or "" when not configured

    @property
    def unsubscribe_link(self) -> str:
        return self.unsubscribe_url or self.unsubscribe_mailto


# Stand-ins rendered into the shared HTML/text and replaced per person. Plain
# alphanumerics, so neither jinja's escaping nor premailer can alter them.
_SLOTS = {
    "greeting": "ZZpersonalGreetingZZ",
    "email": "ZZpersonalEmailZZ",
    "unsubscribe_link": "ZZpersonalUnsubscribeZZ",
}
_SLOT = re.compile("|".join(_SLOTS.values()))


def greeting(name: str) -> str:
    return f"Hello {name}," if name else "Hello,"


@dataclass(frozen=True)
class Rendered:
    """One distinct digest, rendered and inlined once, with slots for the personal parts."""

    digest: Digest
    subject: str
    html: str
    text: str

    def personalise(self, person: Personal) -> tuple[str, str]:
        values = {
            _SLOTS["greeting"]: greeting(person.name),
            _SLOTS["email"]: person.email,
            _SLOTS["unsubscribe_link"]: person.unsubscribe_link,
        }
        html = _SLOT.sub(lambda m: str(escape(values[m.group(0)])), self.html)
        text = _SLOT.sub(lambda m: values[m.group(0)], self.text)
        return html, text


def _slug(keyword: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", keyword.casefold()).strip("-") or "keyword"


def _authors(names: Sequence[str]) -> str:
    return ", ".join(names[:3]) + (", et al." if len(names) > 3 else "")


class Renderer:
    """jinja2 (autoescape on) + premailer (network off), loaded once per cycle."""

    def __init__(
        self,
        templates: Path,
        subject: str,
        welcome_subject: str,
        max_html_bytes: int,
        archive_url: str = "",
        unsubscribe_address: str = "",
    ):
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(templates),
            autoescape=jinja2.select_autoescape(("html", "html.j2")),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.env.filters["authors"] = _authors
        self.env.filters["slug"] = _slug
        self.css = (templates / STYLESHEET).read_text(encoding="utf-8")
        self.html_template = self.env.get_template(HTML_TEMPLATE)
        self.text_template = self.env.get_template(TEXT_TEMPLATE)
        self.subject = subject
        self.welcome_subject = welcome_subject
        self.max_html_bytes = max_html_bytes
        self.archive_url = archive_url
        self.unsubscribe_address = unsubscribe_address
        self.renders = 0

    def _subject(self, digest: Digest, day: date) -> str:
        template = self.welcome_subject if digest.welcome else self.subject
        return template.format(
            count=digest.count, keywords=", ".join(digest.keywords), date=day.isoformat()
        )

    def _render_once(self, digest: Digest, subscribed: Sequence[str], day: date) -> Rendered:
        self.renders += 1
        subject = self._subject(digest, day)
        context = {
            "digest": digest,
            "sections": digest.sections,
            "subscribed": subscribed,
            "subject": subject,
            "date": day.isoformat(),
            "css": self.css,
            "archive_url": self.archive_url,
            "unsubscribe_address": self.unsubscribe_address,
            **_SLOTS,
        }
        html = self.html_template.render(context)
        inlined = premailer.Premailer(
            html,
            allow_network=False,
            allow_loading_external_files=False,
            disable_validation=True,
            cssutils_logging_level=logging.CRITICAL,
        ).transform()
        return Rendered(digest, subject, inlined, self.text_template.render(context))

    def render(self, digest: Digest, subscribed: Sequence[str], day: date) -> Rendered:
        """Render and inline; when the HTML is over the limit, drop the oldest papers
        (binary search on how many to keep) and say how many more are in the archive."""
        limit = self.max_html_bytes - PERSONAL_MARGIN
        rendered = self._render_once(digest, subscribed, day)
        if len(rendered.html.encode()) <= limit:
            return rendered
        total = sum(len(s.items) for s in digest.sections)
        low, high = 0, total - 1  # `low` always fits (an empty digest does), `high` may
        best = self._render_once(trim_oldest(digest, 0), subscribed, day)
        while low < high:
            middle = (low + high + 1) // 2
            attempt = self._render_once(trim_oldest(digest, middle), subscribed, day)
            if len(attempt.html.encode()) <= limit:
                low, best = middle, attempt
            else:
                high = middle - 1
        log.info("digest: %d of %d papers fit in %d bytes of HTML", low, total, self.max_html_bytes)
        return best


def message_id(cycle: int, address: str, domain: str) -> str:
    """Unique per subscriber and cycle, and the same if the message is sent again."""
    person = hashlib.sha256(address.casefold().encode()).hexdigest()[:16]
    return f"<digest.{cycle}.{person}@{domain}>"


def unsubscribe_mailto(address: str, token: str) -> str:
    return f"mailto:{address}?subject={quote('unsubscribe ' + token)}"


def build_message(
    rendered: Rendered,
    person: Personal,
    *,
    sender: str,
    list_id: str,
    cycle: int,
    domain: str,
) -> EmailMessage:
    """The multipart/alternative message for one person. Headers go through the
    email package, which refuses line breaks: no value can inject a header."""
    html, text = rendered.personalise(person)
    message = EmailMessage(policy=SMTP)
    message["From"] = sender
    message["To"] = formataddr((person.name, person.email))
    message["Subject"] = rendered.subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = message_id(cycle, person.email, domain)
    message["List-Id"] = f"Daily Papers <{list_id}>"
    unsubscribe = [f"<{person.unsubscribe_mailto}>"]
    if person.unsubscribe_url:
        unsubscribe.append(f"<{person.unsubscribe_url}>")
    message["List-Unsubscribe"] = ", ".join(unsubscribe)
    if person.unsubscribe_url:
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text, cte="quoted-printable")
    message.add_alternative(html, subtype="html", cte="quoted-printable")
    return message
