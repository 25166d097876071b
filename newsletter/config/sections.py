"""Each section of settings.toml: its keys read, checked and turned into its dataclass.

The generic type checks are `TomlTable`'s; what is here is what only that
section knows (a query's balanced quotes, a git ref name, a listen address, the
keys an IMAP inbox needs), so every check fails at start, never mid-cycle.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..addresses import AddressError, domain_problem, normalize_address, parse_mailbox
from ..papers import keyword_slug
from ..tls import ca_file_problem
from .settings import (
    ArchiveSettings,
    ArxivSettings,
    DigestSettings,
    InboxSettings,
    Keyword,
    ScheduleSettings,
    SecuritySettings,
    SmtpSettings,
    StoreSettings,
    SubscribersSettings,
    WebSettings,
)
from .toml_table import ConfigError, TomlTable, show


def check_query(table: TomlTable, key: str, query: str) -> str:
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


def arxiv_section(t: TomlTable) -> ArxivSettings:
    d = ArxivSettings()
    result = ArxivSettings(
        api_url=t.url("api_url", d.api_url),
        max_results=t.integer("max_results", d.max_results, minimum=1),
        page_size=t.integer("page_size", d.page_size, minimum=1),
        delay_seconds=t.number("delay_seconds", d.delay_seconds),
        timeout_seconds=t.number("timeout_seconds", d.timeout_seconds, minimum=0.1),
        retries=t.integer("retries", d.retries),
        categories=t.strings("categories", list(d.categories)),
        max_reply_bytes=t.integer("max_reply_bytes", d.max_reply_bytes, minimum=100_000),
    )
    t.finish()
    return result


def keywords_section(file: str, raw: Any) -> tuple[Keyword, ...]:
    if not isinstance(raw, list) or not raw:
        shown = show(raw) if raw else "none"
        raise ConfigError(f"{file}: [[keywords]] must list at least one keyword, got {shown}")
    keywords: list[Keyword] = []
    seen: dict[str, int] = {}
    for number, item in enumerate(raw, start=1):
        t = TomlTable(file, f"[[keywords]] #{number}", item)
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
                query=None if query is None else check_query(t, "query", query.strip()),
                exclude=t.strings("exclude", []),
                categories=t.strings("categories", None),
            )
        )
        t.finish()
    return tuple(keywords)


def store_section(t: TomlTable, state_base: Path) -> StoreSettings:
    result = StoreSettings(
        path=t.path("path", "state/newsletter.json", state_base),
        journal_sync_ms=t.number("journal_sync_ms", StoreSettings.journal_sync_ms),
    )
    t.finish()
    return result


def archive_section(t: TomlTable, base: Path) -> ArchiveSettings:
    d = ArchiveSettings(path=base)
    result = ArchiveSettings(
        path=t.path("path", "archive/README.md", base),
        max_papers=t.integer("max_papers", 100, minimum=1),
        public_url=t.url("public_url", ""),
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


def _git_name(t: TomlTable, key: str, value: str, expected: str) -> str:
    if value and (not _GIT_NAME.match(value) or value.endswith(".lock") or value == "@"):
        raise t.fail(key, expected, value)
    return value


def _git_author(t: TomlTable, value: str) -> str:
    """Git refuses angle brackets and line breaks in a name; we refuse them here, at start."""
    expected = "'Name <address>', like 'Daily Papers <daily-papers@localhost>'"
    match = re.fullmatch(r"([^<>\r\n\0]*[^<>\s])\s*<([^<>\s]+@[^<>\s]+)>", value.strip())
    if not match:
        raise t.fail("git_author", expected, value)
    return f"{match[1].strip()} <{match[2]}>"


def check_slugs(file: str, keywords: tuple[Keyword, ...], archive: ArchiveSettings) -> None:
    """Monthly pages and feeds are named by keyword_slug: two keywords must not share one."""
    if not (archive.rotate or archive.feeds):
        return
    seen: dict[str, int] = {}
    for number, keyword in enumerate(keywords, start=1):
        slug = keyword_slug(keyword.name)
        if slug in seen:
            raise ConfigError(
                f"{file}: [[keywords]] #{number} name {show(keyword.name)} gives the same "
                f"archive file name {slug!r} as keyword #{seen[slug]}; rename one of them"
            )
        seen[slug] = number


def digest_section(t: TomlTable, base: Path) -> DigestSettings:
    sender = t.string("from", "Daily Papers <daily-papers@example.org>")
    try:
        _, sender_address = parse_mailbox(sender)
    except AddressError as err:
        raise t.fail(
            "from", f"one address like 'Name <name@example.org>' ({err})", sender
        ) from None
    d = DigestSettings(sender=sender, sender_address=sender_address)
    fields = ("count", "keywords", "date", "period")
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
        templates=t.path("templates", None, base),
        subject=t.template("subject", d.subject, fields),
        welcome_subject=t.template("welcome_subject", d.welcome_subject, fields),
        max_papers_per_keyword=t.integer(
            "max_papers_per_keyword", d.max_papers_per_keyword, minimum=1
        ),
        max_html_bytes=t.integer("max_html_bytes", d.max_html_bytes, minimum=10_000),
        list_id=list_id or f"daily-papers.{d.domain}",
    )
    t.finish()
    return result


def smtp_section(t: TomlTable, base: Path) -> SmtpSettings:
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
        bounce_days=t.number("bounce_days", d.bounce_days, minimum=1),
        ca_file=_ca_file(t, t.path("ca_file", None, base), security),
        helo_name=_helo_name(t),
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


def _ca_file(t: TomlTable, path: Path | None, security: str) -> Path | None:
    """A PEM bundle that can be read, checked now so that a wrong path costs a line at
    start; refused without TLS, where it would silently do nothing."""
    if path is None:
        return None
    if security == "none":
        expected = 'left out when security = "none" (no TLS: no certificate is checked)'
        raise t.fail("ca_file", expected, str(path))
    problem = ca_file_problem(path)
    if problem:
        raise ConfigError(
            f"{t.file}: {t.where} ca_file {path}: {problem} (it must hold the PEM "
            "certificates of the CAs to trust besides the system's)"
        )
    return path


def _helo_name(t: TomlTable) -> str:
    name = t.string("helo_name", "", nonempty=False)
    problem = domain_problem(name) if name else ""
    if problem:
        raise t.fail("helo_name", f"a host name like mail.example.org ({problem})", name)
    return name.lower()


_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$")


def schedule_section(t: TomlTable) -> ScheduleSettings:
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


def _listen(t: TomlTable, value: str) -> tuple[str, int]:
    """'127.0.0.1:8025' or '[::1]:8025' → (host, port)."""
    host, colon, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise t.fail("listen", 'a "HOST:PORT" like "127.0.0.1:8025"', value)
    if any(c in host for c in "[]/ ") or (":" in host and not value.startswith("[")):
        raise t.fail("listen", 'a "HOST:PORT" like "127.0.0.1:8025"', value)
    return host, int(port)


def web_section(t: TomlTable, store: StoreSettings, state_base: Path) -> WebSettings:
    secret_file = t.path("secret_file", str(store.path.parent / "secret.key"), state_base)
    listen = t.string("listen", "", nonempty=False)
    public_url = t.url("public_url", "", ("https",)).rstrip("/")
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


def inbox_section(t: TomlTable, base: Path, digest: DigestSettings) -> InboxSettings:
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
        ca_file=t.path("ca_file", None, base),
        poll_seconds=t.number("poll_seconds", d.poll_seconds, minimum=1),
        confirm_hours=t.number("confirm_hours", d.confirm_hours, minimum=1),
        max_replies_per_hour=t.integer("max_replies_per_hour", d.max_replies_per_hour, minimum=1),
        max_confirmations_per_hour=t.integer(
            "max_confirmations_per_hour", d.max_confirmations_per_hour, minimum=1
        ),
        max_confirmations_per_domain_per_hour=t.integer(
            "max_confirmations_per_domain_per_hour",
            d.max_confirmations_per_domain_per_hour,
            minimum=1,
        ),
    )
    t.finish()  # a misspelt key is named before anything else is said
    if result.maildir is not None and result.imap_host:
        raise ConfigError(
            f"{t.file}: [inbox] set either maildir or imap_host, not both "
            f"(maildir = {show(str(result.maildir))}, imap_host = {show(result.imap_host)})"
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
        stray = [k for k in (*imap_only, "ca_file") if k in t.raw]
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
    _ca_file(t, result.ca_file, result.security)
    return result


def subscribers_section(t: TomlTable, base: Path) -> SubscribersSettings:
    result = SubscribersSettings(dir=t.path("dir", "subscribers", base))
    t.finish()
    return result


def security_section(t: TomlTable) -> SecuritySettings:
    result = SecuritySettings(
        strict_permissions=t.boolean("strict_permissions", SecuritySettings.strict_permissions)
    )
    t.finish()
    return result
