"""The long-lived process: decides *when* a cycle runs, and nothing else.

- Cycles run on the `schedule` library (times of day in an IANA zone; pytz is
  what schedule's own zone support uses). Between runs the loop sleeps until
  the next job is due, waking early only for a signal.
- schedule does not reschedule a job that raised, so it would run again on
  every tick: every job is wrapped, and a failed cycle is logged with its
  traceback, recorded in the store, and the next scheduled cycle proceeds.
- A run that falls due while a cycle is still running is skipped, not queued:
  the cycle that was running already covers it.
- On start, a scheduled time that passed since the last completed cycle
  (downtime) is caught up with one cycle.
- SIGTERM/SIGINT: stop taking new work, finish the message in flight, save,
  exit 0; past `stop_timeout_seconds` the process exits anyway, which is safe
  because every effect was saved the moment it happened.
- SIGHUP: reload settings (kept as they were if the new file is invalid), and
  the token secret (kept as it was if the file went missing).
- With [inbox], the mailbox is read every poll_seconds between cycles (in this
  thread: the store is not thread-safe); with [web] listen, the unsubscribe
  pages are served from a thread of their own (they touch only subscriber files).
- The token secret is read once at start (an error if it is missing once links
  were mailed) and held: cycles, polls and the web thread all sign with it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from types import FrameType
from zoneinfo import ZoneInfo

import pytz
import schedule

from .archive.git import NETWORK_TIMEOUT
from .clock import missed_since, next_due
from .config import ConfigError, Settings, load_settings
from .cycle import CycleReport, run_cycle
from .errors import NewsletterError
from .files import LostLock
from .inbox.poll import poll_inbox
from .preflight import check_paths, start_warnings
from .store import Store
from .systemd_notify import Notifier
from .tokens import SecretError, Tokens, check_secret, legacy_cutoff, load_secret
from .web import WebError, WebServer

log = logging.getLogger(__name__)

MAX_SLEEP = 60.0  # wake at least this often, so a wall-clock jump is noticed
CLOCK_SLACK = timedelta(minutes=1)  # more disagreement than this means the clock moved


class Daemon:
    def __init__(
        self,
        settings: Settings,
        *,
        notifier: Notifier | None = None,
        progress: Callable[[str], None] | None = None,
    ):
        self.settings = settings
        self.notifier = notifier or Notifier()
        self._show = progress or (lambda text: None)
        self.heartbeat = time.monotonic()  # when the main thread last showed progress
        self.stop = threading.Event()  # shutting down: no new work
        self.wake = threading.Event()  # interrupts the sleep between jobs
        self.reload_requested = False
        self.scheduler = schedule.Scheduler()
        self.store: Store | None = None
        self.last_cycle_started: datetime | None = None
        self.last_cycle_finished: datetime | None = None
        self.cycles_run = 0
        self.web: WebServer | None = None
        self.cycle_jobs: list[schedule.Job] = []
        self.secret = b""  # the token secret, read at start and on SIGHUP

    def beat(self, ahead: float = 0.0) -> None:
        """The main thread is making progress (the watchdog pings only while it does); with
        `ahead`, it is about to sleep that long between jobs, which is no hang either."""
        self.heartbeat = time.monotonic() + ahead

    def progress(self, text: str) -> None:
        self.beat()
        self._show(text)

    def quiet_limit(self) -> float:
        """Seconds without progress after which the daemon counts as stuck: twice its
        longest single wait (a request's timeout; a git push's, when publishing)."""
        s = self.settings
        waits = [s.arxiv.timeout_seconds, s.smtp.timeout_seconds]
        if s.inbox is not None:
            waits.append(s.inbox.timeout_seconds)
        if s.archive.git:
            waits.append(NETWORK_TIMEOUT)
        return 2 * max(waits)

    # -- signals ----------------------------------------------------------------

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        if not self.stop.is_set():
            log.info("%s: finishing the work in flight, then exiting", signal.Signals(signum).name)
            self.stop.set()
            self.wake.set()
            self.notifier.stopping()
            self._start_deadline()

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        self.reload_requested = True
        self.wake.set()

    def _install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)

    def _start_deadline(self) -> None:
        """Exit anyway after stop_timeout_seconds: a request stuck in a long timeout must
        not hold up a restart. Safe, because every effect is saved as it happens."""
        timeout = self.settings.schedule.stop_timeout_seconds

        def deadline() -> None:
            time.sleep(timeout)
            log.warning("still busy %g s after the stop signal; exiting now", timeout)
            logging.shutdown()
            os._exit(0)

        threading.Thread(target=deadline, name="stop-deadline", daemon=True).start()

    # -- scheduling ---------------------------------------------------------------

    def schedule_jobs(self) -> None:
        self.scheduler.clear()
        s = self.settings.schedule
        try:
            zone = pytz.timezone(s.timezone)
        except pytz.UnknownTimeZoneError:
            raise ConfigError(
                f"{self.settings.file}: [schedule] timezone {s.timezone!r} is unknown to pytz"
            ) from None
        self.cycle_jobs = []
        for at in s.times:
            job = self.scheduler.every().day.at(at, zone)
            job.do(self._scheduled, job)
            self.cycle_jobs.append(job)
        if self.settings.inbox is not None:
            self.scheduler.every(self.settings.inbox.poll_seconds).seconds.do(self.poll_inbox)

    def next_run(self) -> datetime | None:
        """When the next cycle runs, in local time as `schedule` keeps it."""
        return min((job.next_run for job in self.cycle_jobs if job.next_run), default=None)

    def plan(self) -> str:
        """The schedule for the start and reload lines: the next *cycle*, in the schedule's
        zone and in UTC (as `status` shows it), and how often the inbox is read, which
        is more often and must not be mistaken for it."""
        s = self.settings.schedule
        due = next_due(s)
        local = due.astimezone(ZoneInfo(s.timezone))
        line = f"cycles at {', '.join(s.times)} {s.timezone}; next cycle "
        line += f"{local:%Y-%m-%d %H:%M} {s.timezone}"
        if local.utcoffset():
            line += f" ({due:%H:%M} UTC)"
        if self.settings.inbox is not None:
            line += f"; inbox read every {self.settings.inbox.poll_seconds:g} s"
        return line

    def follow_clock(self) -> None:
        """Re-plan the cycles when `schedule` has them later than `clock.next_due` says:
        after the wall clock was stepped back, it would keep the next run days away
        (a step forward needs nothing: the run that became due runs at once)."""
        planned = self.next_run()
        due = next_due(self.settings.schedule)
        if planned is not None and planned.astimezone(UTC) - due > CLOCK_SLACK:
            log.warning(
                "the clock moved back: the next run was planned for %s; it is now at %s UTC",
                planned,
                f"{due:%Y-%m-%d %H:%M}",
            )
            self.schedule_jobs()

    def _scheduled(self, job: schedule.Job) -> None:
        """A schedule job: never raises, so schedule always reschedules it."""
        due = job.next_run  # still the time it was due: schedule updates it after we return
        if self.last_cycle_finished is not None and due is not None:
            due_utc = due.astimezone(UTC)  # schedule keeps naive local times
            if (
                self.last_cycle_started
                and self.last_cycle_started <= due_utc <= self.last_cycle_finished
            ):
                log.info("the run due at %s fell inside the cycle that just ran; skipped", due)
                return
        self.run_cycle()

    def run_cycle(self) -> CycleReport | None:
        """One cycle: a failure is logged and the daemon goes on, except a lost lock,
        which ends the daemon (another process may now be using the store)."""
        assert self.store is not None
        self.store.check_lock()
        self.last_cycle_started = datetime.now(UTC)
        self.notifier.status(f"running a cycle (started {self.last_cycle_started:%H:%M:%S} UTC)")
        try:
            report = run_cycle(
                self.settings,
                self.store,
                stop=self.stop,
                progress=self.progress,
                alive=self.beat,
                secret=self.secret,
            )
        except LostLock:
            raise
        except NewsletterError as err:  # a full disk, say: its one line says it all
            log.error("the cycle failed: %s; the next cycle will retry", err)
            self.notifier.status("the last cycle failed; see the log")
            return None
        except Exception:
            log.exception("the cycle failed; the daemon goes on and the next cycle will retry")
            self.notifier.status("the last cycle failed; see the log")
            return None
        finally:
            self.last_cycle_finished = datetime.now(UTC)
            self.cycles_run += 1
            self.progress("")
        self.notifier.status(report.summary())
        return report

    def poll_inbox(self) -> None:
        """Read the mailbox once (between cycles, in this thread: the store is not
        thread-safe); raises only for a lost lock, so schedule keeps polling."""
        assert self.store is not None
        self.store.check_lock()
        try:
            report = poll_inbox(
                self.settings, self.store, self.stop, alive=self.beat, secret=self.secret
            )
        except LostLock:
            raise
        except NewsletterError as err:
            log.error("inbox: the poll failed: %s; trying again at the next poll", err)
            return
        except Exception:
            log.exception("inbox: the poll failed; trying again at the next poll")
            return
        if not report.ok:
            log.warning("%s", report.summary())
        elif report.read or report.replies_sent:
            log.info("%s", report.summary())

    def tokens(self) -> Tokens:
        assert self.store is not None
        cutoff = legacy_cutoff(self.store.tokens_bound_since, datetime.now(UTC))
        return Tokens(self.secret, cutoff)

    def _start_web(self) -> None:
        if self.settings.web.listen_host:
            self.web = WebServer(self.settings, self.tokens())
            self.web.start()

    def _reload_secret(self) -> None:
        """The secret file again: a new one (restored, or made with `new-secret`) is
        used by everything at once; a missing one is an error, and the one in use stays."""
        path = self.settings.web.secret_file
        try:
            secret = load_secret(path)
        except SecretError as err:
            log.error("reload: %s; still signing with the secret read before", err)
            return
        if secret is None:
            log.error(
                "reload: %s: the token secret is missing; still signing with the one read "
                "before: restore the file, or run `newsletter new-secret` and reload",
                path,
            )
            return
        if secret != self.secret:
            self.secret = secret
            if self.web is not None:
                self.web.use(self.tokens())
            log.warning("reload: %s: a new token secret is in use", path)

    def _stop_web(self) -> None:
        if self.web is not None:
            self.web.stop()
            self.web = None

    # -- reload -------------------------------------------------------------------

    def reload(self) -> None:
        self.reload_requested = False
        try:
            new = load_settings(self.settings.file)
            check_paths(new)
        except ConfigError as err:
            log.error("reload refused, keeping the previous settings: %s", err)
            return
        if new.store.path != self.settings.store.path:
            log.error(
                "reload refused, keeping the previous settings: [store] path changed "
                "(%s); restart the daemon to move the store",
                new.store.path,
            )
            return
        old = self.settings
        self.settings = new
        try:
            self.schedule_jobs()
        except ConfigError as err:
            self.settings = old
            self.schedule_jobs()
            log.error("reload refused, keeping the previous settings: %s", err)
            return
        self._reload_secret()
        if new.web != old.web or new.subscribers != old.subscribers:
            self._stop_web()
            try:
                self._start_web()
            except (WebError, SecretError) as err:
                log.error("web: %s; the unsubscribe pages are off until the next reload", err)
        log.info("reloaded %s: %d keywords, %s", new.file, len(new.keywords), self.plan())

    # -- the loop -----------------------------------------------------------------

    def _catch_up_needed(self) -> bool:
        assert self.store is not None
        finished = [c["finished"] for c in self.store.cycles.all() if c.get("finished")]
        last = datetime.fromisoformat(max(finished)) if finished else None
        return missed_since(self.settings.schedule, last)

    @contextlib.contextmanager
    def _opened(self) -> Iterator[Store]:
        """Signals installed, store open and locked (or AlreadyRunning raised)."""
        self._install_signals()
        store = self.settings.store
        self.store = Store(store.path, journal_sync_ms=store.journal_sync_ms)
        try:
            for warning in start_warnings(self.settings):
                log.warning("%s", warning)
            self.secret = check_secret(self.settings.web.secret_file, self.store.links_mailed())
            yield self.store
        finally:
            self.store.close()
            self.notifier.close()

    def run_once(self) -> CycleReport | None:
        """`run --once`: one cycle with the same signal handling; None if it failed."""
        with self._opened():
            return self.run_cycle()

    def run(self) -> int:
        """The daemon: runs until SIGTERM/SIGINT; returns the exit code."""
        alive = threading.Event()
        with self._opened():
            self.schedule_jobs()
            self._start_web()
            next_utc = next_due(self.settings.schedule)
            self.notifier.ready(f"waiting; next run {next_utc:%Y-%m-%d %H:%M} UTC")
            self.notifier.start_watchdog(alive, lambda: self.heartbeat, self.quiet_limit())
            log.info("running: %s", self.plan())
            try:
                if self.settings.schedule.run_on_start:
                    self.run_cycle()
                elif self._catch_up_needed():
                    log.info("a scheduled run was missed while the daemon was down; running it now")
                    self.run_cycle()
                if self.settings.inbox is not None and not self.stop.is_set():
                    self.poll_inbox()  # mail that arrived while the daemon was down
                self._loop()
            finally:
                alive.set()
                self._stop_web()
        return 0

    def _loop(self) -> None:
        while not self.stop.is_set():
            self.beat()
            if self.reload_requested:
                self.reload()
            self.follow_clock()
            self.scheduler.run_pending()
            idle = self.scheduler.idle_seconds
            wait = MAX_SLEEP if idle is None else min(max(idle, 0.0) + 0.05, MAX_SLEEP)
            self.beat(ahead=wait)
            self.wake.wait(wait)
            self.wake.clear()
        log.info("stopped")
