"""Values signed with one secret that tie mail to a subscription: unsubscribe tokens and
the Message-IDs of digests.

Both are HMACs under a secret kept in a file (mode 0600), created on the first
start. Nothing is stored per subscriber: a value is checked by computing it
again. Each is bound to the subscription (the address and its file's
`created`), so a token that leaked unsubscribes nobody after they subscribe
again, and a bounce report counts only when it quotes the Message-ID of a
digest we sent to that subscription.

Losing the secret invalidates every link already mailed, so a missing secret
file is an error once links have gone out (`check_secret`), never silently a
new key; `newsletter new-secret` makes a new one on purpose.
"""

from __future__ import annotations

import base64
import hmac
import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol, TypeVar

from .addresses import address_key
from .errors import NewsletterError
from .files import check_private, write_atomic

log = logging.getLogger(__name__)

TOKEN_LENGTH = 32  # base32 characters of a token: 20 bytes of HMAC-SHA256
SIGNATURE_LENGTH = 32  # hex digits in a digest's Message-ID (128 bits; hex: cheap per message)
# Tokens of the release before tokens were bound to a subscription (an HMAC of the
# address alone) still unsubscribe subscriptions that began before this release first
# ran, for this long after it did: the links in digests already mailed keep working.
LEGACY_TOKEN_DAYS = 90


class SecretError(NewsletterError):
    """The secret file is unusable; str() names it."""


class Subscription(Protocol):
    @property
    def email(self) -> str: ...
    @property
    def created(self) -> str: ...


S = TypeVar("S", bound=Subscription)


SECRET_WHAT = "the token secret ([web] secret_file)"


def load_secret(path: Path) -> bytes | None:
    """The secret, or None when there is no file. A file others can read is a warning
    naming it ([security] strict_permissions makes it an error at start): whoever reads
    it can unsubscribe anyone."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise SecretError(f"{path}: cannot read the token secret: {err}") from None
    if len(text) < 32:
        raise SecretError(f"{path}: the token secret is too short; restore it from a backup")
    check_private(path, SECRET_WHAT)
    return text.encode()


def create_secret(path: Path) -> bytes:
    """Write a new secret (0600), replacing any; the caller says what that invalidates."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, secrets.token_hex(32).encode() + b"\n", mode=0o600, name="secret")
    return load_secret(path) or b""


def load_or_create_secret(path: Path) -> bytes:
    """Read the secret, creating it the first time; for callers that cannot know whether
    links went out (tests, tools). The program itself uses `check_secret`."""
    return load_secret(path) or create_secret(path)


def check_secret(path: Path, links_mailed: str) -> bytes:
    """The secret at start. When the file is missing it is created only if no link
    signed with it can have gone out (`links_mailed` is "" then, else what shows they
    did): otherwise every link already mailed would silently stop working."""
    secret = load_secret(path)
    if secret is not None:
        return secret
    if links_mailed:
        raise SecretError(
            f"{path}: the token secret is missing, but links signed with it were mailed "
            f"({links_mailed}); restore the file from a backup, or run `newsletter new-secret` "
            "to make a new one on purpose (every unsubscribe link already mailed stops working)"
        )
    secret = create_secret(path)
    log.info("%s: created the token secret; keep it with your backups", path)
    return secret


def _b32(digest: bytes, length: int) -> str:
    return base64.b32encode(digest).decode().lower()[:length]


def token(secret: bytes, address: str, since: str) -> str:
    """The unsubscribe token of one subscription: the address, and its `created`."""
    message = f"unsubscribe\0{address_key(address)}\0{since}".encode()
    return _b32(hmac.digest(secret, message, "sha256")[:20], TOKEN_LENGTH)


def legacy_token(secret: bytes, address: str) -> str:
    """The token of the release before tokens were bound to a subscription."""
    message = f"unsubscribe\0{address_key(address)}".encode()
    return _b32(hmac.digest(secret, message, "sha256")[:20], TOKEN_LENGTH)


def legacy_cutoff(bound_since: str, now: datetime) -> str:
    """Subscriptions created before this time still accept their legacy token: the time
    this release first opened the store, for LEGACY_TOKEN_DAYS; "" after that."""
    if not bound_since:
        return ""
    if now - datetime.fromisoformat(bound_since) > timedelta(days=LEGACY_TOKEN_DAYS):
        return ""
    return bound_since


@dataclass(frozen=True)
class Tokens:
    """Token → subscription, for one roster: today's tokens, and the legacy ones of
    subscriptions older than `legacy_before`."""

    secret: bytes
    legacy_before: str = ""

    def of(self, person: Subscription) -> list[str]:
        tokens = [token(self.secret, person.email, person.created)]
        if self.legacy_before and person.created < self.legacy_before:
            tokens.append(legacy_token(self.secret, person.email))
        return tokens

    def index(self, people: Iterable[S]) -> dict[str, S]:
        return {tok: person for person in people for tok in self.of(person)}

    def find(self, candidate: str, people: Iterable[S]) -> S | None:
        """The subscription this token belongs to, or None; compared in constant time."""
        found = None
        for person in people:
            for tok in self.of(person):
                if hmac.compare_digest(tok, candidate):
                    found = person
        return found


_DIGEST_ID = re.compile(
    rf"^<digest\.(\d{{1,9}})\.([0-9a-f]{{{SIGNATURE_LENGTH}}})@([^<>@\s]+)>$", re.I
)


def digest_message_id(secret: bytes, cycle: int, address: str, since: str, domain: str) -> str:
    """A digest's Message-ID: unique per subscription and cycle, the same if the message
    is sent again, and signed, so that a bounce report can prove it answers that mail."""
    message = f"message-id\0{cycle}\0{address_key(address)}\0{since}".encode()
    signature = hmac.digest(secret, message, "sha256").hex()[:SIGNATURE_LENGTH]
    return f"<digest.{cycle}.{signature}@{domain}>"


def is_digest_to(
    secret: bytes, message_id: str, address: str, since: str, domain: str
) -> int | None:
    """The cycle when `message_id` is the one we gave the digest of that cycle sent to
    this subscription; None otherwise. Compared in constant time."""
    match = _DIGEST_ID.match(message_id.strip())
    if match is None or match.group(3).lower() != domain.lower():
        return None
    cycle = int(match.group(1))
    expected = digest_message_id(secret, cycle, address, since, domain)
    return cycle if hmac.compare_digest(expected.lower(), match.group(0).lower()) else None
