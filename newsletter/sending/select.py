"""Who gets which papers: a subscriber's digest, chosen from the stored papers (pure).

Selection is a pure function of (the subscriber's keywords, their last
delivered cycle, the stored papers), so subscribers with the same keywords and
the same history get the same `Digest` and can share one render.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from ..cadence import Period
from ..papers import StoredPaper, newest_after, order_key


@dataclass(frozen=True)
class Item:
    stored: StoredPaper
    tags: tuple[str, ...]  # the paper's other keywords


@dataclass(frozen=True)
class Section:
    keyword: str
    items: tuple[Item, ...]
    more: int = 0  # papers on the keyword left to the archive: past a limit, or pruned


@dataclass(frozen=True)
class Digest:
    sections: tuple[Section, ...]
    welcome: bool = False
    period: Period | None = None  # the days a weekly digest covers; None: a daily one

    @property
    def count(self) -> int:
        """Papers in this mail."""
        return sum(len(s.items) for s in self.sections)

    @property
    def more(self) -> int:
        """Papers on the reader's keywords that this mail leaves to the archive."""
        return sum(s.more for s in self.sections)

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
    keywords: Sequence[str],
    order: Sequence[str],
    by_keyword: Mapping[str, Sequence[StoredPaper]],
    after_cycle: int,
    limit: int,
    uncounted: Mapping[tuple[str, ...], int] | None = None,
) -> Digest:
    """The papers first seen after the subscriber's last delivered cycle, on their keywords:
    the newest `limit` of each keyword (`by_keyword`: each keyword's papers, newest first),
    which is what the store keeps in full for a digest still due, however long it waited.
    Each section counts in `more` the others: those left out here, and those the store
    no longer holds in full (`uncounted`: how many, by the keywords they matched)."""
    mine = [by_keyword.get(k, ()) for k in keywords]
    pending = (p for papers in mine for p in papers if p.first_seen > after_cycle)
    chosen = {p.paper.id for papers in mine for p in newest_after(papers, after_cycle, limit)}
    digest = keep_only(select(keywords, order, pending), chosen)
    sections = {s.keyword: s for s in digest.sections}
    homes = [k for k in order if k in keywords]
    for matched, count in (uncounted or {}).items():
        home = next((k for k in homes if k in matched), None)
        if home is not None:
            section = sections.get(home) or Section(home, ())
            sections[home] = replace(section, more=section.more + count)
    return Digest(tuple(sections[k] for k in homes if k in sections))


def select_welcome(
    keywords: Sequence[str],
    order: Sequence[str],
    by_keyword: Mapping[str, Sequence[StoredPaper]],
    limit: int,
) -> Digest:
    """A new subscriber's first issue: the latest `limit` papers of each of their keywords,
    so nobody waits."""
    chosen = (p for k in keywords for p in by_keyword.get(k, ())[:limit])
    return replace(select(keywords, order, chosen), welcome=True)


def trim_fair(digest: Digest, keep: int) -> Digest:
    """Keep `keep` papers, taken in turns from the sections (each one's newest first), so
    that every keyword keeps its share however busy the others are; each section counts
    what it lost in `more`."""
    turns = sorted(
        (rank, n, item.stored.paper.id)
        for n, section in enumerate(digest.sections)
        for rank, item in enumerate(section.items)
    )
    return keep_only(digest, {paper_id for _, _, paper_id in turns[:keep]})


def keep_only(digest: Digest, kept: set[str]) -> Digest:
    """The digest with only the papers in `kept`; each section counts what it lost in `more`."""
    sections = []
    for s in digest.sections:
        items = tuple(i for i in s.items if i.stored.paper.id in kept)
        sections.append(Section(s.keyword, items, s.more + len(s.items) - len(items)))
    return replace(digest, sections=tuple(sections))
