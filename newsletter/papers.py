"""The Paper type, and turning what arXiv sends into it.

Ids are split into a versionless id (what identifies a paper across revisions,
the store's key) and a version, because arXiv announces every revision as a new
entry and we must not mail a revised paper as news a second time.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from .errors import NewsletterError

# New style: 2503.03595 (YYMM.NNNN or YYMM.NNNNN); old style: hep-th/9901001, math.GT/0309136.
_ID = re.compile(
    r"(?:^|/abs/|arxiv\.org/abs/|^arXiv:)"
    r"(?P<id>\d{4}\.\d{4,5}|[a-z]+(?:-[a-z]+)*(?:\.[A-Z]{2})?/\d{7})"
    r"(?:v(?P<version>\d+))?/?$",
    re.IGNORECASE,
)


class BadPaper(NewsletterError):
    """An entry we cannot turn into a Paper (no id we understand, no dates)."""


def parse_arxiv_id(text: str) -> tuple[str, int]:
    """'http://arxiv.org/abs/hep-th/9901001v2' → ('hep-th/9901001', 2); version 1 when absent."""
    match = _ID.search(text.strip())
    if not match:
        raise BadPaper(f"not an arXiv id: {text!r}")
    return match["id"], int(match["version"] or 1)


def collapse(text: str | None) -> str:
    """Fold runs of whitespace (arXiv hard-wraps at 80 columns) into single spaces."""
    return " ".join((text or "").split())


@dataclass(frozen=True)
class Paper:
    id: str
    version: int
    url: str
    title: str
    abstract: str
    authors: tuple[str, ...]
    comment: str
    categories: tuple[str, ...]
    primary_category: str
    published: datetime
    updated: datetime

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready dict for the store."""
        record = asdict(self)
        record["authors"] = list(self.authors)
        record["categories"] = list(self.categories)
        record["published"] = self.published.isoformat()
        record["updated"] = self.updated.isoformat()
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Paper:
        return cls(
            id=record["id"],
            version=record["version"],
            url=record["url"],
            title=record["title"],
            abstract=record["abstract"],
            authors=tuple(record["authors"]),
            comment=record["comment"],
            categories=tuple(record["categories"]),
            primary_category=record["primary_category"],
            published=datetime.fromisoformat(record["published"]),
            updated=datetime.fromisoformat(record["updated"]),
        )

    @property
    def abs_url(self) -> str:
        """The paper's page for readers: https, and without a version, so it shows the
        latest revision (the digest says which version it announced). `url` stays as
        arXiv sent it, which is what the archive's format shows."""
        return f"https://arxiv.org/abs/{self.id}"

    @property
    def pdf_url(self) -> str:
        return f"https://arxiv.org/pdf/{self.id}"

    def matches_categories(self, allowed: tuple[str, ...]) -> bool:
        """True when one of the paper's categories is in an allowed archive.

        'cs.CL' belongs to archive 'cs'; an allowed entry may also name a full
        category ('cs.CL'). An empty filter keeps everything.
        """
        if not allowed:
            return True
        wanted = {a.casefold() for a in allowed}
        for category in self.categories or (self.primary_category,):
            folded = category.casefold()
            if folded in wanted or folded.split(".", 1)[0] in wanted:
                return True
        return False


@dataclass(frozen=True)
class StoredPaper:
    """A paper as the store knows it: which keywords matched it, and when it was first seen."""

    paper: Paper
    keywords: tuple[str, ...]
    first_seen: int  # the cycle number


def keyword_slug(name: str) -> str:
    """The keyword's name in file names and links (archive pages, feeds): ASCII, lowercase,
    dashes; a name without ASCII letters or digits gets a stable hash instead."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug or "keyword-" + hashlib.sha256(name.encode()).hexdigest()[:10]


def order_key(paper: Paper) -> tuple[str, str]:
    """Newest first by the first version's timestamp, so a revision keeps its place;
    ties broken by arXiv id (callers sort with reverse=True)."""
    return (paper.published.isoformat(), paper.id)


def all_by_keyword(
    stored: Iterable[StoredPaper], names: Sequence[str]
) -> dict[str, list[StoredPaper]]:
    """Every stored paper of each keyword, newest first by `order_key`; a paper appears
    under every keyword it matched."""
    grouped: dict[str, list[StoredPaper]] = {name: [] for name in names}
    for entry in stored:
        for keyword in entry.keywords:
            if keyword in grouped:
                grouped[keyword].append(entry)
    return {
        name: sorted(entries, key=lambda e: order_key(e.paper), reverse=True)
        for name, entries in grouped.items()
    }


def newest_after(entries: Iterable[StoredPaper], after_cycle: int, limit: int) -> list[StoredPaper]:
    """The first `limit` of `entries` (newest first) first seen after a cycle."""
    return list(itertools.islice((e for e in entries if e.first_seen > after_cycle), limit))


class _Author(Protocol):
    name: str


class _Result(Protocol):
    """The part of arxiv.Result we read; a Protocol so papers.py needs no arxiv import."""

    entry_id: str
    title: str
    summary: str
    comment: str | None
    authors: list[Any]
    categories: list[str]
    primary_category: str
    published: datetime
    updated: datetime


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def paper_from_result(result: _Result) -> Paper:
    """Normalise one arxiv.Result; raises BadPaper for an entry we cannot use."""
    paper_id, version = parse_arxiv_id(result.entry_id)
    if result.published is None or result.published.year < 1991:
        raise BadPaper(f"{paper_id}: no published date")
    title = collapse(result.title)
    if not title:
        raise BadPaper(f"{paper_id}: empty title")
    return Paper(
        id=paper_id,
        version=version,
        url=f"http://arxiv.org/abs/{paper_id}v{version}",
        title=title,
        abstract=collapse(result.summary),
        authors=tuple(collapse(str(a.name)) for a in result.authors if collapse(str(a.name))),
        comment=collapse(result.comment),
        categories=tuple(result.categories),
        primary_category=result.primary_category or (result.categories or [""])[0],
        published=_utc(result.published),
        updated=_utc(result.updated or result.published),
    )
