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
  shorter, valid one.

One client serves every keyword of a cycle, so its pacing (`delay_seconds`)
spaces all requests to arXiv, not just those of one keyword.
"""

from __future__ import annotations

import email.utils
import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import arxiv
import requests

from ..config import ArxivSettings
from ..errors import NewsletterError

log = logging.getLogger(__name__)

ATOM = "{http://www.w3.org/2005/Atom}"
MAX_RETRY_AFTER = 300.0  # seconds; a longer wait skips the keyword until the next cycle
USER_AGENT = "daily-papers/0.1 (self-hosted arXiv newsletter; https://github.com/)"
TEMPORARY_STATUSES = {429, 500, 502, 503, 504}


class FetchError(NewsletterError):
    """A keyword could not be fetched this cycle; str() is the reason for the log."""


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
        self._sleep = sleep
        self._last_request: float | None = None

    def _results(self, search: arxiv.Search, offset: int = 0) -> Iterator[arxiv.Result]:
        first = True
        while True:
            url = self._format_url(search, offset, self.page_size)
            feed, sent = self._page(url, first)
            yield from feed.results
            offset += sent
            first = False
            if sent == 0 or offset >= feed.header.total_results:
                return

    def _page(self, url: str, first_page: bool) -> tuple[arxiv.ParsedFeed, int]:
        """One page, retried on temporary failures: (the parsed feed, entries sent)."""
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
        """GET with a deadline on the whole reply, not just on each socket read."""
        self._pace()
        deadline = time.monotonic() + self.timeout
        log.debug("arXiv: GET %s", url)
        try:
            with self._session.get(
                url, headers={"User-Agent": USER_AGENT}, timeout=self.timeout, stream=True
            ) as response:
                chunks = []
                for chunk in response.iter_content(65536):
                    chunks.append(chunk)
                    if time.monotonic() > deadline:
                        raise _Temporary(f"reply took longer than {self.timeout:g} s")
                body = b"".join(chunks)
        except requests.Timeout:
            raise _Temporary(f"no reply within {self.timeout:g} s") from None
        except requests.RequestException as err:
            raise _Temporary(f"connection failed: {_short(err)}") from None
        finally:
            self._last_request = time.monotonic()
        status = response.status_code
        if status in TEMPORARY_STATUSES:
            raise _Temporary(
                f"HTTP {status}", parse_retry_after(response.headers.get("Retry-After"))
            )
        if status != 200:
            reason = _error_summary(body)
            raise FetchError(f"HTTP {status}" + (f": {reason}" if reason else ""))
        return body

    def _fetch_page(self, url: str, first_page: bool) -> tuple[arxiv.ParsedFeed, int]:
        body = self._download(url)
        try:
            root = ET.fromstring(body)
        except ET.ParseError as err:
            raise _Temporary(f"malformed XML from arXiv ({err})") from None
        if root.tag != f"{ATOM}feed":
            raise _Temporary(f"not an Atom feed (root element {root.tag!r})")
        feed = arxiv._feed.parse(body)
        sent = len(root.findall(f"{ATOM}entry"))
        if sent > len(feed.results):
            log.warning(
                "arXiv: skipped %d of %d entries missing required fields (%s)",
                sent - len(feed.results),
                sent,
                url,
            )
        if not sent and (feed.header.total_results > 0 or not first_page):
            raise _Temporary(
                f"empty page although {feed.header.total_results} results were announced"
            )
        return feed, sent


def _short(err: Exception) -> str:
    text = str(err)
    return text if len(text) < 200 else text[:197] + "..."
