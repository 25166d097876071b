"""A digest as HTML and text: jinja2 with autoescape, then premailer, once per distinct digest.

Each person's parts (greeting, address, unsubscribe link) are spots in the
shared render, and each reader's values go into them by position, so
subscribers who get the same papers share one render. The spots are found
once, right after the render that made them (`Marks`), never by searching text
that holds paper text for a name that paper text could also hold.
"""

from __future__ import annotations

import importlib.resources
import logging
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import quote, urlsplit

import jinja2
import premailer

from ..archive.markdown import heading_anchor
from ..errors import NewsletterError
from ..papers import Paper, keyword_slug
from ..templates import HTML_TEMPLATE, STYLESHEET, TEXT_TEMPLATE
from .select import Digest, trim_fair

log = logging.getLogger(__name__)

PERSONAL_MARGIN = 2_000  # bytes kept free under max_html_bytes for the personal parts


@dataclass(frozen=True)
class Personal:
    """The parts of a digest that differ between people who get the same papers."""

    email: str
    name: str
    unsubscribe_mailto: str
    unsubscribe_url: str  # https one-click page, or "" when not configured
    message_id: str  # signed: a bounce report must quote it (tokens.digest_message_id)

    @property
    def unsubscribe_link(self) -> str:
        return self.unsubscribe_url or self.unsubscribe_mailto


# The template variables that differ between readers of the same digest.
PERSONAL = ("greeting", "email", "unsubscribe_link")
# Personal values go into the inlined HTML escaped the way lxml writes premailer's
# output (&, <, > and, for attributes, "), so a shared render filled in is byte for
# byte what rendering for that one person gives (a test checks it). Escaping " in
# text too keeps a value safe wherever a template puts it: lxml writes every
# attribute holding a spot in double quotes.
HTML_ESCAPE = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})


class RenderError(NewsletterError):
    """A digest template cannot be used; str() says which variable and why."""


def greeting(name: str) -> str:
    return f"Hello {name}," if name else "Hello,"


def personal_parts(person: Personal) -> dict[str, str]:
    """Each personal template variable's value for this person."""
    return {
        "greeting": greeting(person.name),
        "email": person.email,
        "unsubscribe_link": person.unsubscribe_link,
    }


@dataclass(frozen=True)
class Body:
    """A rendered body cut at the readers' spots: pieces[0], slots[0], pieces[1], ...

    The cut is made once, by `Marks.cut`, right after the render; from then on
    a reader's values go in by position (`fill`, and `MailTemplate` in mime.py),
    so no text inside a piece, paper text included, is ever read as a spot.
    """

    pieces: tuple[str, ...]
    slots: tuple[str, ...] = ()  # names from PERSONAL, one between each two pieces

    def fill(self, values: Mapping[str, str]) -> str:
        parts = [self.pieces[0]]
        for slot, piece in zip(self.slots, self.pieces[1:], strict=True):
            parts += (values[slot], piece)
        return "".join(parts)

    def shared(self) -> str:
        """The text every reader shares, with the spots left empty."""
        return "".join(self.pieces)


class Marks:
    """Stand-ins for the personal variables in one shared render, to find their spots.

    premailer parses and rewrites the whole HTML, so the spots that jinja
    placed must survive it as text. Each render draws its own stand-ins (128
    random bits, letters and digits, which escaping, premailer and URL quoting
    leave alone) after the papers it shows were fixed: no paper text can hold
    them, and a fixed name (the earlier design) could be put into an abstract
    to be replaced by each reader's unsubscribe link. The cut is checked: a
    stand-in that a template changed (a filter on `{{ email }}`) is an error,
    never a garbled digest.
    """

    def __init__(self) -> None:
        self.nonce = secrets.token_hex(16)
        self.values = {name: f"dp{self.nonce}{n}" for n, name in enumerate(PERSONAL)}
        self._spot = re.compile(f"dp{self.nonce}([0-9])")

    def cut(self, text: str) -> Body:
        parts = self._spot.split(text)
        pieces = tuple(parts[0::2])
        slots = tuple(PERSONAL[int(n)] for n in parts[1::2])
        if any(self.nonce in piece.lower() for piece in pieces):
            raise RenderError(
                "a digest template changes one of {{ greeting }}, {{ email }} or "
                "{{ unsubscribe_link }} (with a filter?); output them as they are"
            )
        return Body(pieces, slots)


@dataclass(frozen=True)
class Rendered:
    """One distinct digest, rendered and inlined once, cut at the readers' spots."""

    digest: Digest
    subject: str
    html: Body
    text: Body

    def personalise(self, person: Personal) -> tuple[str, str]:
        values = personal_parts(person)
        html = {name: value.translate(HTML_ESCAPE) for name, value in values.items()}
        return self.html.fill(html), self.text.fill(values)


def _authors(names: Sequence[str]) -> str:
    return ", ".join(names[:3]) + (", et al." if len(names) > 3 else "")


def _dates(paper: Paper) -> str:
    """When the paper appeared and, for a revision, its version and last update: digests
    are ordered by first submission, as the archive is, so both dates explain the place."""
    first = paper.published.date().isoformat()
    if paper.version <= 1:
        return first
    return f"v{paper.version} · updated {paper.updated.date().isoformat()} · first {first}"


