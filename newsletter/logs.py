"""Logging to stderr: timestamps in a terminal, syslog priorities under systemd; and text
made safe to print.

Under systemd (stderr is the stream named by $JOURNAL_STREAM) the journal adds
its own timestamps, so we write `<N>` priority prefixes instead, which journald
turns into levels (`journalctl -p warning` works). In a terminal, a long cycle
shows one progress line that log lines do not garble.

Log lines and what the commands print carry text from outside (a name in a
subscriber file, a bounce report's diagnostic, an error from a server), so
control characters in it are shown escaped (`printable`): an escape sequence
cannot clear the admin's screen or retitle the terminal, nor a line break
forge a log line.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import TextIO

# C0 and C1 controls and DEL (escape sequences, line breaks, the bell), and the
# bidirectional overrides that reorder what a terminal shows.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` as one line, every control character shown as an escape (\\x1b)."""
    return _UNPRINTABLE.sub(_escape, text)


class _SafeFormatter(logging.Formatter):
    """The message's control characters escaped (a traceback after it stays as it is)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = printable(record.message)
        return super().formatMessage(record)


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


class _JournalFormatter(_SafeFormatter):
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
            _SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The arxiv client logs every page at INFO; ours already says what matters.
    quiet = logging.DEBUG if level.lower() == "debug" else logging.WARNING
    for name in ("arxiv", "urllib3", "schedule"):
        logging.getLogger(name).setLevel(quiet)
    return progress
