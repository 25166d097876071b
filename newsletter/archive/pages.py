"""Monthly pages: where each keyword's papers go once they leave its table (`rotate`).

A page is a published record, not a view of the store: the store keeps a paper
in full only while something can still show it, so a page is merged, never
rebuilt. Each cycle touches only the months of papers the store still holds:
their rows are added or replaced (a revision shows its new version), rows of
papers back in the table are taken out (a page left empty is deleted), and
every other row stays as it was written, in order of the first version's time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ..papers import StoredPaper, order_key
from .markdown import month_of, page_rows, render_page, row

PublishedOf = Callable[[str], datetime | None]


@dataclass(frozen=True)
class PageChanges:
    """One keyword's pages after this cycle: their text, those to delete, the months left."""

    pages: dict[Path, str]
    emptied: tuple[Path, ...]
    months: tuple[str, ...]  # every month with a page, newest first


def merge_pages(
    folder: Path,
    name: str,
    papers: Sequence[StoredPaper],
    max_papers: int,
    readme_name: str,
    existing: dict[str, Path],
    read: Callable[[Path], str],
    published_of: PublishedOf,
) -> PageChanges:
    """The pages of one keyword, given its papers held in full (newest first), the months
    that already have a page (`existing`), a way to read one, and the first version's
    time of any paper ever seen (to place rows the store no longer holds in full)."""
    table = {e.paper.id for e in papers[:max_papers]}
    past: dict[str, dict[str, StoredPaper]] = {}
    for entry in papers[max_papers:]:
        past.setdefault(month_of(entry.paper), {})[entry.paper.id] = entry
    touched = set(past) | ({month_of(e.paper) for e in papers[:max_papers]} & set(existing))
    pages: dict[Path, str] = {}
    emptied: list[Path] = []
    for month in sorted(touched):
        ours = past.get(month, {})
        on_disk = page_rows(read(existing[month])) if month in existing else []
        rows = [(order_key(e.paper), row(e.paper)) for e in ours.values()]
        for kept in on_disk:
            if kept.paper_id in ours or kept.paper_id in table:
                continue
            published = published_of(kept.paper_id) if kept.paper_id else None
            when = published.isoformat() if published else kept.date
            rows.append(((when, kept.paper_id), kept.text))
        path = folder / f"{month}.md"
        if rows:
            rows.sort(key=lambda item: item[0], reverse=True)
            pages[path] = render_page(name, month, [text for _, text in rows], readme_name)
        elif month in existing:
            emptied.append(path)
    months = (set(existing) | {p.stem for p in pages}) - {p.stem for p in emptied}
    return PageChanges(pages, tuple(emptied), tuple(sorted(months, reverse=True)))
