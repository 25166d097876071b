"""The HTTP side of asking arXiv: a hardened `arxiv.Client`.

We use the `arxiv` package's Client for what it does well (URL building,
paging, turning Atom into Results) and close its gaps here, because a daemon
that runs for months meets every one of them:

- it sets no HTTP timeout, so one silent server blocks the daemon forever;
- it retries a permanent 400 exactly like a temporary 503;
- it ignores Retry-After on 429/503 and retries at once;
- an empty first page comes back as "zero results", indistinguishable from a
  keyword that really has no papers;
- its parser recovers from broken XML, so a truncated reply looks like a
  shorter, valid one; and one entry it cannot read (a date like 2025-13-45)
  fails the whole page;
- it reads a reply of any size into memory, twice.

One client serves every keyword of a cycle, so its pacing (`delay_seconds`)
spaces all requests to arXiv, not just those of one keyword.
"""

from __future__ import annotations

import email.utils
import logging
import socket
import ssl
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import arxiv
import requests

from ..config import ArxivSettings
from ..errors import NewsletterError

log = logging.getLogger(__name__)

ATOM = "{http://www.w3.org/2005/Atom}"
OPENSEARCH = "{http://a9.com/-/spec/opensearch/1.1/}"
MAX_RETRY_AFTER = 300.0  # seconds; a longer wait skips the keyword until the next cycle
USER_AGENT = "daily-papers/0.1 (self-hosted arXiv newsletter; https://github.com/)"
TEMPORARY_STATUSES = {429, 500, 502, 503, 504}


class FetchError(NewsletterError):
    """A keyword could not be fetched this cycle; str() is the reason for the log."""


class Unreachable(FetchError):
    """arXiv's host cannot be reached at all (no name, refused, TLS): trying the other
    keywords this cycle would only repeat it."""


class _Temporary(Exception):
    """A failure worth retrying, with the server's requested wait if it gave one."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _error_summary(body: bytes) -> str:
    """arXiv explains a 400 in the summary of an error entry; show that to the admin."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return ""
    summary = root.find(f"{ATOM}entry/{ATOM}summary")
    return " ".join((summary.text or "").split()) if summary is not None else ""


class ArxivClient(arxiv.Client):
    """arxiv.Client with timeouts, honest retries, Retry-After and strict XML.

    Replaces the client's paging (`_results`) and page fetch: the base class
    advances its offset by the number of entries it could parse, so one broken
    entry shifts every later page and can end the keyword with a spurious
    "empty page"; we advance by the number of entries arXiv sent.
    `sleep` is injectable so the daemon can interrupt a wait on shutdown.
    """

    def __init__(
        self,
        settings: ArxivSettings,
        sleep: Callable[[float], None] = time.sleep,
    ):
        super().__init__(
            page_size=settings.page_size,
            delay_seconds=settings.delay_seconds,
            num_retries=settings.retries,
        )
        separator = "&" if "?" in settings.api_url else "?"
        self.query_url_format = settings.api_url.replace("{", "{{").replace("}", "}}") + (
            separator + "{}"
        )
        self.timeout = settings.timeout_seconds
        self.max_reply_bytes = settings.max_reply_bytes
        self._sleep = sleep
        self._last_request: float | None = None

    def _results(self, search: arxiv.Search, offset: int = 0) -> Iterator[arxiv.Result]:
        first = True
        while True:
            url = self._format_url(search, offset, self.page_size)
            page = self._page(url, first)
            yield from page.results
            offset += page.sent
            first = False
            if page.sent == 0 or offset >= page.total:
                return

    def _page(self, url: str, first_page: bool) -> Page:
        """One page, retried on temporary failures."""
        attempt = 0
        while True:
            try:
                return self._fetch_page(url, first_page)
            except _Temporary as err:
                if attempt >= self.num_retries:
                    tries = "try" if attempt == 0 else "tries"
                    raise FetchError(f"{err} (gave up after {attempt + 1} {tries})") from None
                wait = err.retry_after
                if wait is None:
                    wait = self.delay_seconds * 2**attempt
                elif wait > MAX_RETRY_AFTER:
                    raise FetchError(
                        f"{err}; the server asks to wait {wait:.0f} s, "
                        "so this keyword waits for the next cycle"
                    ) from None
                log.info("arXiv: %s; retrying in %.1f s", err, wait)
                self._sleep(wait)
                attempt += 1

    def _pace(self) -> None:
        if self._last_request is not None:
            wait = self.delay_seconds - (time.monotonic() - self._last_request)
            if wait > 0:
                self._sleep(wait)

    def _download(self, url: str) -> bytes:
        """GET with a deadline on the whole reply, not just on each socket read, and a cap
        on its size, read as it streams in so that memory stays bounded."""
        self._pace()
        deadline = time.monotonic() + self.timeout
        log.debug("arXiv: GET %s", url)
        try:
            with self._session.get(
                url, headers={"User-Agent": USER_AGENT}, timeout=self.timeout, stream=True
            ) as response:
                body = bytearray()
                for chunk in response.iter_content(65536):
                    body += chunk
                    if len(body) > self.max_reply_bytes:
                        raise FetchError(
                            f"reply larger than [arxiv] max_reply_bytes "
                            f"({self.max_reply_bytes} bytes); not read further"
                        )
                    if time.monotonic() > deadline:
                        raise _Temporary(f"reply took longer than {self.timeout:g} s")
        except requests.Timeout:
            raise _Temporary(f"no reply within {self.timeout:g} s") from None
        except requests.RequestException as err:
            raise connection_failure(err, url) from None
        finally:
            self._last_request = time.monotonic()
        status = response.status_code
        if status in TEMPORARY_STATUSES:
            raise _Temporary(
                f"HTTP {status}", parse_retry_after(response.headers.get("Retry-After"))
            )
        if status != 200:
            reason = _error_summary(bytes(body))
            raise FetchError(f"HTTP {status}" + (f": {reason}" if reason else ""))
        return bytes(body)

    def _fetch_page(self, url: str, first_page: bool) -> Page:
        page = parse_page(self._download(url))
        if page.sent > len(page.results):
            log.warning(
                "arXiv: skipped %d of %d entries that could not be read (%s)",
                page.sent - len(page.results),
                page.sent,
                url,
            )
        if not page.sent and (page.total > 0 or not first_page):
            raise _Temporary(f"empty page although {page.total} results were announced")
        return page


