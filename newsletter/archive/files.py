"""The archive as files on disk: the README, and when enabled the monthly pages of
papers past each table (`rotate`) and one Atom feed per keyword (`feeds`).

The README and the feeds are rebuilt from the store's tables every cycle; the
monthly pages are merged (pages.py). A file is only replaced when its bytes
change (the README: when more than its date line changes), which keeps the
archive's git history to real changes. Layout, relative to the README's folder:

    README.md                     the capped tables (seed format)
    KEYWORD-slug/YYYY-MM.md       papers past the cap, by first version's month
    feeds/KEYWORD-slug.xml        Atom feed of the keyword's table

Files of keywords no longer in settings, and pages or feeds left after
`rotate` or `feeds` is turned off, are not touched: they are the admin's to delete.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path, PurePosixPath
from urllib.parse import urljoin

from ..config import ArchiveSettings
from ..errors import NewsletterError
from ..files import write_atomic
from ..papers import StoredPaper, all_by_keyword, keyword_slug
from .atom import FeedLinks, render_feed
from .markdown import DATE_LINE, older_line, render_archive
from .pages import PublishedOf, merge_pages

FEEDS_DIR = "feeds"
_PAGE = re.compile(r"^\d{4}-\d\d\.md$")
_SLUG = r"[a-z0-9]+(?:-[a-z0-9]+)*"


class ArchiveError(NewsletterError):
    """The archive file cannot be written; str() names the path and the reason."""


def _without_date(text: str) -> str:
    return DATE_LINE.sub("", text, count=1)


def write_archive(path: Path, text: str) -> bool:
    """Replace the archive atomically; False (and no write) when only the date changed."""
    try:
        old = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        old = None
    except OSError as err:
        raise ArchiveError(f"{path}: cannot read the archive: {err.strerror}") from None
    if old is not None and _without_date(old) == _without_date(text):
        return False
    if not path.parent.is_dir():
        raise ArchiveError(
            f"{path}: the directory {path.parent} does not exist; create it or fix [archive] path"
        )
    try:
        write_atomic(path, text.encode("utf-8"), name="archive")
    except OSError as err:
        raise ArchiveError(
            f"{path}: cannot write the archive: {err.strerror}; the previous file is intact"
        ) from None
    return True


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write an archive page or feed atomically, creating its folder; False (and no
    write) when the file already holds exactly these bytes."""
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    except OSError as err:
        raise ArchiveError(f"{path}: cannot read: {err.strerror}") from None
    try:
        path.parent.mkdir(exist_ok=True)
        write_atomic(path, data, name="archive")
    except OSError as err:
        raise ArchiveError(
            f"{path}: cannot write: {err.strerror}; the previous file is intact"
        ) from None
    return True


@dataclass(frozen=True)
class ArchiveUpdate:
    """What one rebuild did; `sections` are the README tables (for the per-keyword counts)."""

    sections: dict[str, list[StoredPaper]]
    readme_written: bool
    written: tuple[Path, ...] = ()  # monthly pages and feeds (re)written
    removed: tuple[Path, ...] = ()  # monthly pages whose papers are all back in the table
    pages: int = 0  # monthly pages that exist now
    feeds: int = 0

    @property
    def changed(self) -> bool:
        return self.readme_written or bool(self.written or self.removed)


def feed_links(settings: ArchiveSettings, name: str) -> FeedLinks:
    """With public_url the feed's id and self link are absolute (public_url must then
    serve the archive's files, e.g. GitHub Pages); without it the links are relative
    to the feed file and the id is a UUID derived from the archive's location."""
    slug = keyword_slug(name)
    if settings.public_url:
        base = (
            settings.public_url if settings.public_url.endswith("/") else settings.public_url + "/"
        )
        self_href = urljoin(base, f"{FEEDS_DIR}/{slug}.xml")
        return FeedLinks(id=self_href, self_href=self_href, alternate_href=settings.public_url)
    location = f"daily-papers:{settings.path.parent.resolve().as_uri()}#{slug}"
    return FeedLinks(
        id=f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, location)}",
        self_href=f"{slug}.xml",
        alternate_href=f"../{settings.path.name}",
    )


@dataclass(frozen=True)
class ArchivePlan:
    """Every file as it should be after this cycle, before anything is written."""

    readme: str
    sections: dict[str, list[StoredPaper]]
    files: dict[Path, str]  # monthly pages and feeds
    emptied: tuple[Path, ...]  # monthly pages left without a row
    pages: int  # monthly pages there will be


