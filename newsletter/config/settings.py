"""The settings as frozen dataclasses: what every other module reads.

Defaults live here once; `settings.toml` in the repository shows and explains
each of them (a test keeps the two in step).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..addresses import parse_mailbox

DEFAULT_API_URL = "https://export.arxiv.org/api/query"
DEFAULT_GIT_AUTHOR = "Daily Papers <daily-papers@localhost>"


@dataclass(frozen=True)
class ArxivSettings:
    api_url: str = DEFAULT_API_URL
    max_results: int = 100
    page_size: int = 100
    delay_seconds: float = 3.0
    timeout_seconds: float = 30.0
    retries: int = 3
    categories: tuple[str, ...] = ("cs", "stat")
    max_reply_bytes: int = 10_000_000  # a page of 2,000 entries is about 5 MB


@dataclass(frozen=True)
class Keyword:
    name: str
    query: str | None = None
    exclude: tuple[str, ...] = ()
    categories: tuple[str, ...] | None = None


@dataclass(frozen=True)
class StoreSettings:
    path: Path
    journal_sync_ms: float = 50.0  # after a power loss, messages of at most this long resent


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
    templates: Path | None = None  # None: the templates shipped in the package
    subject: str = "[Daily Papers] {count} new papers: {keywords} ({period})"
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
    bounce_days: float = 30.0  # a refusal or bounce report older than this no longer counts
    ca_file: Path | None = None  # PEM: CAs trusted besides the system's (tls.client_context)
    helo_name: str = ""  # "" = the machine's FQDN, else [digest] from's domain (smtp.ehlo_name)


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
    ca_file: Path | None = None  # PEM: CAs trusted besides the system's (tls.client_context)
    poll_seconds: float = 300.0
    confirm_hours: float = 48.0
    max_replies_per_hour: int = 5  # to one mailbox (case, +tag and Gmail's dots ignored)
    max_confirmations_per_hour: int = 100  # replies that answer unproven mail, in all
    max_confirmations_per_domain_per_hour: int = 20  # ... and to one domain


@dataclass(frozen=True)
class SecuritySettings:
    strict_permissions: bool = False  # a secret or password others can read stops the start


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
    security: SecuritySettings = SecuritySettings()

    @property
    def keyword_names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.keywords)

    @property
    def unsubscribes_itself(self) -> bool:
        """Whether an unsubscribe request is acted on without a person: by the inbox, or
        by the one-click page."""
        return self.inbox is not None or bool(self.web.public_url)

    @property
    def reply_address(self) -> str:
        """Where people write to us: the unsubscribe mailto, and the envelope sender of
        digests, so that bounce reports arrive where the inbox reads them."""
        return self.inbox.address if self.inbox else self.digest.sender_address
