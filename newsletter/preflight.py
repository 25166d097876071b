"""The paths the settings name, checked before any work: a mistake costs one line at start,
not a cycle that fetched everything and then failed.

What the program creates itself: the store's folder (with its parents), and the
archive's folder when the folder above it exists. Everything else (a templates
folder, the inbox's Maildir, the git repository) is the admin's and must be there.
"""

from __future__ import annotations

import os

from .archive.git import GitError, Repo
from .config import ConfigError, Settings
from .credentials import password_path
from .files import already_warned, exposure
from .templates import HTML_TEMPLATE, STYLESHEET, TEXT_TEMPLATE
from .tokens import SECRET_WHAT


def check_paths(
    settings: Settings, *, archive: bool = True, git: bool = True, inbox: bool = True
) -> None:
    """Raise ConfigError (exit 2) naming the setting and the path of the first problem."""
    file = settings.file
    templates = settings.digest.templates
    if templates is not None and not templates.is_dir():
        names = ", ".join((HTML_TEMPLATE, TEXT_TEMPLATE, STYLESHEET))
        raise ConfigError(
            f"{file}: [digest] templates {templates}: no such folder (it may hold {names}; "
            "leave the key out to use the shipped ones)"
        )
    if archive:
        check_archive(settings, git=git and settings.archive.git)
    if inbox and settings.inbox is not None and settings.inbox.maildir is not None:
        maildir = settings.inbox.maildir
        if not (maildir / "new").is_dir() or not (maildir / "cur").is_dir():
            raise ConfigError(
                f"{file}: [inbox] maildir {maildir}: not a Maildir (it needs new/ and cur/, "
                "as the mail server delivering to it makes them)"
            )


def check_archive(settings: Settings, *, git: bool) -> None:
    """The archive's folder exists (made when the folder above it does) and can be written;
    with [archive] git, it is inside a git repository."""
    file, path = settings.file, settings.archive.path
    folder = path.parent
    if not folder.is_dir():
        if not folder.parent.is_dir():
            raise ConfigError(
                f"{file}: [archive] path {path}: neither {folder} nor the folder above it "
                "exists; create it or fix the path"
            )
        try:
            folder.mkdir()
        except OSError as err:
            raise ConfigError(
                f"{file}: [archive] path {path}: cannot create {folder}: {err.strerror}"
            ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"{file}: [archive] path {path}: {folder} cannot be written by this user")
    if git:
        try:
            Repo.containing(folder, settings.archive.git_author)
        except GitError as err:
            raise ConfigError(f"{file}: [archive] git: {err}") from None


def exposed_files(settings: Settings) -> list[str]:
    """The token secret and the password files that group or others can read, one line
    each (a password given in the environment instead is not read from its file)."""
    files = [(settings.web.secret_file, SECRET_WHAT)]
    sections = [("smtp", settings.smtp)]
    if settings.inbox is not None:
        sections.append(("inbox", settings.inbox))  # type: ignore[arg-type]
    for name, section in sections:
        if section.password_env and os.environ.get(section.password_env):
            continue
        path = password_path(section.password_file)
        if path is not None:
            files.append((path, f"the [{name}] password"))
    return [problem for path, what in files if (problem := exposure(path, what))]


def start_warnings(settings: Settings) -> list[str]:
    """`warnings`, to be logged at start; with [security] strict_permissions, a secret or
    password file others can read is a ConfigError instead."""
    exposed = exposed_files(settings)
    if exposed and settings.security.strict_permissions:
        raise ConfigError(f"{exposed[0]} ([security] strict_permissions is on)")
    for problem in exposed:
        already_warned(problem)
    return warnings(settings)


def warnings(settings: Settings) -> list[str]:
    """What works, but probably not as the admin meant: said at start and by `status`."""
    found = exposed_files(settings)
    if not settings.subscribers.dir.is_dir():
        found.append(
            f"[subscribers] dir {settings.subscribers.dir} does not exist: nobody gets a "
            "digest until it does (newsletter subscribe creates it)"
        )
    if not settings.unsubscribes_itself:
        found.append(
            f"neither [inbox] nor [web] is set: nothing reads unsubscribe requests sent to "
            f"{settings.digest.sender_address}; digests ask readers to write there, so a "
            "person must act on them"
        )
    return found