def plan_files(
    settings: ArchiveSettings,
    names: Sequence[str],
    stored: Iterable[StoredPaper],
    today: date,
    published_of: PublishedOf,
) -> ArchivePlan:
    """The README, its tables, the feeds, and the monthly pages merged with those on disk."""
    everything = all_by_keyword(stored, names)
    sections = {name: papers[: settings.max_papers] for name, papers in everything.items()}
    folder = settings.path.parent
    files: dict[Path, str] = {}
    emptied: list[Path] = []
    older: dict[str, str] = {}
    pages = 0
    for name, papers in everything.items():
        slug = keyword_slug(name)
        if settings.rotate:
            existing = {page.stem: page for page in month_pages(folder / slug)}
            changes = merge_pages(
                folder / slug,
                name,
                papers,
                settings.max_papers,
                settings.path.name,
                existing,
                _read,
                published_of,
            )
            files.update(changes.pages)
            emptied += changes.emptied
            pages += len(changes.months)
            if changes.months:
                older[name] = older_line(slug, changes.months)
        if settings.feeds:
            feed = render_feed(f"Daily Papers: {name}", sections[name], feed_links(settings, name))
            files[folder / FEEDS_DIR / f"{slug}.xml"] = feed
    readme = render_archive(sections, settings.max_papers, today, older)
    return ArchivePlan(readme, sections, files, tuple(emptied), pages)


def update_archive(
    settings: ArchiveSettings,
    names: Sequence[str],
    stored: Iterable[StoredPaper],
    today: date,
    published_of: PublishedOf = lambda paper_id: None,
) -> ArchiveUpdate:
    """Write every archive file that changed; raises ArchiveError naming the file that failed.

    Pages and feeds are written before the README, and emptied pages removed after
    it, so the README never links a page that is not there.
    """
    plan = plan_files(settings, names, stored, today, published_of)
    folder = settings.path.parent
    if plan.files and not folder.is_dir():
        raise ArchiveError(
            f"{settings.path}: the directory {folder} does not exist; "
            "create it or fix [archive] path"
        )
    files = plan.files.items()
    written = tuple(path for path, text in files if write_if_changed(path, text.encode()))
    readme_written = write_archive(settings.path, plan.readme)
    for page in plan.emptied:
        _remove(page)
    return ArchiveUpdate(
        sections=plan.sections,
        readme_written=readme_written,
        written=written,
        removed=plan.emptied,
        pages=plan.pages,
        feeds=sum(1 for path in plan.files if path.suffix == ".xml"),
    )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ArchiveError(f"{path}: cannot read the monthly page: {err}") from None


def month_pages(directory: Path) -> list[Path]:
    """The monthly pages in a keyword's folder; other files there are not ours."""
    try:
        return sorted(p for p in directory.iterdir() if _PAGE.match(p.name) and p.is_file())
    except FileNotFoundError:
        return []
    except OSError as err:
        raise ArchiveError(f"{directory}: cannot list the monthly pages: {err.strerror}") from None


def _remove(page: Path) -> None:
    try:
        page.unlink()
    except FileNotFoundError:
        pass
    except OSError as err:
        raise ArchiveError(f"{page}: cannot remove the stale page: {err.strerror}") from None


def archive_pathspecs(settings: ArchiveSettings, names: Sequence[str]) -> list[Path]:
    """Where our files can be, for the current settings: the README, each keyword's page
    folder (rotate) and feed (feeds). What git publishing stages; nothing else."""
    folder = settings.path.parent
    paths = [settings.path]
    for name in names:
        slug = keyword_slug(name)
        if settings.rotate:
            paths.append(folder / slug)
        if settings.feeds:
            paths.append(folder / FEEDS_DIR / f"{slug}.xml")
    return paths


def is_archive_file(settings: ArchiveSettings, relative: PurePosixPath) -> bool:
    """Whether a path (relative to the README's folder) has the shape of one of our files,
    for any keyword: the README, a monthly page, a feed."""
    text = relative.as_posix()
    return (
        text == settings.path.name
        or re.fullmatch(rf"{_SLUG}/\d{{4}}-\d\d\.md", text) is not None
        or re.fullmatch(rf"{FEEDS_DIR}/{_SLUG}\.xml", text) is not None
    )
