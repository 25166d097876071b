"""The one base class of every error shown to the admin as one line.

Each module raises its own subclass, whose str() names the file, key or
address at fault; the command line catches this class alone and exits with
its `exit_code`, so a new error cannot slip past as a traceback.
"""

from __future__ import annotations

EXIT_FAILED, EXIT_USAGE = 1, 2


class NewsletterError(Exception):
    """A problem the admin can act on; str() is the one line to show."""

    exit_code = EXIT_FAILED  # the work failed; EXIT_USAGE for bad input or settings


class UsageError(NewsletterError):
    """Bad input from the person at the keyboard (a command line, a settings file)."""

    exit_code = EXIT_USAGE
