"""settings.toml → frozen dataclasses.

Every mistake in the file stops the program before any work is done, with one
line that names the file, the key and what was expected, so an admin can fix it
without reading our source.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .addresses import AddressError, normalize_address, parse_mailbox

DEFAULT_SETTINGS = "settings.toml"
SETTINGS_ENV = "NEWSLETTER_SETTINGS"
DEFAULT_API_URL = "https://export.arxiv.org/api/query"
DEFAULT_GIT_AUTHOR = "Daily Papers <daily-papers@localhost>"


class ConfigError(Exception):
    """A problem in settings.toml; str() is the one line shown to the admin."""


@dataclass(frozen=True)
class ArxivSettings:
    api_url: str = DEFAULT_API_URL
    max_results: int = 100
    page_size: int = 100
    delay_seconds: float = 3.0
    timeout_seconds: float = 30.0
    retries: int = 3
    categories: tuple[str, ...] = ("cs", "stat")


@dataclass(frozen=True)
class Keyword:
    name: str
    query: str | None = None
    exclude: tuple[str, ...] = ()
    categories: tuple[str, ...] | None = None


def keyword_slug(name: str) -> str:
    """The keyword's name in file names and links (archive pages, feeds): ASCII, lowercase,
    dashes; a name without ASCII letters or digits gets a stable hash instead."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug or "keyword-" + hashlib.sha256(name.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class StoreSettings:
    path: Path


@dataclass(frozen=True)
class ArchiveSettings:
    path: Path
    max_papers: int = 100
    public_url: str = ""
    rotate: bool = False  # papers beyond max_papers go to monthly pages
    feeds: bool = False  # one Atom feed per keyword
    git: bool = False  # commit the archive files after a cycle that changed them
    push: bool = False
    remote: str = "origin"
    branch: str = ""  # "" = the branch checked out in the archive's repository
    git_author: str = DEFAULT_GIT_AUTHOR


@dataclass(frozen=True)
class SubscribersSettings:
    dir: Path


@dataclass(frozen=True)
class DigestSettings:
    sender: str  # digest.from, as written: "Daily Papers <papers@example.org>"
    sender_address: str
    templates: Path
    subject: str = "[Daily Papers] {count} new papers: {keywords} ({date})"
    welcome_subject: str = "[Daily Papers] Welcome: {count} recent papers: {keywords}"
    max_papers_per_keyword: int = 20
    max_html_bytes: int = 95_000
    list_id: str = ""

    @property
    def domain(self) -> str:
        return self.sender_address.rpartition("@")[2]

    @property
    def list_name(self) -> str:
        """The display name of `from` ("Daily Papers"), used in replies and web pages."""
        return parse_mailbox(self.sender)[0] or "Daily Papers"


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "localhost"
    port: int = 25
    security: str = "none"  # none | starttls | tls
    username: str = ""
    password_env: str = ""
    password_file: Path | None = None
    timeout_seconds: float = 30.0
    max_connections: int = 4
    retries: int = 2
    retry_delay_seconds: float = 5.0
    max_bounces: int = 3


@dataclass(frozen=True)
class WebSettings:
    secret_file: Path
    listen_host: str = ""  # "" means no web server
    listen_port: int = 0
    public_url: str = ""  # https base URL the reverse proxy serves us at, without a trailing /

    @property
    def listen(self) -> str:
        host = f"[{self.listen_host}]" if ":" in self.listen_host else self.listen_host
        return f"{host}:{self.listen_port}" if self.listen_host else ""

    def unsubscribe_url(self, token: str) -> str:
        """The one-click unsubscribe page of a token, or "" when there is no web server."""
        return f"{self.public_url}/unsubscribe/{token}" if self.public_url else ""


@dataclass(frozen=True)
class InboxSettings:
    """Where commands sent by email are read from: a Maildir, or an IMAP folder."""

    address: str  # the newsletter's own address: replies, unsubscribe mail and bounces go here
    maildir: Path | None = None
    imap_host: str = ""
    imap_port: int = 993
    security: str = "tls"  # none | starttls | tls
    username: str = ""
    password_env: str = ""
    password_file: Path | None = None
    folder: str = "INBOX"
    timeout_seconds: float = 30.0
    poll_seconds: float = 300.0
    confirm_hours: float = 48.0
    max_replies_per_hour: int = 5