@dataclass(frozen=True)
class Page:
    results: list[arxiv.Result]  # the entries that could be read
    sent: int  # entries arXiv sent, readable or not: the paging advances by these
    total: int  # results arXiv announced for the query


def parse_page(body: bytes) -> Page:
    """One reply, parsed once and strictly: broken XML is a temporary failure (a truncated
    reply must not look like a shorter one); an entry that cannot be read is skipped and
    logged with its id and why, and costs only itself."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as err:
        raise _Temporary(f"malformed XML from arXiv ({err})") from None
    if root.tag != f"{ATOM}feed":
        raise _Temporary(f"not an Atom feed (root element {_short(root.tag)!r})")
    try:
        total = int((root.findtext(f"{OPENSEARCH}totalResults") or "0").strip())
    except ValueError:
        total = 0
    entries = root.findall(f"{ATOM}entry")
    results = []
    for entry in entries:
        try:
            result = arxiv._feed._build_result(entry)  # None when a required field is missing
        except Exception as err:  # whatever one entry holds, it costs only that entry
            entry_id = " ".join((entry.findtext(f"{ATOM}id") or "without an id").split())
            log.warning("arXiv: skipped the entry %s: %s", _short(entry_id), _short(str(err)))
            continue
        if result is not None:
            results.append(result)
    return Page(results, len(entries), total)


def connection_failure(err: BaseException, url: str) -> Exception:
    """What went wrong with a connection, in one line with its root cause (requests wraps
    urllib3's error, which wraps the socket's): Unreachable when arXiv cannot be reached
    at all, else a temporary failure worth retrying."""
    parts = urlsplit(url)
    host = parts.hostname or url
    root = _root_cause(err)
    if isinstance(root, socket.gaierror):
        return Unreachable(
            f"cannot resolve {host} ({root.strerror or root}): check the network, "
            "or [arxiv] api_url"
        )
    if isinstance(root, ConnectionRefusedError):
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return Unreachable(f"{host}:{port} refused the connection: is [arxiv] api_url right?")
    if isinstance(root, ssl.SSLError):
        return Unreachable(f"TLS with {host} failed: {_short(str(root.reason or root))}")
    reason = root.strerror if isinstance(root, OSError) and root.strerror else str(root)
    return _Temporary(f"connection to {host} failed: {_short(reason or type(root).__name__)}")


def _root_cause(err: BaseException) -> BaseException:
    for _ in range(10):  # a few wrappers deep; never loops on a cycle
        inner = getattr(err, "reason", None)
        if not isinstance(inner, BaseException):
            first = err.args[0] if err.args else None
            inner = first if isinstance(first, BaseException) else None
        inner = inner or err.__cause__ or err.__context__
        if inner is None or inner is err:
            break
        err = inner
    return err


def _short(err: object) -> str:
    text = str(err)
    return text if len(text) < 200 else text[:197] + "..."
