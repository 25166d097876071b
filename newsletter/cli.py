"""The `newsletter` command: each subcommand parses, calls one function, prints.

Exit codes: 0 success, 1 the work failed (a keyword, the archive, the store,
another instance running), 2 a usage or settings error. Errors are one line,
naming the file, key or address at fault, and what is printed goes through
`say`, so text from outside cannot reach the terminal as control characters.
Past 400 lines as one piece: a short handler per subcommand, and the parser
that lists them all.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import logging
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO
from zoneinfo import ZoneInfo

from . import __version__
from .addresses import address_key
from .cadence import DAILY, WEEKLY, Cadence, CadenceError, parse_cadence
from .config import SETTINGS_ENV, Settings, load_settings, settings_path
from .errors import EXIT_FAILED, NewsletterError, UsageError
from .logs import printable, setup_logging
from .preflight import check_paths, start_warnings
from .sending.plan import is_new_subscription
from .status import format_status, gather
from .store import Store
from .subscribers import SubscriberError, load_subscribers, remove_subscriber, save_subscriber
from .tokens import check_secret, create_secret, load_secret

if TYPE_CHECKING:
    # The commands that fetch, render or mail import those modules when they run, so that
    # the others (status, subscribe, init ...) start without jinja2, premailer and arxiv.
    from .cycle import CycleReport

EXIT_OK = 0
log = logging.getLogger("newsletter")


def shown(text: str) -> str:
    """Echo input in an error line; quoted when it holds line breaks or other controls,
    so the error stays one line."""
    return text if text.isprintable() else repr(text)


def say(text: str, file: TextIO | None = None) -> None:
    """Print a line for a terminal: text from outside it may hold (a name, a server's
    error) cannot carry an escape sequence or a line break."""
    print(printable(text), file=file or sys.stdout)


def print_cycle(report: CycleReport) -> None:
    for k in report.keywords:
        if k.error:
            say(f"{k.name}: {'FAILED' if k.tried else 'NOT TRIED'}: {k.error}")
        else:
            say(f"{k.name}: fetched {k.fetched}, new {k.new}, kept in archive {k.archived}")
    if report.archive_error:
        say(f"archive: FAILED: {report.archive_error}")
    if report.publish:
        say(report.publish.summary())
    say(report.delivery.summary())
    say(report.summary())


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from .daemon import Daemon  # imported when used: see the note at the imports

    check_paths(settings)
    daemon = Daemon(settings, progress=args.progress)
    if not args.once:
        return daemon.run()
    report = daemon.run_once()
    if report is None:
        return EXIT_FAILED
    print_cycle(report)
    return EXIT_OK if report.ok else EXIT_FAILED


def _cadence(args: argparse.Namespace) -> Cadence | None:
    """The cadence the options ask for; None: keep the file's (daily for a new one)."""
    if args.daily and args.weekday:
        raise UsageError("newsletter subscribe: --weekday is for --weekly digests, not --daily")
    if args.daily:
        return Cadence(DAILY)
    if not (args.weekly or args.weekday):
        return None
    try:
        return parse_cadence(WEEKLY, args.weekday or "")
    except CadenceError as err:
        raise UsageError(f"newsletter subscribe: --weekday {err}") from None


def cmd_subscribe(settings: Settings, args: argparse.Namespace) -> int:
    cadence = _cadence(args)
    try:
        subscriber, created = save_subscriber(
            settings.subscribers.dir,
            args.email,
            args.keyword,
            settings.keyword_names,
            name=args.name,
            restart=_is_bouncing(settings, args.email),
            cadence=cadence,
        )
    except SubscriberError as err:
        raise UsageError(f"{shown(args.email)}: {err}") from None
    verb = "subscribed" if created else "updated"
    keywords = ", ".join(subscriber.keywords)
    say(
        f"{subscriber.email}: {verb} to {keywords}, {subscriber.cadence.describe()} "
        f"({subscriber.file})"
    )
    return EXIT_OK


def _is_bouncing(settings: Settings, email: str) -> bool:
    """Subscribing a bouncing address again restarts its subscription (and retries it)."""
    if not settings.store.path.exists():
        return False
    with Store(settings.store.path, lock=False) as store:
        return store.deliveries.is_bouncing(address_key(email.strip()))


def cmd_unsubscribe(settings: Settings, args: argparse.Namespace) -> int:
    try:
        removed = remove_subscriber(settings.subscribers.dir, args.email)
    except SubscriberError as err:
        raise UsageError(f"{shown(args.email)}: {err}") from None
    if removed is None:
        say(f"{shown(args.email)}: not subscribed", file=sys.stderr)
        return EXIT_FAILED
    say(f"{args.email}: unsubscribed (removed {removed})")
    return EXIT_OK


