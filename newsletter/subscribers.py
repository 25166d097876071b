"""Subscriber files: one small TOML file per person in `subscribers/`.

Files, not database rows, so an admin can review subscriptions in git and edit
them by hand, and tools can add and remove them between cycles. The daemon
reads the directory at every cycle; a broken file is reported and skipped,
never allowed to stop everyone else's digest.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tomllib
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import tomli_w

from .addresses import AddressError, address_key, normalize_address
from .cadence import DAILY, Cadence, CadenceError, parse_cadence
from .errors import NewsletterError
from .files import write_atomic

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 64 * 1024
MAX_NAME = 100
# Characters of a file name before ".toml". An address may have 254, and most file
# systems allow 255 bytes a name: a longer one could not even be looked up
# (ENAMETOOLONG), nor its temp file (".NAME.PID.tmp") written.
MAX_FILE_NAME = 100
KNOWN_KEYS = {"email", "name", "keywords", "source", "created", "confirmed", "cadence", "weekday"}


class SubscriberError(NewsletterError):
    """Bad subscriber input; str() is one line naming the address or file."""


@dataclass(frozen=True)
class Subscriber:
    email: str
    keywords: tuple[str, ...]
    name: str = ""
    source: str = ""
    created: str = ""  # ISO time the subscription started; a new one means a new welcome
    confirmed: str = ""
    file: Path | None = None
    cadence: Cadence = field(default_factory=Cadence)  # daily unless the file says weekly

    @property
    def key(self) -> str:
        return address_key(self.email)


def canonical_keywords(requested: Sequence[str], known: Sequence[str]) -> tuple[str, ...]:
    """Map names to their spelling in settings (case-insensitive), in settings order.

    Raises SubscriberError naming the unknown ones and listing the valid names.
    """
    by_fold = {k.casefold(): k for k in known}
    wanted = {" ".join(r.split()).casefold() for r in requested}
    unknown = [r for r in requested if " ".join(r.split()).casefold() not in by_fold]
    if unknown:
        raise SubscriberError(
            f"unknown keyword {', '.join(repr(u) for u in unknown)}; "
            f"valid keywords: {', '.join(known)}"
        )
    if not wanted:
        raise SubscriberError(f"choose at least one keyword; valid keywords: {', '.join(known)}")
    return tuple(k for k in known if k.casefold() in wanted)


def check_name(name: str) -> str:
    """The name as it will be greeted and saved: spaces folded; refused when it holds a
    line break or another control character, or bytes that were not UTF-8 (which a
    command line hands over as lone surrogates), since neither survives a file."""
    if any(c in name for c in "\r\n\0"):
        raise SubscriberError("the name must not contain line breaks")
    name = " ".join(name.split())
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        raise SubscriberError("the name must be UTF-8 text without control characters")
    if len(name) > MAX_NAME:
        raise SubscriberError(f"the name must be at most {MAX_NAME} characters")
    return name


def file_name(address: str) -> str:
    """A readable, safe, bounded file name for an address; a hash keeps rewritten or
    shortened names unique. Only a name: the address inside the file is the identity."""
    key = address_key(address)
    digest = hashlib.sha256(key.encode()).hexdigest()
    safe = re.sub(r"[^a-z0-9@._+-]", "_", key)
    if safe != key or safe.startswith("."):
        safe = f"{safe.lstrip('.')}-{digest[:8]}"
    if len(safe) > MAX_FILE_NAME:
        safe = f"{safe[: MAX_FILE_NAME - 17]}-{digest[:16]}"
    return f"{safe}.toml"


def parse_subscriber(path: Path, known: Sequence[str]) -> Subscriber:
    """Read one subscriber file; raises SubscriberError with the reason."""
    try:
        with open(path, "rb") as file:  # one open and read: this runs for every file, every cycle
            data = file.read(MAX_FILE_BYTES + 1)
            if len(data) > MAX_FILE_BYTES:
                size = os.fstat(file.fileno()).st_size
                raise SubscriberError(f"file is {size} bytes; a subscriber file is at most 64 KiB")
        raw = tomllib.loads(data.decode("utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise SubscriberError(f"cannot read: {err}") from None
    except tomllib.TOMLDecodeError as err:
        raise SubscriberError(f"not valid TOML: {err}") from None
    unknown = sorted(set(raw) - KNOWN_KEYS)
    if unknown:
        known_keys = ", ".join(sorted(KNOWN_KEYS))
        raise SubscriberError(f"unknown key {unknown[0]!r} (known: {known_keys})")
    email = raw.get("email")
    if not isinstance(email, str):
        raise SubscriberError("email must be a string like name@example.org")
    keywords = raw.get("keywords")
    if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
        raise SubscriberError('keywords must be a list of keyword names, like ["MLLM"]')
    texts = {k: raw.get(k, "") for k in ("name", "source", "created", "confirmed")}
    for key, value in texts.items():
        if not isinstance(value, str):
            raise SubscriberError(f"{key} must be a string")
    try:
        address = normalize_address(email)
    except AddressError as err:
        raise SubscriberError(str(err)) from None
    return Subscriber(
        email=address,
        keywords=canonical_keywords(keywords, known),
        name=check_name(texts["name"]),
        source=texts["source"],
        created=texts["created"],
        confirmed=texts["confirmed"],
        file=path,
        cadence=read_cadence(raw),
    )


def read_cadence(raw: dict[str, object]) -> Cadence:
    """`cadence` and `weekday` of a file's table; absent, the digest is daily. A bad value
    is a SubscriberError naming the key."""
    every, weekday = raw.get("cadence", DAILY), raw.get("weekday", "")
    if not isinstance(every, str):
        raise SubscriberError('cadence must be "daily" or "weekly"')
    if not isinstance(weekday, str):
        raise SubscriberError('weekday must be a day of the week like "friday"')
    try:
        parse_cadence(every)
    except CadenceError as err:
        raise SubscriberError(f"cadence {err}") from None
    try:
        return parse_cadence(every, weekday)
    except CadenceError as err:
        raise SubscriberError(f"weekday {err}") from None


@dataclass(frozen=True)
class Roster:
    """Everyone who gets a digest, plus what was wrong with the files that were skipped."""

    subscribers: tuple[Subscriber, ...]
    problems: tuple[str, ...]


def _toml_files(directory: Path) -> list[Path]:
    """What `sorted(directory.glob("*.toml"))` gives, sorted as names: for 10,000
    files that is several times faster than comparing Paths."""
    with os.scandir(directory) as entries:
        names = sorted(e.name for e in entries if e.name.endswith(".toml"))
    return [directory / name for name in names]


def load_subscribers(directory: Path, known: Sequence[str]) -> Roster:
    """Read every *.toml in the directory; one digest per address, problems reported."""
    if not directory.is_dir():
        log.info("%s: no subscriber directory yet, so nobody to mail", directory)
        return Roster((), ())
    found: dict[str, Subscriber] = {}
    problems: list[str] = []
    for path in _toml_files(directory):
        try:
            subscriber = parse_subscriber(path, known)
        except SubscriberError as err:
            problems.append(f"{path}: {err}; skipped")
            continue
        first = found.get(subscriber.key)
        if first is not None:
            problems.append(
                f"{path}: {subscriber.email} is also in {first.file}; "
                "one digest goes out, using the first file"
            )
            continue
        found[subscriber.key] = subscriber
    return Roster(tuple(found.values()), tuple(problems))


HEADER = (
    "# A Daily Papers subscription. Change the keywords freely (names as in\n"
    "# settings.toml); delete this file, or run `newsletter unsubscribe`, to stop.\n"
)


def render_subscriber(subscriber: Subscriber) -> str:
    """The file's text: a comment for whoever opens it, then TOML written by tomli-w,
    so any name that `check_name` accepts reads back exactly."""
    table: dict[str, object] = {"email": subscriber.email}
    if subscriber.name:
        table["name"] = subscriber.name
    table["keywords"] = list(subscriber.keywords)
    if subscriber.cadence.weekly:  # daily, the default, is left out: files stay as they were
        table["cadence"] = subscriber.cadence.every
        table["weekday"] = subscriber.cadence.weekday
    for key in ("source", "created", "confirmed"):
        value = getattr(subscriber, key)
        if value:
            table[key] = value
    return HEADER + tomli_w.dumps(table)


def _read_raw(path: Path) -> dict[str, object]:
    """A subscriber file's table, leniently: {} when it cannot be read at all."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return {}
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}


