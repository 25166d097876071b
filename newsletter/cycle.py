"""One cycle, in order: fetch every keyword, diff against the store, write and publish
the archive, mail the digests.

The cycle orders the phases and owns nothing else; the daemon decides when it
runs. Each phase saves its effect before the next starts, so a crash anywhere
repeats at most the phase in flight.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime

from .archive.files import ArchiveError, ArchiveUpdate, update_archive
from .archive.git import PublishReport, commit_message, publish
from .config import Settings
from .crashpoints import crashpoint
from .fetch.client import ArxivClient, FetchError, Unreachable
from .fetch.keywords import fetch_keyword
from .papers import Paper
from .retention import papers_to_keep, pending_since
from .sending.deliver import DeliveryReport, deliver_digests
from .store import Store
from .subscribers import load_subscribers

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KeywordReport:
    name: str
    fetched: int = 0
    new: int = 0
    updated: int = 0
    archived: int = 0
    error: str | None = None
    tried: bool = True  # False: not asked this cycle (shutting down, arXiv unreachable)


@dataclass(frozen=True)
class CycleReport:
    number: int
    keywords: tuple[KeywordReport, ...]
    archive_written: bool
    archive_error: str | None
    seconds: float
    delivery: DeliveryReport = field(default_factory=DeliveryReport)
    interrupted: bool = False
    publish: PublishReport | None = None  # None when [archive] git is off

    @property
    def failed_keywords(self) -> tuple[KeywordReport, ...]:
        return tuple(k for k in self.keywords if k.error and k.tried)

    @property
    def untried_keywords(self) -> tuple[KeywordReport, ...]:
        return tuple(k for k in self.keywords if not k.tried)

    @property
    def new_papers(self) -> int:
        return sum(k.new for k in self.keywords)

    @property
    def ok(self) -> bool:
        return (
            not self.failed_keywords
            and not self.untried_keywords
            and not self.delivery.error
            and self.archive_error is None
            and (self.publish is None or self.publish.error is None)
        )

    def summary(self) -> str:
        failed, untried = len(self.failed_keywords), len(self.untried_keywords)
        fetched = len(self.keywords) - failed - untried
        return (
            f"cycle {self.number}: keywords {fetched} fetched, {failed} failed"
            + (f", {untried} not tried" if untried else "")
            + f"; {self.new_papers} new papers; archive "
            + (
                "error"
                if self.archive_error
                else "written"
                if self.archive_written
                else "unchanged"
            )
            + (f"; git {'FAILED' if self.publish.error else 'ok'}" if self.publish else "")
            + f"; emails sent {self.delivery.sent}, pending {self.delivery.pending}"
            + ("; mail FAILED (see the mail line)" if self.delivery.error else "")
            + f"; {self.seconds:.1f} s"
        )


def write_archive_files(
    settings: Settings, store: Store, today: date | None = None
) -> ArchiveUpdate:
    """Rebuild the README and, when on, the monthly pages and feeds. Raises ArchiveError."""
    return update_archive(
        settings.archive,
        settings.keyword_names,
        store.papers.stored(),
        today or datetime.now(UTC).date(),
        store.papers.published_of,
    )


def publish_archive(
    settings: Settings, keywords: tuple[KeywordReport, ...] = (), today: date | None = None
) -> PublishReport:
    """Commit (and push) the archive files when [archive] git is on; never raises."""
    counts = [(k.name, k.new, k.updated) for k in keywords]
    message = commit_message(counts, today or datetime.now(UTC).date())
    return publish(settings.archive, settings.keyword_names, message)


class Interrupted(Exception):
    """The daemon is shutting down: stop taking new work, keep what is done."""


def _fetch_all(
    settings: Settings,
    client: ArxivClient,
    had_papers: set[str],
    stop: threading.Event,
    progress: Callable[[str], None],
) -> tuple[dict[str, tuple[Paper, ...]], dict[str, str], dict[str, str]]:
    """(papers by keyword, errors by keyword, why each keyword not asked was not)."""
    fetched: dict[str, tuple[Paper, ...]] = {}
    errors: dict[str, str] = {}
    untried: dict[str, str] = {}
    why_not: str | None = None  # once set, the remaining keywords wait for the next cycle
    total = len(settings.keywords)
    for done, keyword in enumerate(settings.keywords):
        if why_not is None and stop.is_set():
            why_not = "shutting down"
        if why_not is not None:
            untried[keyword.name] = why_not
            continue
        progress(f"fetching {keyword.name} ({done + 1}/{total} keywords)")
        try:
            result = fetch_keyword(client, keyword, settings.arxiv, keyword.name in had_papers)
        except Interrupted:
            why_not = untried[keyword.name] = "shutting down"
            continue
        except Unreachable as err:
            errors[keyword.name] = str(err)
            why_not = f"arXiv cannot be reached ({err})"
            log.warning("arXiv: %s; the other keywords wait for the next cycle", err)
            continue
        except FetchError as err:
            errors[keyword.name] = str(err)
            log.warning(
                "arXiv: %s failed: %s; its archive section and stored papers stay as they were",
                keyword.name,
                err,
            )
            continue
        except Exception as err:  # a bug or a surprise: it costs this keyword, not the cycle
            errors[keyword.name] = f"unexpected error: {type(err).__name__}: {err}"[:300]
            log.exception("arXiv: %s failed unexpectedly; the other keywords go on", keyword.name)
            continue
        fetched[keyword.name] = result.papers
        log.info(
            "arXiv: %s: %d papers (%d outside the category filter)",
            keyword.name,
            len(result.papers),
            result.filtered,
        )
    return fetched, errors, untried


def run_cycle(
    settings: Settings,
    store: Store,
    *,
    today: date | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[str], None] | None = None,
    alive: Callable[[], None] | None = None,
    secret: bytes | None = None,
) -> CycleReport:
    """One cycle. With `stop` set (SIGTERM) it takes no new work: keywords not yet
    fetched are left for the next cycle, and no new message is started; what was
    fetched or sent is saved. `progress` gets a line to show, `alive` is called while
    it waits (the daemon's watchdog heartbeat); `secret` is the token secret the daemon
    holds (checked when the digests need it, if not given). A cycle that raises is
    recorded in the store, then the exception propagates."""
    started = time.monotonic()
    stop = stop or threading.Event()
    progress = progress or (lambda text: None)
    number = store.cycles.begin()
    log.info("cycle %d: fetching %d keywords", number, len(settings.keywords))
    try:
        return _run(settings, store, number, started, today, stop, progress, alive, secret)
    except BaseException as err:
        with contextlib.suppress(Exception):
            store.cycles.finish(number, error=f"{type(err).__name__}: {err}")
        raise
    finally:
        store.papers.release_seen()


def _run(
    settings: Settings,
    store: Store,
    number: int,
    started: float,
    today: date | None,
    stop: threading.Event,
    progress: Callable[[str], None],
    alive: Callable[[], None] | None,
    secret: bytes | None,
) -> CycleReport:
    def sleep(seconds: float) -> None:
        """Wait for arXiv (pacing, a retry), showing life every second; SIGTERM ends it."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if stop.wait(min(left, 1.0)):
                raise Interrupted
            if alive is not None:
                alive()

    client = ArxivClient(settings.arxiv, sleep=sleep)
    fetched, errors, untried = _fetch_all(settings, client, store.papers.keywords(), stop, progress)
    crashpoint("after-fetch")
    if "shutting down" in untried.values():
        log.warning(
            "cycle %d: shutting down; keywords not fetched yet wait for the next cycle", number
        )
    keywords = tuple(
        KeywordReport(
            name=k.name,
            fetched=len(fetched.get(k.name, ())),
            error=errors.get(k.name) or untried.get(k.name),
            tried=k.name not in untried,
        )
        for k in settings.keywords
    )
    diffs = store.papers.apply_fetch(number, fetched)
    keywords = tuple(
        replace(k, new=diffs[k.name].new, updated=diffs[k.name].updated) if k.name in diffs else k
        for k in keywords
    )
    store.cycles.update(
        number,
        keywords={
            k.name: {
                "fetched": k.fetched,
                "new": k.new,
                "updated": k.updated,
                "error": k.error,
                "tried": k.tried,
            }
            for k in keywords
        },
    )

    archive_error = None
    written = False
    try:
        update = write_archive_files(settings, store, today)
    except ArchiveError as err:
        archive_error = str(err)
        log.error("archive: %s", err)
    else:
        written = update.changed
        keywords = tuple(replace(k, archived=len(update.sections[k.name])) for k in keywords)
    crashpoint("after-archive")

    published = None
    if settings.archive.git and archive_error is None:
        published = publish_archive(settings, keywords, today)
    elif settings.archive.git:
        published = PublishReport(error="not published: the archive could not be written")

    roster = load_subscribers(settings.subscribers.dir, settings.keyword_names)
    delivery = DeliveryReport()
    if not stop.is_set():
        delivery = deliver_digests(
            settings,
            store,
            number,
            roster=roster,
            today=today,
            stop=stop,
            progress=progress,
            secret=secret,
        )
        # An SMTP server that cannot be used is the admin's to fix: an error, not info.
        log.log(logging.ERROR if delivery.error else logging.INFO, "%s", delivery.summary())

    pending = pending_since(store.deliveries.all(), roster, number)
    keep = papers_to_keep(
        settings, store.papers.stored(), pending, pages_written=archive_error is None
    )
    pruned = store.papers.prune(keep, min(pending, default=None))
    if pruned:
        log.info("store: %d papers no longer shown anywhere kept as seen ids", pruned)

    report = CycleReport(
        number=number,
        keywords=keywords,
        archive_written=written,
        archive_error=archive_error,
        seconds=time.monotonic() - started,
        delivery=delivery,
        interrupted=stop.is_set(),
        publish=published,
    )
    store.cycles.finish(
        number,
        archive_error=archive_error,
        interrupted=report.interrupted,
        mail={
            "sent": delivery.sent,
            "pending": delivery.pending,
            "bounced": delivery.bounced,
            **({"error": delivery.error} if delivery.error else {}),
        },
    )
    log.info("%s", report.summary())
    return report
