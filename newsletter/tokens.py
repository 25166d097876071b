"""Per-subscriber unsubscribe tokens that nobody can guess or forge.

A token is an HMAC of the address under a secret kept in a file (mode 0600)
created on first start. Nothing is stored per subscriber: a token is checked
by recomputing it, and it stays valid across restarts and settings changes
as long as the secret file is kept.
"""

from __future__ import annotations

import base64
import hmac
import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from .addresses import address_key
from .errors import NewsletterError
from .files import write_atomic

T = TypeVar("T")

TOKEN_LENGTH = 32  # base32 characters of a token: 20 bytes of HMAC-SHA256


class SecretError(NewsletterError):
    """The secret file is unusable; str() names it."""


def load_or_create_secret(path: Path) -> bytes:
    """Read the secret, creating it (0600) the first time. Never replaces an existing one:
    that would silently invalidate every unsubscribe link already mailed."""
    secret = load_secret(path)
    if secret is not None:
        return secret
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, secrets.token_hex(32).encode() + b"\n", mode=0o600, name="secret")
    return load_secret(path) or b""


def load_secret(path: Path) -> bytes | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise SecretError(f"{path}: cannot read the token secret: {err}") from None
    if len(text) < 32:
        raise SecretError(f"{path}: the token secret is too short; restore it from a backup")
    if os.stat(path).st_mode & 0o077:
        os.chmod(path, 0o600)
    return text.encode()


def token(secret: bytes, address: str, purpose: str = "unsubscribe") -> str:
    digest = hmac.digest(secret, f"{purpose}\0{address_key(address)}".encode(), "sha256")
    return base64.b32encode(digest[:20]).decode().lower()


def find_by_token(
    secret: bytes, candidate: str, people: Iterable[T], address_of: Callable[[T], str]
) -> T | None:
    """The person whose token this is, or None; compared in constant time."""
    for person in people:
        if hmac.compare_digest(token(secret, address_of(person)), candidate):
            return person
    return None