def find_file(directory: Path, address: str) -> Path | None:
    """The file holding this address: its usual name, else any file that names it
    (hand-made files may be called anything)."""
    usual = directory / file_name(address)
    if usual.exists():
        return usual
    key = address_key(address)
    for path in sorted(directory.glob("*.toml")):
        email = _read_raw(path).get("email")
        if isinstance(email, str) and address_key(email.strip()) == key:
            return path
    return None


def now_iso() -> str:
    """To the microsecond: `created` tells one subscription from the next, and an
    unsubscribe and subscribe within the same second must still be two."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def save_subscriber(
    directory: Path,
    address: str,
    keywords: Sequence[str] | None,
    known: Sequence[str],
    *,
    name: str | None = None,
    source: str = "cli",
    confirmed: str = "",
    restart: bool = False,
    cadence: Cadence | None = None,
) -> tuple[Subscriber, bool]:
    """Create or update a subscription; returns it and whether it is new.

    An update keeps the subscription's start time, so the person keeps their
    delivery history; a new file, or `restart`, starts a new one (and a welcome issue).
    `keywords` or `cadence` None keeps the file's (a new subscription must name keywords;
    its cadence is then daily).
    """
    try:
        address = normalize_address(address)
    except AddressError as err:
        raise SubscriberError(str(err)) from None
    directory.mkdir(parents=True, exist_ok=True)
    path = find_file(directory, address)
    old = _read_raw(path) if path is not None else {}
    if keywords is None:
        kept_keywords = old.get("keywords")
        if not old:
            canonical_keywords((), known)  # raises: choose at least one keyword
        if not isinstance(kept_keywords, list):
            raise SubscriberError('keywords must be a list of keyword names, like ["MLLM"]')
        keywords = [k for k in kept_keywords if isinstance(k, str)]
    chosen = canonical_keywords(keywords, known)
    if cadence is None:
        try:
            cadence = read_cadence(old)
        except SubscriberError:
            cadence = Cadence()  # a broken value by hand: this save writes a good one
    path = path or directory / file_name(address)

    def kept(key: str, fallback: str) -> str:
        value = old.get(key)
        return value if isinstance(value, str) and value else fallback

    subscriber = Subscriber(
        email=address,
        keywords=chosen,
        name=check_name(name if name is not None else kept("name", "")),
        source=kept("source", source),
        created=now_iso() if restart else kept("created", now_iso()),
        confirmed=confirmed or kept("confirmed", ""),
        file=path,
        cadence=cadence,
    )
    write_atomic(path, render_subscriber(subscriber).encode(), name="subscriber")
    return subscriber, not old


def remove_subscriber(directory: Path, address: str) -> Path | None:
    """Delete the subscription file; returns the path removed, or None if there was none."""
    try:
        address = normalize_address(address)
    except AddressError as err:
        raise SubscriberError(str(err)) from None
    path = find_file(directory, address) if directory.is_dir() else None
    if path is not None:
        path.unlink()
    return path