def cmd_subscribers(settings: Settings, args: argparse.Namespace) -> int:
    if not settings.subscribers.dir.is_dir():
        raise UsageError(
            f"{settings.file}: [subscribers] dir {settings.subscribers.dir} does not exist "
            "(newsletter subscribe creates it)"
        )
    roster = load_subscribers(settings.subscribers.dir, settings.keyword_names)
    deliveries = {}
    if settings.store.path.exists():
        with Store(settings.store.path, lock=False) as store:
            deliveries = store.deliveries.all()
    for subscriber in roster.subscribers:
        delivery = deliveries.get(subscriber.key)
        if is_new_subscription(subscriber, delivery):
            last, state = "never", "new (welcome issue next)"
        else:
            last = f"{delivery.last_sent or 'never'} (cycle {delivery.last_cycle})"
            state = delivery.state
            if delivery.state == "active" and delivery.failures:
                state = f"pending ({delivery.failures} temporary failures: {delivery.last_error})"
            if delivery.state == "bouncing":
                state = (
                    f"bouncing ({delivery.bounces} refusals: {delivery.last_error}; no digests "
                    "until they write to the list, or `newsletter subscribe` again)"
                )
        name = f" ({subscriber.name})" if subscriber.name else ""
        keywords = ", ".join(subscriber.keywords)
        cadence = subscriber.cadence.describe()
        say(f"{subscriber.email}{name}: {keywords}; {cadence}; last delivery {last}; {state}")
    for problem in roster.problems:
        say(f"skipped: {problem}", file=sys.stderr)
    say(f"{len(roster.subscribers)} subscribers, {len(roster.problems)} files skipped")
    return EXIT_OK


def cmd_preview(settings: Settings, args: argparse.Namespace) -> int:
    from .sending.preview import preview_next

    try:
        found = preview_next(settings, args.email)
    except SubscriberError as err:
        raise UsageError(f"{shown(args.email)}: {err}") from None
    zone = ZoneInfo(settings.schedule.timezone)
    at = found.goes_out.astimezone(zone).strftime("%Y-%m-%d %H:%M")
    when = f"{found.cadence}; next digest at the cycle of {at} ({settings.schedule.timezone})"
    if found.html is None or found.text is None:
        say(f"{args.email}: nothing new for this subscriber; no digest would be sent ({when})")
        return EXIT_OK
    body = found.text if args.text else found.html
    if args.out:
        Path(args.out).write_text(body, encoding="utf-8")
        say(f"{args.email}: {found.subject} -> {args.out}")
        say(f"{args.email}: {when}")
    else:
        sys.stdout.write(body)
        say(f"{args.email}: {when}", file=sys.stderr)  # stdout is the digest alone
    return EXIT_OK


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    status = gather(settings)
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print(format_status(status))
    return EXIT_OK


def cmd_inbox(settings: Settings, args: argparse.Namespace) -> int:
    if not args.once:
        raise UsageError(
            "newsletter inbox: add --once (read the mailbox once and exit); "
            "the daemon reads it every [inbox] poll_seconds"
        )
    if settings.inbox is None:
        raise UsageError(
            f"{settings.file}: [inbox] is not configured (set maildir, or imap_host with "
            "username and password_env)"
        )
    from .inbox.poll import poll_inbox

    check_paths(settings, archive=False)
    with Store(settings.store.path) as store:
        for warning in start_warnings(settings):
            log.warning("%s", warning)
        secret = check_secret(settings.web.secret_file, store.links_mailed())
        report = poll_inbox(settings, store, secret=secret)
    say(report.summary())
    return EXIT_OK if report.ok else EXIT_FAILED


def cmd_new_secret(settings: Settings, args: argparse.Namespace) -> int:
    """A new token secret, on purpose: what it invalidates is said first, and an existing
    one is replaced only with --replace."""
    path = settings.web.secret_file
    exists = load_secret(path) is not None
    if exists and not args.replace:
        raise UsageError(
            f"{path}: a token secret exists; a new one stops every unsubscribe link already "
            "mailed from working, and bounce reports about digests already sent from "
            "counting. Add --replace to do it anyway"
        )
    create_secret(path)
    say(
        f"{path}: a new token secret. Every unsubscribe link mailed before now no longer "
        "works (each reader's next digest carries a working one; mail saying "
        '"unsubscribe" still works, after a confirmation), and bounce reports about '
        "digests sent before now no longer count. A running daemon uses it after "
        "`systemctl reload newsletter` (SIGHUP)."
    )
    return EXIT_OK


