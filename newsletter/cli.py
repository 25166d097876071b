"""The `newsletter` command: each subcommand parses, calls one function, prints.

Exit codes: 0 success, 1 the work failed (a keyword, the archive, the store,
another instance running), 2 a usage or settings error. Errors are one line,
naming the file, key or address at fault.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from . import __version__
from .archive import ArchiveError
from .config import SETTINGS_ENV, ConfigError, Settings, load_settings, settings_path
from .cycle import CycleReport, archive_sections, publish_archive, run_cycle
from .fsutil import AlreadyRunning
from .store import Store, StoreError

log = logging.getLogger("newsletter")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input from the person at the keyboard: exit code 2."""


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        stream=sys.stderr,
    )


def print_cycle(report: CycleReport) -> None:
    for k in report.keywords:
        if k.error:
            print(f"{k.name}: FAILED: {k.error}")
        else:
            print(f"{k.name}: fetched {k.fetched}, new {k.new}, kept in archive {k.archived}")
    if report.archive_error:
        print(f"archive: FAILED: {report.archive_error}")
    print(report.summary())


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    with Store(settings.store.path) as store:
        report = run_cycle(settings, store)
    print_cycle(report)
    return EXIT_OK if report.ok else EXIT_FAILED


def cmd_archive(settings: Settings, args: argparse.Namespace) -> int:
    with Store(settings.store.path, lock=False) as store:
        sections = archive_sections(settings, store)
    changed = publish_archive(settings, sections)
    counts = ", ".join(f"{name} {len(papers)}" for name, papers in sections.items())
    state = "written" if changed else "unchanged"
    print(f"{settings.archive.path}: {state} ({counts})")
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
            f"The settings file is --settings, else ${SETTINGS_ENV}, else ./settings.toml. "
            "Exit codes: 0 ok, 1 the work failed, 2 usage or settings error."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--settings", metavar="PATH", help="the settings file (TOML)")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="how much to log on stderr (default: info)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser(
        "run",
        help="run the daemon (or one cycle with --once)",
        description="Fetch, diff, archive and mail. With --once: one cycle, then exit "
        "(exit 1 if any keyword failed).",
    )
    run.add_argument("--once", action="store_true", help="run one cycle and exit")
    run.set_defaults(handler=cmd_run)

    archive = commands.add_parser(
        "archive",
        help="rewrite the archive from the store, without fetching",
        description="Rebuild the Markdown archive from the papers already in the store.",
    )
    archive.set_defaults(handler=cmd_archive)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    handler: Callable[[Settings, argparse.Namespace], int] = args.handler
    try:
        settings = load_settings(settings_path(args.settings))
        return handler(settings, args)
    except (ConfigError, UsageError) as err:
        print(err, file=sys.stderr)
        return EXIT_USAGE
    except (StoreError, AlreadyRunning, ArchiveError) as err:
        print(err, file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
