"""Passwords for the mail servers we log in to (SMTP, IMAP), never from settings.toml.

settings.toml is meant to be readable and kept in git, so it only names where
a password is: an environment variable, or a file (under systemd, a
LoadCredential= name, looked up in $CREDENTIALS_DIRECTORY).
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import NewsletterError
from .files import check_private


class CredentialError(NewsletterError):
    """The password cannot be read; str() names the setting to fix."""


def read_password(section: str, password_env: str, password_file: Path | None) -> str:
    """The password from `password_env` when that variable is set, else from `password_file`.

    A password_file that does not exist is looked up by name in
    $CREDENTIALS_DIRECTORY, so `LoadCredential=smtp-password:/etc/...` works
    with `password_file = "smtp-password"`.
    """
    if password_env and os.environ.get(password_env):
        return os.environ[password_env]
    path = password_path(password_file)
    if path is None:
        raise CredentialError(
            f"[{section}] password_env: the environment variable {password_env} is not set"
        )
    try:
        password = path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as err:
        raise CredentialError(f"[{section}] password_file {path}: {err.strerror}") from None
    check_private(path, f"the [{section}] password")
    return password


def password_path(password_file: Path | None) -> Path | None:
    """The file a password is read from: `password_file`, or the credential of its name."""
    if password_file is None:
        return None
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if credentials and not password_file.exists():
        candidate = Path(credentials) / password_file.name
        if candidate.exists():
            return candidate
    return password_file