def cmd_archive(settings: Settings, args: argparse.Namespace) -> int:
    from .cycle import publish_archive, write_archive_files

    if args.publish and not settings.archive.git:
        raise UsageError(f"{settings.file}: --publish needs [archive] git = true")
    check_paths(settings, git=args.publish, inbox=False)
    # Publishing runs git in the archive's repository: take the instance lock, so a
    # running daemon's commit and ours cannot collide. Rebuilding alone needs no lock.
    with Store(settings.store.path, lock=args.publish) as store:
        update = write_archive_files(settings, store)
        counts = ", ".join(f"{name} {len(papers)}" for name, papers in update.sections.items())
        state = "written" if update.readme_written else "unchanged"
        say(f"{settings.archive.path}: {state} ({counts})")
        if settings.archive.rotate:
            pages = sum(1 for path in update.written if path.suffix == ".md")
            removed = len(update.removed)
            print(f"monthly pages: {update.pages}, {pages} written, {removed} removed")
        if settings.archive.feeds:
            feeds = sum(1 for path in update.written if path.suffix == ".xml")
            print(f"feeds: {update.feeds}, {feeds} written")
        if not args.publish:
            return EXIT_OK
        report = publish_archive(settings)
    say(report.summary())
    return EXIT_OK if report.error is None else EXIT_FAILED


def add_common_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """--settings and --log-level, accepted before the subcommand (`top`) and after it."""
    parser.add_argument(
        "--settings",
        metavar="PATH",
        default=None if top else argparse.SUPPRESS,
        help="the settings file (TOML)",
    )
    parser.add_argument(
        "--log-level",
        default="info" if top else argparse.SUPPRESS,
        choices=["debug", "info", "warning", "error"],
        help="how much to log on stderr (default: info)",
    )