def _period(digest: Digest, day: date) -> str:
    """`{period}`: a weekly digest's "weekly, FIRST to LAST"; a daily one's date."""
    return digest.period.text() if digest.period is not None else day.isoformat()


def template_texts(folder: Path | None) -> dict[str, str]:
    """The digest's three files: each from `folder` when it has one of that name, else the
    one shipped in the package (so a folder may override only the stylesheet, say)."""
    shipped = importlib.resources.files("newsletter.templates")
    texts = {}
    for name in (HTML_TEMPLATE, TEXT_TEMPLATE, STYLESHEET):
        own = folder / name if folder is not None else None
        source = own if own is not None and own.is_file() else shipped / name
        texts[name] = source.read_text(encoding="utf-8")
    return texts


class Renderer:
    """jinja2 (autoescape on) + premailer (network off), loaded once per cycle."""

    def __init__(
        self,
        templates: Path | None,
        subject: str,
        welcome_subject: str,
        max_html_bytes: int,
        archive_url: str = "",
        unsubscribe_address: str = "",
        ask_address: str = "",
    ):
        """`unsubscribe_address`: where mail saying "unsubscribe" is acted on (the inbox);
        `ask_address`: when nothing reads mail or serves a page, whom to ask instead."""
        texts = template_texts(templates)
        self.env = jinja2.Environment(
            loader=jinja2.DictLoader(texts),
            autoescape=jinja2.select_autoescape(("html", "html.j2")),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.env.filters["authors"] = _authors
        self.env.filters["dates"] = _dates
        self.env.filters["in_archive"] = self._in_archive
        self.env.filters["slug"] = keyword_slug
        self.env.filters["wordwrap"] = self._wordwrap
        self._wrapped: dict[tuple[str, int, bool, str | None, bool], str] = {}
        self.css = texts[STYLESHEET]
        self.html_template = self.env.get_template(HTML_TEMPLATE)
        self.text_template = self.env.get_template(TEXT_TEMPLATE)
        self.subject = subject
        self.welcome_subject = welcome_subject
        self.max_html_bytes = max_html_bytes
        self.archive_url = archive_url
        self.unsubscribe_address = unsubscribe_address
        self.ask_address = ask_address
        self.renders = 0

    def _in_archive(self, keyword: str) -> str:
        """The keyword's table in the archive: its heading's anchor on `archive_url`."""
        parts = urlsplit(self.archive_url)
        return parts._replace(fragment=quote(heading_anchor(keyword))).geturl()

    def _subject(self, digest: Digest, day: date) -> str:
        template = self.welcome_subject if digest.welcome else self.subject
        return template.format(
            count=digest.count,
            keywords=", ".join(digest.keywords),
            date=day.isoformat(),
            period=_period(digest, day),
        )

    def _context(
        self,
        digest: Digest,
        subscribed: Sequence[str],
        day: date,
        person: Personal | Marks,
    ) -> dict[str, object]:
        return {
            "digest": digest,
            "sections": digest.sections,
            "subscribed": subscribed,
            "subject": self._subject(digest, day),
            "date": day.isoformat(),
            "period": _period(digest, day),
            "css": self.css,
            "archive_url": self.archive_url,
            "unsubscribe_address": self.unsubscribe_address,
            "ask_address": self.ask_address,
            **(person.values if isinstance(person, Marks) else personal_parts(person)),
        }

    def _html(self, context: Mapping[str, object]) -> str:
        """jinja2, then premailer: the expensive pass, counted in `renders`."""
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
        """Render and inline; when the HTML is over the limit, keep what fits, taken in
        turns from the keywords, and say how many more are in the archive.

        Without `person` the personal parts are spots, filled in per person later
        (`MailTemplate`); with it, they are rendered in like everything else (one
        person's digest: the reference the shared path is tested against).
        """
        spots = person or Marks()
        context = self._context(digest, subscribed, day, spots)
        html = self._html(context)
        if len(html.encode()) > self.max_html_bytes - PERSONAL_MARGIN:
            digest, html = self._fit(digest, subscribed, day, spots, len(html.encode()))
            context = self._context(digest, subscribed, day, spots)
        text = self.text_template.render(context)
        if isinstance(spots, Marks):
            return Rendered(digest, str(context["subject"]), spots.cut(html), spots.cut(text))
        return Rendered(digest, str(context["subject"]), Body((html,)), Body((text,)))

    def _fit(
        self,
        digest: Digest,
        subscribed: Sequence[str],
        day: date,
        person: Personal | Marks,
        full_size: int,
    ) -> tuple[Digest, str]:
        """The digest trimmed to the most papers whose HTML fits (`trim_fair`), and that HTML.

        Each try is a premailer pass, so the count to try next is interpolated
        between the largest that fits and the smallest that does not (the size grows
        about linearly with the papers): two to four tries where a binary search
        takes six for 60 papers. A step that does not halve the range is followed
        by a bisection, so odd sizes take at most twice the binary search's tries.
        """
        limit = self.max_html_bytes - PERSONAL_MARGIN
        total = sum(len(s.items) for s in digest.sections)

        def attempt(keep: int) -> tuple[Digest, str, int]:
            trimmed = trim_fair(digest, keep)
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
