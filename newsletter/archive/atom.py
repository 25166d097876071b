"""One Atom 1.0 feed per keyword (RFC 4287): the papers of the keyword's README table.

For readers who follow a keyword in a feed reader instead of by mail. Rendering
is pure and deterministic: the feed's `updated` is the newest entry's, not the
time of rendering, so an unchanged keyword renders the same bytes and the file
is not rewritten (and not committed) every cycle.

The XML is built with xml.etree, which escapes `<`, `&` and quotes; what it does
not do is drop the control characters XML 1.0 forbids, which arXiv text can
carry, so `xml_text` removes them first: one stray byte would make the whole
feed unreadable.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ..papers import Paper, StoredPaper

ATOM = "http://www.w3.org/2005/Atom"
ARXIV_SCHEME = "http://arxiv.org/schemas/atom"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # `updated` of a feed with no entries yet

# Characters XML 1.0 does not allow anywhere, not even escaped.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class FeedLinks:
    """Where the feed lives (id and self link) and the page it mirrors (alternate link)."""

    id: str
    self_href: str
    alternate_href: str


def xml_text(text: str) -> str:
    return _NOT_XML.sub("", text)


def atom_date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def paper_id_url(paper: Paper) -> str:
    """The entry id: the versionless abstract URL, so a revision updates the same entry."""
    return f"http://arxiv.org/abs/{paper.id}"


def _add(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {k: xml_text(v) for k, v in attrib.items()})
    if text is not None:
        element.text = xml_text(text)
    return element


def _entry(feed: ET.Element, paper: Paper) -> None:
    entry = _add(feed, "entry")
    _add(entry, "id", paper_id_url(paper))
    _add(entry, "title", paper.title, type="text")
    _add(entry, "updated", atom_date(paper.updated))
    _add(entry, "published", atom_date(paper.published))
    _add(entry, "link", rel="alternate", type="text/html", href=paper.url)
    pdf = paper.url.replace("/abs/", "/pdf/", 1)
    _add(entry, "link", rel="related", type="application/pdf", href=pdf, title="pdf")
    for name in paper.authors:
        _add(_add(entry, "author"), "name", name)
    for category in paper.categories:
        _add(entry, "category", term=category, scheme=ARXIV_SCHEME)
    _add(entry, "summary", paper.abstract, type="text")


def render_feed(title: str, entries: Sequence[StoredPaper], links: FeedLinks) -> str:
    """The keyword's feed; `entries` newest first, as in the README table."""
    # Unprefixed names under a default xmlns: ElementTree's default_namespace option
    # refuses unprefixed attributes, and register_namespace would change global state.
    feed = ET.Element("feed", xmlns=ATOM)
    _add(feed, "id", links.id)
    _add(feed, "title", title, type="text")
    updated = max((e.paper.updated for e in entries), default=EPOCH)
    _add(feed, "updated", atom_date(updated))
    _add(feed, "link", rel="self", type="application/atom+xml", href=links.self_href)
    _add(feed, "link", rel="alternate", type="text/html", href=links.alternate_href)
    # A feed must name an author unless every entry does; arXiv entries can lack one.
    _add(_add(feed, "author"), "name", "Daily Papers")
    _add(feed, "generator", "Daily Papers")
    for stored in entries:
        _entry(feed, stored.paper)
    ET.indent(feed)
    body = ET.tostring(feed, encoding="unicode")
    return f'<?xml version="1.0" encoding="utf-8"?>\n{body}\n'