def cmd_init(settings: Settings | None, args: argparse.Namespace) -> int:
    """A new list's folder: the commented settings.toml (its paths are relative to it, so
    they suit any folder), subscribers/ and archive/; never overwrites a settings file."""
    folder = Path(args.folder)
    target = folder / "settings.toml"
    text = importlib.resources.files("newsletter.templates").joinpath("settings.toml").read_text()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with open(target, "x", encoding="utf-8") as file:  # "x": fails if it exists
            file.write(text)
    except FileExistsError:
        raise UsageError(f"{target}: already exists; nothing was changed") from None
    for name in ("subscribers", "archive"):
        (folder / name).mkdir(exist_ok=True)
    settings_arg = shlex.quote(str(target.resolve()))
    print(
        f"{target}: written, with {folder / 'subscribers'} and {folder / 'archive'}. Next:\n"
        f"  1. Edit {target}: your keywords, [digest] from, and [smtp] for your mail server.\n"
        f"  2. newsletter --settings {settings_arg} subscribe you@example.org --keyword NAME\n"
        f"  3. newsletter --settings {settings_arg} run --once     (one cycle, then exit)\n"
        f"  4. As a service: make install-service SETTINGS={settings_arg}  (docs/service.md)"
    )
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newsletter",
        description=(
            "Daily Papers: fetch the newest arXiv papers for each keyword in settings.toml, "
            "keep a capped Markdown archive, and mail each subscriber a digest of the "
            "keywords they chose."
        ),
        epilog=(
            f"The settings file is --settings (before or after the command), else "
            f"${SETTINGS_ENV}, else ./settings.toml. Exit codes: 0 ok, 1 the work failed "
            "(one line says what), 2 a usage or settings error (nothing was done)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_common_options(parser, top=True)
    # The same options after the subcommand (`newsletter status --settings X`) override
    # those before it; SUPPRESS keeps an absent one from resetting the other.
    common = argparse.ArgumentParser(add_help=False)
    add_common_options(common, top=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    init = commands.add_parser(
        "init",
        parents=[common],
        help="start a new list in a folder: settings.toml, subscribers/, archive/",
        description="Write a commented settings.toml (every setting, with its default), and "
        "the subscribers/ and archive/ folders, into FOLDER (made if needed). Refuses to "
        "overwrite a settings.toml that is there.",
    )
    init.add_argument("folder", metavar="FOLDER")
    init.set_defaults(handler=cmd_init, needs_settings=False)

    run = commands.add_parser(
        "run",
        parents=[common],
        help="run the daemon (or one cycle with --once)",
        description="Run cycles (fetch, diff, archive, mail) at the times in [schedule], "
        "until SIGTERM or SIGINT; SIGHUP reloads the settings. With --once: one cycle, "
        "then exit: 1 if a keyword failed or was not tried, the archive or git failed, "
        "or the mail server could not be used (its digests wait for the next cycle).",
    )
    run.add_argument("--once", action="store_true", help="run one cycle and exit")
    run.set_defaults(handler=cmd_run)

    archive = commands.add_parser(
        "archive",
        parents=[common],
        help="rewrite the archive from the store, without fetching",
        description="Rebuild the Markdown archive from the papers already in the store "
        "(with the monthly pages and feeds when [archive] rotate or feeds is on). It does "
        "not touch git unless --publish is given; the next cycle commits the changes.",
    )
    archive.add_argument(
        "--publish",
        action="store_true",
        help="then commit the archive files and push them, as a cycle does "
        "(needs [archive] git = true; exits 1 if git fails)",
    )
    archive.set_defaults(handler=cmd_archive)

    subscribe = commands.add_parser(
        "subscribe",
        parents=[common],
        help="add a subscriber, or change their keywords or cadence",
        description="Create or update the subscriber's file in the subscribers directory. "
        "A new subscriber's first digest is a welcome issue with the latest papers, "
        "whatever the cadence.",
    )
    subscribe.add_argument("email", help="one address, like name@example.org")
    subscribe.add_argument(
        "--keyword",
        action="append",
        metavar="NAME",
        help="a keyword name from settings.toml (repeat for several; case does not matter); "
        "needed for a new subscriber, left out to keep an existing one's",
    )
    subscribe.add_argument("--name", help="how to greet them (optional)")
    how_often = subscribe.add_mutually_exclusive_group()
    how_often.add_argument(
        "--daily", action="store_true", help="a digest at every cycle with news (the default)"
    )
    how_often.add_argument(
        "--weekly",
        action="store_true",
        help="one digest a week, at the first cycle on or after --weekday, with every new "
        "paper since the last",
    )
    subscribe.add_argument(
        "--weekday",
        metavar="DAY",
        help="the weekly digest's day, in [schedule] timezone (default monday); implies --weekly",
    )
    subscribe.set_defaults(handler=cmd_subscribe)

    unsubscribe = commands.add_parser(
        "unsubscribe",
        parents=[common],
        help="remove a subscriber",
        description="Delete the subscriber's file.",
    )
    unsubscribe.add_argument("email")
    unsubscribe.set_defaults(handler=cmd_unsubscribe)

    subscribers = commands.add_parser(
        "subscribers",
        parents=[common],
        help="list subscribers with keywords, last delivery and state",
        description="List every subscriber file with its keywords, the last delivery and "
        "the state (new, active, pending, bouncing); problems with files go to stderr.",
    )
    subscribers.set_defaults(handler=cmd_subscribers)

    preview_parser = commands.add_parser(
        "preview",
        parents=[common],
        help="render a subscriber's next digest without sending it",
        description="Render the digest this subscriber would get next (HTML, or the text "
        "part with --text), without sending and without changing any state.",
    )
    preview_parser.add_argument("email")
    preview_parser.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")
    preview_parser.add_argument("--text", action="store_true", help="the plain-text part")
    preview_parser.set_defaults(handler=cmd_preview)

    status_parser = commands.add_parser(
        "status",
        parents=[common],
        help="last cycles, next run, subscribers, pending deliveries",
        description="Show the last cycles (when, duration, per keyword fetched/new/errors), "
        "the next scheduled run, subscribers (active, new, bouncing) and pending deliveries. "
        "Reads the store without the daemon's lock; works while the daemon runs.",
    )
    status_parser.add_argument("--json", action="store_true", help="machine-readable output")
    status_parser.set_defaults(handler=cmd_status)

    inbox = commands.add_parser(
        "inbox",
        parents=[common],
        help="act on the commands mailed to the newsletter (with --once)",
        description="Read the [inbox] mailbox once: act on subscribe, keywords, unsubscribe "
        "and help mails, count bounce reports, send the replies. Exit 1 if the mailbox or "
        "the SMTP server could not be used.",
    )
    inbox.add_argument("--once", action="store_true", help="read the mailbox once and exit")
    inbox.set_defaults(handler=cmd_inbox)

    new_secret = commands.add_parser(
        "new-secret",
        parents=[common],
        help="make a new token secret, on purpose (invalidates every link already mailed)",
        description="Write a new token secret to [web] secret_file: when the old one is lost "
        "(the daemon refuses to start without it once links were mailed), or to revoke "
        "every unsubscribe link mailed so far. Those links stop working, and bounce "
        "reports about digests already sent no longer count.",
    )
    new_secret.add_argument(
        "--replace", action="store_true", help="replace a secret file that exists"
    )
    new_secret.set_defaults(handler=cmd_new_secret)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.progress = setup_logging(args.log_level)
    handler: Callable[[Settings, argparse.Namespace], int] = args.handler
    try:
        if not getattr(args, "needs_settings", True):
            return handler(None, args)  # type: ignore[arg-type]
        settings = load_settings(settings_path(args.settings))
        return handler(settings, args)
    except NewsletterError as err:
        say(str(err), file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `newsletter status --json | head`: the reader left, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except OSError as err:  # a file we had no reason to expect trouble with: still one line
        say(f"{err.filename or 'error'}: {err.strerror or err}", file=sys.stderr)
        return EXIT_FAILED
