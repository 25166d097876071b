"""One cycle, in order: fetch every keyword, diff against the store, rewrite the archive.

This is the only module that calls all the others. Each step saves its effect
before the next starts, so a crash anywhere repeats at most the step in flight.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime

from .archive import ArchiveError, newest_by_keyword, render_archive, write_archive
from .arxiv_source import ArxivClient, FetchError, fetch_keyword
from .config import Settings
from .crashpoints import crashpoint
from .deliver import DeliveryReport, deliver_digests
from .papers import Paper, StoredPaper
from .store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KeywordReport:
    name: str
    fetched: int = 0
    new: int = 0
    updated: int = 0
    archived: int = 0
    error: str | None = None


@dataclass(frozen=True)
class CycleReport:
    number: int
    keywords: tuple[KeywordReport, ...]
    archive_written: bool
    archive_error: str | None
    seconds: float
    delivery: DeliveryReport = field(default_factory=DeliveryReport)
    interrupted: bool = False

    @property
    def failed_keywords(self) -> tuple[KeywordReport, ...]:
        return tuple(k for k in self.keywords if k.error)

    @property
    def new_papers(self) -> int:
        return sum(k.new for k in self.keywords)

    @property
    def ok(self) -> bool:
        return not self.failed_keywords and self.archive_error is None

    def summary(self) -> str:
        failed = len(self.failed_keywords)
        fetched = len(self.keywords) - failed
        return (
            f"cycle {self.number}: keywords {fetched} fetched, {failed} failed; "
            f"{self.new_papers} new papers; archive "
            + (
                "error"
                if self.archive_error
                else "written"
                if self.archive_written
                else "unchanged"
            )
            + f"; {self.seconds:.1f} s"
        )


def archive_sections(settings: Settings, store: Store) -> dict[str, list[StoredPaper]]:
    return newest_by_keyword(
        store.stored_papers(), settings.keyword_names, settings.archive.max_papers
    )


def publish_archive(
    settings: Settings, sections: dict[str, list[StoredPaper]], today: date | None = None
) -> bool:
    """Write the archive file; True when it changed. Raises ArchiveError."""
    text = render_archive(sections, settings.archive.max_papers, today or datetime.now(UTC).date())
    return write_archive(settings.archive.path, text)


class Interrupted(Exception):
    """The daemon is shutting down: stop taking new work, keep what is done."""


def _fetch_all(
    settings: Settings,
    client: ArxivClient,
    had_papers: set[str],
    stop: threading.Event,
    progress: Callable[[str], None],
) -> tuple[dict[str, tuple[Paper, ...]], dict[str, str], bool]:
    """(papers by keyword, errors by keyword, interrupted)."""
    fetched: dict[str, tuple[Paper, ...]] = {}
    errors: dict[str, str] = {}
    total = len(settings.keywords)
    for done, keyword in enumerate(settings.keywords):
        progress(f"fetching {keyword.name} ({done + 1}/{total} keywords)")
        if stop.is_set():
            return fetched, errors, True
        try:
            result = fetch_keyword(client, keyword, settings.arxiv, keyword.name in had_papers)
        except Interrupted:
            return fetched, errors, True
        except FetchError as err:
            errors[keyword.name] = str(err)
            log.warning(
                "arXiv: %s failed: %s; its archive section and stored papers stay as they were",
                keyword.name,
                err,
            )
            continue
        fetched[keyword.name] = result.papers
        log.info(
            "arXiv: %s: %d papers (%d outside the category filter)",
            keyword.name,
            len(result.papers),
            result.filtered,
        )
    return fetched, errors, False


def run_cycle(
    settings: Settings,
    store: Store,
    *,
    today: date | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[str], None] | None = None,
) -> CycleReport:
    """One cycle. With `stop` set (SIGTERM) it takes no new work: keywords not yet
    fetched are left for the next cycle, and no new message is started; what was
    fetched or sent is saved. A cycle that raises is recorded in the store, then
    the exception propagates."""
    started = time.monotonic()
    stop = stop or threading.Event()
    progress = progress or (lambda text: None)
    number = store.begin_cycle()
    log.info("cycle %d: fetching %d keywords", number, len(settings.keywords))
    try:
        return _run(settings, store, number, started, today, stop, progress)
    except BaseException as err:
        with contextlib.suppress(Exception):
            store.finish_cycle(number, error=f"{type(err).__name__}: {err}")
        raise


def _run(
    settings: Settings,
    store: Store,
    number: int,
    started: float,
    today: date | None,
    stop: threading.Event,
    progress: Callable[[str], None],
) -> CycleReport:
    def sleep(seconds: float) -> None:
        if stop.wait(seconds):
            raise Interrupted

    client = ArxivClient(settings.arxiv, sleep=sleep)
    fetched, errors, interrupted = _fetch_all(
        settings, client, store.keywords_with_papers(), stop, progress
    )
    crashpoint("after-fetch")
    if interrupted:
        log.warning(
            "cycle %d: shutting down; keywords not fetched yet wait for the next cycle", number
        )
        errors.update(
            {
                k.name: "not fetched: shutting down"
                for k in settings.keywords
                if k.name not in fetched and k.name not in errors
            }
        )

    keywords = tuple(
        KeywordReport(name=k.name, fetched=len(fetched.get(k.name, ())), error=errors.get(k.name))
        for k in settings.keywords
    )
    with store.batch():
        diffs = store.apply_fetch(number, fetched)
        keywords = tuple(
            replace(k, new=diffs[k.name].new, updated=diffs[k.name].updated)
            if k.name in diffs
            else k
            for k in keywords
        )
        store.update_cycle(
            number,
            keywords={
                k.name: {"fetched": k.fetched, "new": k.new, "updated": k.updated, "error": k.error}
                for k in keywords
            },
        )

    sections = archive_sections(settings, store)
    keywords = tuple(replace(k, archived=len(sections[k.name])) for k in keywords)
    archive_error = None
    written = False
    try:
        written = publish_archive(settings, sections, today)
    except ArchiveError as err:
        archive_error = str(err)
        log.error("archive: %s", err)
    crashpoint("after-archive")

    delivery = DeliveryReport()
    if not stop.is_set():
        delivery = deliver_digests(
            settings, store, number, today=today, stop=stop, progress=progress
        )
        log.info("%s", delivery.summary())

    report = CycleReport(
        number=number,
        keywords=keywords,
        archive_written=written,
        archive_error=archive_error,
        seconds=time.monotonic() - started,
        delivery=delivery,
        interrupted=stop.is_set(),
    )
    store.finish_cycle(
        number,
        archive_error=archive_error,
        interrupted=report.interrupted,
        mail={"sent": delivery.sent, "pending": delivery.pending, "bounced": delivery.bounced},
    )
    log.info("%s", report.summary())
    return report