@dataclass(frozen=True)
class ScheduleSettings:
    times: tuple[str, ...] = ("07:00",)  # HH:MM or HH:MM:SS, in `timezone`
    timezone: str = "UTC"
    run_on_start: bool = True
    stop_timeout_seconds: float = 30.0


@dataclass(frozen=True)
class Settings:
    file: Path
    arxiv: ArxivSettings
    keywords: tuple[Keyword, ...]
    store: StoreSettings
    archive: ArchiveSettings
    subscribers: SubscribersSettings
    digest: DigestSettings
    smtp: SmtpSettings
    web: WebSettings
    schedule: ScheduleSettings
    inbox: InboxSettings | None = None  # None: no [inbox] table, commands by email are off

    @property
    def keyword_names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.keywords)


def settings_path(cli_value: str | None) -> Path:
    """--settings wins over $NEWSLETTER_SETTINGS, which wins over ./settings.toml."""
    return Path(cli_value or os.environ.get(SETTINGS_ENV) or DEFAULT_SETTINGS)


def _show(value: Any) -> str:
    """Render a bad value the way it looks in TOML, so the admin recognises it."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except TypeError:
        return str(value)


_REQUIRED = object()


class _Table:
    """Reads one TOML table, type-checking each key and remembering which were used.

    Unknown keys are errors, not warnings: a typo such as `delay_second` would
    otherwise silently leave the default in place.
    """

    def __init__(self, file: str, where: str, raw: Any):
        self.file = file
        self.where = where
        if not isinstance(raw, dict):
            raise ConfigError(f"{file}: {where} must be a table, got {_show(raw)}")
        self.raw: dict[str, Any] = raw
        self.used: set[str] = set()

    def fail(self, key: str, expected: str, got: Any = _REQUIRED) -> ConfigError:
        shown = "nothing" if got is _REQUIRED else _show(got)
        return ConfigError(f"{self.file}: {self.where} {key} must be {expected}, got {shown}")

    def _get(self, key: str, default: Any, expected: str, ok: Callable[[Any], bool]) -> Any:
        self.used.add(key)
        if key not in self.raw:
            if default is _REQUIRED:
                raise self.fail(key, expected)
            return default
        value = self.raw[key]
        if not ok(value):
            raise self.fail(key, expected, value)
        return value

    def string(self, key: str, default: Any = _REQUIRED, *, nonempty: bool = True) -> Any:
        expected = "a non-empty string" if nonempty else "a string"
        return self._get(
            key,
            default,
            expected,
            lambda v: isinstance(v, str) and (bool(v.strip()) or not nonempty),
        )

    def integer(self, key: str, default: Any = _REQUIRED, *, minimum: int = 0) -> int:
        return self._get(
            key,
            default,
            f"an integer ≥ {minimum}",
            lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= minimum,
        )

    def number(self, key: str, default: Any = _REQUIRED, *, minimum: float = 0.0) -> float:
        value = self._get(
            key,
            default,
            f"a number ≥ {minimum:g}",
            lambda v: isinstance(v, int | float) and not isinstance(v, bool) and v >= minimum,
        )
        return float(value)

    def boolean(self, key: str, default: Any = _REQUIRED) -> bool:
        return self._get(key, default, "true or false", lambda v: isinstance(v, bool))

    def strings(self, key: str, default: Any = _REQUIRED) -> tuple[str, ...] | None:
        value = self._get(
            key,
            default,
            "a list of non-empty strings",
            lambda v: isinstance(v, list) and all(isinstance(s, str) and s.strip() for s in v),
        )
        return None if value is None else tuple(value)

    def path(self, key: str, default: str | None, base: Path) -> Path | None:
        value = self.string(key, default)
        if value is None:
            return None
        value = Path(value)
        return value if value.is_absolute() else base / value

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        return self._get(key, default, " | ".join(choices), lambda v: v in choices)

    def table(self, key: str) -> _Table:
        """A sub-table (missing means empty); the caller must finish() it."""
        return _Table(self.file, f"[{key}]", self._get(key, {}, "a table", lambda v: True))

    def finish(self) -> None:
        unknown = sorted(set(self.raw) - self.used)
        if unknown:
            raise ConfigError(f"{self.file}: {self.where} has unknown key {unknown[0]!r}")


def _check_url(
    table: _Table, key: str, value: str, schemes: tuple[str, ...] = ("http", "https")
) -> str:
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.netloc:
        raise table.fail(key, "an " + " or ".join(f"{s}://" for s in schemes) + " URL", value)
    return value


def _optional_url(table: _Table, key: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
    value = table.string(key, "", nonempty=False)
    return _check_url(table, key, value, schemes) if value else ""


def _check_template(table: _Table, key: str, value: str, fields: tuple[str, ...]) -> str:
    """A str.format template may use only the named fields; fail now, not at send time."""
    try:
        value.format(**{f: "" for f in fields})
    except (KeyError, IndexError, ValueError) as err:
        raise table.fail(key, f"a text using only {{{'}, {'.join(fields)}}}", value) from err
    return value


def _check_query(table: _Table, key: str, query: str) -> str:
    """Refuse a raw arXiv query that the API would reject or misread: quotes must pair
    up, and parentheses outside quoted phrases must balance."""
    if query.count('"') % 2:
        raise table.fail(key, "a query with balanced double quotes", query)
    depth = 0
    for number, part in enumerate(query.split('"')):
        if number % 2:  # inside a quoted phrase, parentheses are just text
            continue
        for char in part:
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth < 0:
                raise table.fail(key, "a query with balanced parentheses", query)
    if depth:
        raise table.fail(key, "a query with balanced parentheses", query)
    return query


def _arxiv(file: str, raw: Any) -> ArxivSettings:
    t = _Table(file, "[arxiv]", raw)
    d = ArxivSettings()
    result = ArxivSettings(
        api_url=_check_url(t, "api_url", t.string("api_url", d.api_url)),
        max_results=t.integer("max_results", d.max_results, minimum=1),
        page_size=t.integer("page_size", d.page_size, minimum=1),
        delay_seconds=t.number("delay_seconds", d.delay_seconds),
        timeout_seconds=t.number("timeout_seconds", d.timeout_seconds, minimum=0.1),
        retries=t.integer("retries", d.retries),
        categories=t.strings("categories", list(d.categories)),
    )
    t.finish()
    return result


def _keywords(file: str, raw: Any) -> tuple[Keyword, ...]:
    if not isinstance(raw, list) or not raw:
        shown = _show(raw) if raw else "none"
        raise ConfigError(f"{file}: [[keywords]] must list at least one keyword, got {shown}")
    keywords: list[Keyword] = []
    seen: dict[str, int] = {}
    for number, item in enumerate(raw, start=1):
        t = _Table(file, f"[[keywords]] #{number}", item)
        name = " ".join(t.string("name").split())
        if not any(c.isalnum() for c in name):
            raise t.fail("name", "a name containing a letter or digit", name)
        folded = name.casefold()
        if folded in seen:
            raise t.fail("name", f"unique (keyword #{seen[folded]} has it too)", name)
        seen[folded] = number
        query = t.string("query", None)
        keywords.append(
            Keyword(
                name=name,
                query=None if query is None else _check_query(t, "query", query.strip()),
                exclude=t.strings("exclude", []),
                categories=t.strings("categories", None),
            )
        )
        t.finish()
    return tuple(keywords)


def load_settings(path: Path) -> Settings:
    """Read and validate settings.toml; raises ConfigError with one line for the admin."""
    file = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{file}: settings file not found (use --settings PATH or ${SETTINGS_ENV})"
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{file}: cannot read settings: {err}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{file}: not valid TOML: {err}") from None
    return parse_settings(raw, path)


def _store(file: str, t: _Table, state_base: Path) -> StoreSettings:
    result = StoreSettings(path=t.path("path", "state/newsletter.json", state_base))
    t.finish()
    return result


def _archive(t: _Table, base: Path) -> ArchiveSettings:
    d = ArchiveSettings(path=base)
    result = ArchiveSettings(
        path=t.path("path", "archive/README.md", base),
        max_papers=t.integer("max_papers", 100, minimum=1),
        public_url=_optional_url(t, "public_url"),
        rotate=t.boolean("rotate", d.rotate),
        feeds=t.boolean("feeds", d.feeds),
        git=t.boolean("git", d.git),
        push=t.boolean("push", d.push),
        remote=_git_name(t, "remote", t.string("remote", d.remote), "a remote name like origin"),
        branch=_git_name(
            t, "branch", t.string("branch", d.branch, nonempty=False), "a branch name like main"
        ),
        git_author=_git_author(t, t.string("git_author", d.git_author)),
    )
    if result.push and not result.git:
        raise t.fail("push", "false unless git = true (only our own commits are pushed)", True)
    t.finish()
    return result


# What git accepts in a ref name (git check-ref-format), minus anything that could
# be read as an option: remote and branch go on git's command line.
_GIT_NAME = re.compile(
    r"^(?![-./])(?!.*(?:\.\.|//|@\{|\.lock/|/\.))"  # no leading -./, no .. // @{ .lock/ /.
    r"[^\s~^:?*\[\\\x00-\x1f\x7f]+"  # no spaces, controls or ~^:?*[\
    r"(?<![./])\Z"  # no trailing . or /
)


def _git_name(t: _Table, key: str, value: str, expected: str) -> str:
    if value and (not _GIT_NAME.match(value) or value.endswith(".lock") or value == "@"):
        raise t.fail(key, expected, value)
    return value


def _git_author(t: _Table, value: str) -> str:
    """Git refuses angle brackets and line breaks in a name; we refuse them here, at start."""
    expected = "'Name <address>', like 'Daily Papers <daily-papers@localhost>'"
    match = re.fullmatch(r"([^<>\r\n\0]*[^<>\s])\s*<([^<>\s]+@[^<>\s]+)>", value.strip())
    if not match:
        raise t.fail("git_author", expected, value)
    return f"{match[1].strip()} <{match[2]}>"


def _check_slugs(file: str, keywords: tuple[Keyword, ...], archive: ArchiveSettings) -> None:
    """Monthly pages and feeds are named by keyword_slug: two keywords must not share one."""
    if not (archive.rotate or archive.feeds):
        return
    seen: dict[str, int] = {}
    for number, keyword in enumerate(keywords, start=1):
        slug = keyword_slug(keyword.name)
        if slug in seen:
            raise ConfigError(
                f"{file}: [[keywords]] #{number} name {_show(keyword.name)} gives the same "
                f"archive file name {slug!r} as keyword #{seen[slug]}; rename one of them"
            )
        seen[slug] = number


def _digest(t: _Table, base: Path) -> DigestSettings:
    sender = t.string("from", "Daily Papers <daily-papers@example.org>")
    try:
        _, sender_address = parse_mailbox(sender)
    except AddressError as err:
        raise t.fail(
            "from", f"one address like 'Name <name@example.org>' ({err})", sender
        ) from None
    d = DigestSettings(sender=sender, sender_address=sender_address, templates=base)
    fields = ("count", "keywords", "date")
    if "unsubscribe_url" in t.raw:
        raise ConfigError(
            f"{t.file}: [digest] unsubscribe_url has moved: set [web] public_url (the base URL) "
            "and [web] listen, and the daemon serves the unsubscribe page itself"
        )
    list_id = t.string("list_id", "", nonempty=False)
    if any(c in list_id for c in "<>\r\n \t"):
        raise t.fail("list_id", "a dotted name like papers.example.org", list_id)
    result = DigestSettings(
        sender=sender,
        sender_address=sender_address,
        templates=t.path("templates", "templates", base),
        subject=_check_template(t, "subject", t.string("subject", d.subject), fields),
        welcome_subject=_check_template(
            t, "welcome_subject", t.string("welcome_subject", d.welcome_subject), fields
        ),
        max_papers_per_keyword=t.integer(
            "max_papers_per_keyword", d.max_papers_per_keyword, minimum=1
        ),
        max_html_bytes=t.integer("max_html_bytes", d.max_html_bytes, minimum=10_000),
        list_id=list_id or f"daily-papers.{d.domain}",
    )
    t.finish()
    return result


def _smtp(t: _Table, base: Path) -> SmtpSettings:
    d = SmtpSettings()
    security = t.choice("security", d.security, ("none", "starttls", "tls"))
    result = SmtpSettings(
        host=t.string("host", d.host),
        port=t.integer(
            "port", 465 if security == "tls" else 587 if security == "starttls" else 25, minimum=1
        ),
        security=security,
        username=t.string("username", "", nonempty=False),
        password_env=t.string("password_env", "", nonempty=False),
        password_file=t.path("password_file", None, base),
        timeout_seconds=t.number("timeout_seconds", d.timeout_seconds, minimum=0.1),
        max_connections=t.integer("max_connections", d.max_connections, minimum=1),
        retries=t.integer("retries", d.retries),
        retry_delay_seconds=t.number("retry_delay_seconds", d.retry_delay_seconds),
        max_bounces=t.integer("max_bounces", d.max_bounces, minimum=1),
    )
    if result.port > 65535:
        raise t.fail("port", "a port number 1-65535", result.port)
    if result.username and not (result.password_env or result.password_file):
        raise t.fail(
            "password_env",
            "set (or password_file) when username is set; the password never goes in this file",
        )
    t.finish()
    return result


_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$")


def _schedule(t: _Table) -> ScheduleSettings:
    d = ScheduleSettings()
    times = t.strings("times", list(d.times))
    for value in times:
        if not _TIME.match(value):
            raise t.fail("times", 'a list of times like ["07:00", "18:30"] (24-hour HH:MM)', value)
    if not times:
        raise t.fail("times", "at least one time of day", [])
    zone = t.string("timezone", d.timezone)
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise t.fail("timezone", 'an IANA time zone like "Europe/Berlin"', zone) from None
    result = ScheduleSettings(
        times=tuple(dict.fromkeys(times)),
        timezone=zone,
        run_on_start=t.boolean("run_on_start", d.run_on_start),
        stop_timeout_seconds=t.number("stop_timeout_seconds", d.stop_timeout_seconds, minimum=1),
    )
    t.finish()
    return result


def _listen(t: _Table, value: str) -> tuple[str, int]:
    """'127.0.0.1:8025' or '[::1]:8025' → (host, port)."""
    host, colon, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise t.fail("listen", 'a "HOST:PORT" like "127.0.0.1:8025"', value)
    if any(c in host for c in "[]/ ") or (":" in host and not value.startswith("[")):
        raise t.fail("listen", 'a "HOST:PORT" like "127.0.0.1:8025"', value)
    return host, int(port)


def _web(t: _Table, store: StoreSettings, state_base: Path) -> WebSettings:
    secret_file = t.path("secret_file", str(store.path.parent / "secret.key"), state_base)
    listen = t.string("listen", "", nonempty=False)
    public_url = _optional_url(t, "public_url", ("https",)).rstrip("/")
    if public_url and (urlsplit(public_url).query or urlsplit(public_url).fragment):
        raise t.fail("public_url", "a base URL without ? or #", public_url)
    if bool(listen) != bool(public_url):
        missing = "public_url" if listen else "listen"
        why = (
            "the https address people reach the server at"
            if listen
            else 'the local "HOST:PORT" the daemon serves it on, behind your reverse proxy'
        )
        raise t.fail(missing, f"set when {'listen' if listen else 'public_url'} is set ({why})")
    host, port = _listen(t, listen) if listen else ("", 0)
    t.finish()
    return WebSettings(
        secret_file=secret_file, listen_host=host, listen_port=port, public_url=public_url
    )


def _inbox(t: _Table, base: Path, digest: DigestSettings) -> InboxSettings:
    address = t.string("address", digest.sender_address)
    try:
        address = normalize_address(address)
    except AddressError as err:
        expected = f"one bare address like papers@example.org ({err})"
        raise t.fail("address", expected, address) from None
    d = InboxSettings(address=address)
    security = t.choice("security", d.security, ("none", "starttls", "tls"))
    result = InboxSettings(
        address=address,
        maildir=t.path("maildir", None, base),
        imap_host=t.string("imap_host", "", nonempty=False),
        imap_port=t.integer("imap_port", 993 if security == "tls" else 143, minimum=1),
        security=security,
        username=t.string("username", "", nonempty=False),
        password_env=t.string("password_env", "", nonempty=False),
        password_file=t.path("password_file", None, base),
        folder=t.string("folder", d.folder),
        timeout_seconds=t.number("timeout_seconds", d.timeout_seconds, minimum=0.1),
        poll_seconds=t.number("poll_seconds", d.poll_seconds, minimum=1),
        confirm_hours=t.number("confirm_hours", d.confirm_hours, minimum=1),
        max_replies_per_hour=t.integer("max_replies_per_hour", d.max_replies_per_hour, minimum=1),
    )
    t.finish()  # a misspelt key is named before anything else is said
    if result.maildir is not None and result.imap_host:
        raise ConfigError(
            f"{t.file}: [inbox] set either maildir or imap_host, not both "
            f"(maildir = {_show(str(result.maildir))}, imap_host = {_show(result.imap_host)})"
        )
    if result.maildir is None and not result.imap_host:
        raise ConfigError(
            f"{t.file}: [inbox] needs where mail is read from: maildir = PATH, "
            "or imap_host (with username and password_env or password_file)"
        )
    if result.imap_port > 65535:
        raise t.fail("imap_port", "a port number 1-65535", result.imap_port)
    if not result.folder.isascii() or any(c in result.folder for c in '\r\n"\\'):
        expected = "an ASCII folder name without quotes, backslashes or line breaks"
        raise t.fail("folder", expected, result.folder)
    if result.maildir is not None:
        imap_only = ("imap_port", "security", "username", "password_env", "password_file", "folder")
        stray = [k for k in imap_only if k in t.raw]
        if stray:
            expected = "left out when mail is read from maildir (it is for IMAP)"
            raise t.fail(stray[0], expected, t.raw[stray[0]])
    elif not result.username:
        raise t.fail("username", "set when imap_host is set (the account to log in as)")
    elif not (result.password_env or result.password_file):
        raise t.fail(
            "password_env",
            "set (or password_file) when imap_host is set; the password never goes in this file",
        )
    return result


def parse_settings(raw: dict[str, Any], path: Path) -> Settings:
    file = str(path)
    base = path.parent
    # Under systemd, StateDirectory= sets $STATE_DIRECTORY (colon-separated if several).
    state_dir = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    state_base = Path(state_dir) if state_dir else base

    top = _Table(file, "top level", raw)
    arxiv = _arxiv(file, top._get("arxiv", {}, "a table", lambda v: True))
    keywords = _keywords(file, top._get("keywords", None, "", lambda v: True))
    store = _store(file, top.table("store"), state_base)
    archive = _archive(top.table("archive"), base)
    _check_slugs(file, keywords, archive)
    t = top.table("subscribers")
    subscribers = SubscribersSettings(dir=t.path("dir", "subscribers", base))
    t.finish()
    digest = _digest(top.table("digest"), base)
    smtp = _smtp(top.table("smtp"), base)
    web = _web(top.table("web"), store, state_base)
    inbox = _inbox(top.table("inbox"), base, digest) if "inbox" in raw else None
    schedule = _schedule(top.table("schedule"))
    top.finish()
    return Settings(
        file=path,
        arxiv=arxiv,
        keywords=keywords,
        store=store,
        archive=archive,
        subscribers=subscribers,
        digest=digest,
        smtp=smtp,
        web=web,
        schedule=schedule,
        inbox=inbox,
    )
