"""Who gets which papers (pure), and turning that into an email.

Selection is a pure function of (the subscriber's keywords, their last
delivered cycle, the stored papers), so subscribers with the same keywords and
the same history get the same `Digest` and can share one render: jinja2 and
premailer run once per distinct digest, and each person's parts (greeting,
address, unsubscribe links) are filled into the already-inlined HTML and text.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from email import quoprimime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formataddr, formatdate
from pathlib import Path
from urllib.parse import quote

import jinja2
import premailer

from .archive import order_key
from .config import keyword_slug
from .papers import StoredPaper
from .wire import END, stuffed

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
# Personal values go into the inlined HTML escaped the way lxml writes premailer's
# output (&, <, > and, for attributes, "), so a shared render filled in is byte for
# byte what rendering for that one person gives (a test checks it). Escaping " in
# text too keeps a value safe wherever a template puts it: lxml writes every
# attribute holding a slot in double quotes.
_HTML_ESCAPE = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})


def greeting(name: str) -> str:
    return f"Hello {name}," if name else "Hello,"


def _personal_parts(person: Personal) -> dict[str, str]:
    return {
        "greeting": greeting(person.name),
        "email": person.email,
        "unsubscribe_link": person.unsubscribe_link,
    }


def _values(person: Personal) -> dict[str, str]:
    """Each slot's stand-in → this person's value."""
    return {_SLOTS[name]: value for name, value in _personal_parts(person).items()}


@dataclass(frozen=True)
class Rendered:
    """One distinct digest, rendered and inlined once, with slots for the personal parts."""

    digest: Digest
    subject: str
    html: str
    text: str

    def personalise(self, person: Personal) -> tuple[str, str]:
        values = _values(person)
        html = _SLOT.sub(lambda m: values[m.group(0)].translate(_HTML_ESCAPE), self.html)
        text = _SLOT.sub(lambda m: values[m.group(0)], self.text)
        return html, text


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
        self.env.filters["slug"] = keyword_slug
        self.env.filters["wordwrap"] = self._wordwrap
        self._wrapped: dict[tuple[str, int, bool, str | None, bool], str] = {}
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

    def _context(
        self, digest: Digest, subscribed: Sequence[str], day: date, person: Personal | None
    ) -> dict[str, object]:
        return {
            "digest": digest,
            "sections": digest.sections,
            "subscribed": subscribed,
            "subject": self._subject(digest, day),
            "date": day.isoformat(),
            "css": self.css,
            "archive_url": self.archive_url,
            "unsubscribe_address": self.unsubscribe_address,
            **(_SLOTS if person is None else _personal_parts(person)),
        }

    def _html(self, context: Mapping[str, object]) -> str:
        """jinja2, then premailer: the expensive pass (about 15 ms for 40 papers)."""
        self.renders += 1
        return premailer.Premailer(
            self.html_template.render(context),
            allow_network=False,
            allow_loading_external_files=False,
            disable_validation=True,
            cssutils_logging_level=logging.CRITICAL,
        ).transform()

    def _wordwrap(
        self,
        text: str,
        width: int = 79,
        break_long_words: bool = True,
        wrapstring: str | None = None,
        break_on_hyphens: bool = True,
    ) -> str:
        """jinja's wordwrap, remembered for the renderer's life (one cycle): a paper's
        abstract is wrapped once, not once per digest it appears in (textwrap made
        the text part as slow as premailer)."""
        key = (text, width, break_long_words, wrapstring, break_on_hyphens)
        if key not in self._wrapped:
            self._wrapped[key] = jinja2.filters.do_wordwrap(self.env, *key)
        return self._wrapped[key]

    def render(
        self,
        digest: Digest,
        subscribed: Sequence[str],
        day: date,
        person: Personal | None = None,
    ) -> Rendered:
        """Render and inline; when the HTML is over the limit, drop the oldest papers
        and say how many more are in the archive.

        Without `person` the personal parts are slots, filled in per person later
        (`MailTemplate`); with it, they are rendered in like everything else (one
        person's digest: the preview, and the reference the shared path is tested against).
        """
        context = self._context(digest, subscribed, day, person)
        html = self._html(context)
        if len(html.encode()) > self.max_html_bytes - PERSONAL_MARGIN:
            digest, html = self._fit(digest, subscribed, day, person, len(html.encode()))
            context = self._context(digest, subscribed, day, person)
        return Rendered(digest, str(context["subject"]), html, self.text_template.render(context))

    def _fit(
        self,
        digest: Digest,
        subscribed: Sequence[str],
        day: date,
        person: Personal | None,
        full_size: int,
    ) -> tuple[Digest, str]:
        """The digest trimmed to the most (newest) papers whose HTML fits, and that HTML.

        Each try is a premailer pass, so the count to try next is interpolated
        between the largest that fits and the smallest that does not (the size grows
        about linearly with the papers): two to four tries where a binary search
        takes six for 60 papers. A step that does not halve the range is followed
        by a bisection, so odd sizes take at most twice the binary search's tries.
        """
        limit = self.max_html_bytes - PERSONAL_MARGIN
        total = sum(len(s.items) for s in digest.sections)

        def attempt(keep: int) -> tuple[Digest, str, int]:
            trimmed = trim_oldest(digest, keep)
            html = self._html(self._context(trimmed, subscribed, day, person))
            return trimmed, html, len(html.encode())

        fits = (0, *attempt(0))  # with no papers it fits (and if not, it is the best we have)
        over_keep, over_size = total, full_size
        bisect = False
        while over_keep - fits[0] > 1:
            low, _, _, low_size = fits
            if bisect:
                keep = (low + over_keep) // 2
            else:
                share = (limit - low_size) / max(over_size - low_size, 1)
                keep = min(max(low + int(share * (over_keep - low)), low + 1), over_keep - 1)
            width = over_keep - low
            trimmed, html, size = attempt(keep)
            if size <= limit:
                fits = (keep, trimmed, html, size)
            else:
                over_keep, over_size = keep, size
            bisect = not bisect and over_keep - fits[0] > width // 2
        keep, trimmed, html, _ = fits
        log.info(
            "digest: %d of %d papers fit in %d bytes of HTML", keep, total, self.max_html_bytes
        )
        return trimmed, html


def message_id(cycle: int, address: str, domain: str) -> str:
    """Unique per subscriber and cycle, and the same if the message is sent again."""
    person = hashlib.sha256(address.casefold().encode()).hexdigest()[:16]
    return f"<digest.{cycle}.{person}@{domain}>"


def unsubscribe_mailto(address: str, token: str) -> str:
    return f"mailto:{address}?subject={quote('unsubscribe ' + token)}"


# RFC 2045 allows 76 characters per quoted-printable line; pieces are encoded to 75
# so a soft line break ("=") still fits after the last line of each.
_QP_LINE = 75
_NEWLINE = re.compile(r"\r\n|\r")
_TEXT_BODY, _HTML_BODY = "ZZbodyTextZZ", "ZZbodyHtmlZZ"


# A piece the email package's quoted-printable leaves as it is: one line of at most
# _QP_LINE printable ASCII characters, no "=", not ending in a space. Most personal
# values (address, link, greeting) are; checking is twice as fast as encoding.
_PLAIN = re.compile(rf"[ -<>-~]{{0,{_QP_LINE - 1}}}[!-<>-~]")


def _qp(piece: str) -> bytes:
    """Quoted-printable of one piece of a body (UTF-8, CRLF), as the email package
    encodes a whole body, ending at a line end or with a soft line break: pieces
    encoded apart join into one valid body that decodes to their concatenation."""
    if not piece:
        return b""
    if _PLAIN.fullmatch(piece):
        return piece.encode("ascii") + b"=\r\n"
    encoded = quoprimime.body_encode(piece.encode("utf-8").decode("latin-1"), _QP_LINE, eol="\r\n")
    return (encoded if encoded.endswith("\r\n") else encoded + "=\r\n").encode("ascii")


def _pieces(body: str) -> tuple[bytes | str, ...]:
    """The body split at its slots: encoded and dot-stuffed shared pieces (bytes)
    between slot names (str). Line ends normalised as the email package does for a
    text body."""
    body = _NEWLINE.sub("\n", body)
    if not body.endswith("\n"):
        body += "\n"
    return tuple(
        part if n % 2 else stuffed(_qp(part))
        for n, part in enumerate(_SLOT_SPLIT.split(body))
        if part
    )


_SLOT_SPLIT = re.compile(f"({_SLOT.pattern})")


def _filled(pieces: tuple[bytes | str, ...], values: Mapping[str, bytes]) -> bytes:
    """A body from `_pieces` with each slot's encoded value."""
    return b"".join(p if isinstance(p, bytes) else values[p] for p in pieces)


def _folded(headers: Mapping[str, str]) -> dict[str, bytes]:
    """Header lines as the email package writes them (parsed, encoded, folded)."""
    head = EmailMessage(policy=SMTP)
    for name, value in headers.items():
        head[name] = value
    return {name: SMTP.fold_binary(name, value) for name, value in head.raw_items()}


def _line(name: str, value: str) -> bytes:
    """One header line for a value that needs no encoding (ASCII), not folded: the
    email package folds at 78 columns by making a long URL an encoded word, which
    mail clients do not read as a link (List-Unsubscribe). Like the email package,
    it refuses anything that could end the line; RFC 5322 allows 998 characters."""
    line = f"{name}: {value}\r\n"
    if any(c in value for c in "\r\n\0") or not line.isascii() or len(line) > 1000:
        raise ValueError(f"{name}: not a one-line ASCII header value: {value!r}")
    return line.encode("ascii")


@functools.lru_cache(maxsize=1)
def _date_line(second: int) -> bytes:
    """The Date header, made once for all the messages sent in the same second."""
    return _line("Date", formatdate(second, usegmt=True))


class MailTemplate:
    """One distinct digest as mail, built once for everyone who gets it.

    The MIME structure, the quoted-printable bodies and the shared headers (the
    expensive part: about 6 ms for a 100 kB digest) are made here, once, already
    in SMTP's wire form (wire.py: every piece starts at a line start, so each is
    dot-stuffed apart; header lines start with their name or, folded, with a
    space, so they need none); `message()` then writes one person's headers and
    encodes and stuffs the few bytes of their greeting, address and unsubscribe
    link between the shared pieces.
    Shared headers, and a name that needs encoding, go through the email
    package; the personal ones (and List-Unsubscribe) are plain ASCII and written
    directly (`_line`; the email package's header parser costs about 0.1 ms a
    header), refusing line breaks just as it does, so no value can inject a header.
    """

    def __init__(
        self,
        rendered: Rendered,
        *,
        sender: str,
        list_name: str,
        list_id: str,
        cycle: int,
        domain: str,
    ):
        self.rendered = rendered
        self.cycle = cycle
        self.domain = domain
        self.shared = _folded(
            {
                "From": sender,
                # RFC 2919: a phrase, quoted or encoded like a display name, then <id>.
                "List-Id": formataddr((list_name, list_id)),
                "Subject": rendered.subject,
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                "Auto-Submitted": "auto-generated",
            }
        )
        self.text = _pieces(rendered.text)
        self.html = _pieces(rendered.html)
        skeleton = EmailMessage(policy=SMTP)
        skeleton.set_content(_TEXT_BODY, cte="7bit")
        skeleton.add_alternative(_HTML_BODY, subtype="html", cte="7bit")
        for part in skeleton.iter_parts():
            part.replace_header("Content-Transfer-Encoding", "quoted-printable")
        before, rest = skeleton.as_bytes().split(_TEXT_BODY.encode() + b"\r\n")
        between, after = rest.split(_HTML_BODY.encode() + b"\r\n")
        self.skeleton = (stuffed(before), stuffed(between), stuffed(after) + END)

    def _headers(self, person: Personal) -> bytes:
        shared = self.shared
        if person.name.isascii():
            to = _line("To", formataddr((person.name, person.email)))
        else:
            to = _folded({"To": formataddr((person.name, person.email))})["To"]
        unsubscribe = f"<{person.unsubscribe_mailto}>"
        if person.unsubscribe_url:
            unsubscribe += f", <{person.unsubscribe_url}>"
        return b"".join(
            (
                shared["From"],
                to,
                shared["Subject"],
                _date_line(int(time.time())),
                _line("Message-ID", message_id(self.cycle, person.email, self.domain)),
                shared["List-Id"],
                _line("List-Unsubscribe", unsubscribe),
                shared["List-Unsubscribe-Post"] if person.unsubscribe_url else b"",
                shared["Auto-Submitted"],
            )
        )

    def message(self, person: Personal) -> bytes:
        """The whole multipart/alternative message for one person, in wire form
        (ending with SMTP's "." line)."""
        text, html = {}, {}
        for slot, value in _values(person).items():
            text[slot] = stuffed(_qp(value))
            escaped = value.translate(_HTML_ESCAPE)
            html[slot] = text[slot] if escaped == value else stuffed(_qp(escaped))
        before, between, after = self.skeleton
        return b"".join(
            (
                self._headers(person),
                before,
                _filled(self.text, text),
                between,
                _filled(self.html, html),
                after,
            )
        )
