"""Logging to stderr: timestamps in a terminal, syslog priorities under systemd.

Under systemd (stderr is the stream named by $JOURNAL_STREAM) the journal adds
its own timestamps, so we write `<N>` priority prefixes instead, which journald
turns into levels (`journalctl -p warning` works). In a terminal, a long cycle
shows one progress line that log lines do not garble.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


def under_journal(stream: TextIO, environ: dict[str, str] | None = None) -> bool:
    """True when `stream` is connected to the journal (systemd sets JOURNAL_STREAM=dev:inode)."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        stat = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return False
    return (stat.st_dev, stat.st_ino) == (int(device), int(inode))


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        priority = _PRIORITY.get(record.levelno, 6)
        return "\n".join(f"<{priority}>{line}" for line in super().format(record).splitlines())


class Progress:
    """One self-overwriting status line on a terminal; nothing otherwise."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.enabled = stream.isatty()
        self.shown = False

    def __call__(self, text: str) -> None:
        if self.enabled:
            self.stream.write("\r\033[K" + text)
            self.stream.flush()
            self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = False


class _Handler(logging.StreamHandler):
    """Clears the progress line before a log line, so the two never mix."""

    def __init__(self, stream: TextIO, progress: Progress):
        super().__init__(stream)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        self.progress.clear()
        super().emit(record)


def setup_logging(level: str, stream: TextIO | None = None) -> Progress:
    stream = stream or sys.stderr
    progress = Progress(stream)
    handler = _Handler(stream, progress)
    if under_journal(stream):
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S"
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The arxiv client logs every page at INFO; ours already says what matters.
    quiet = logging.DEBUG if level.lower() == "debug" else logging.WARNING
    for name in ("arxiv", "urllib3", "schedule"):
        logging.getLogger(name).setLevel(quiet)
    return progress
