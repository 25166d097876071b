"""A fake arXiv export API: a real HTTP server on 127.0.0.1 speaking the API's Atom.

It answers `GET /api/query?search_query=&start=&max_results=&sortBy=&sortOrder=`
like the real one (opensearch totals, arxiv:comment, arxiv:primary_category,
category terms, authors, links; see tests/fixtures/arxiv-api for real answers),
selects entries by the quoted phrases of the query (ANDNOT phrases remove
entries), pages and sorts, and fails on demand.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape, quoteattr

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class Entry:
    id: str
    title: str
    abstract: str
    published: str
    updated: str
    version: int = 1
    comment: str = ""
    authors: list[str] = field(default_factory=lambda: ["Ada Lovelace"])
    categories: list[str] = field(default_factory=lambda: ["cs.CL"])
    primary_category: str = ""
    terms: list[str] | None = None  # phrases this entry answers; None: match title/abstract
    omit: tuple[str, ...] = ()  # elements left out, to send a broken entry ("published", "id")

    def matches(self, phrase: str) -> bool:
        phrase = phrase.casefold()
        if self.terms is not None:
            return phrase in (t.casefold() for t in self.terms)
        return phrase in self.title.casefold() or phrase in self.abstract.casefold()


def entry(
    id: str,
    title: str,
    *,
    day: str = "2025-03-01",
    abstract: str | None = None,
    **fields: Any,
) -> Entry:
    """A test entry with sensible defaults; `day` sets published and updated."""
    stamp = fields.pop("published", f"{day}T12:00:00+00:00")
    return Entry(
        id=id,
        title=title,
        abstract=abstract if abstract is not None else f"We study {title}.",
        published=stamp,
        updated=fields.pop("updated", stamp),
        **fields,
    )


def seed_entries() -> list[Entry]:
    """The papers of seed-excerpt.md (see fixtures/build_seed_papers.py)."""
    return [Entry(**p) for p in json.loads((FIXTURES / "seed_papers.json").read_text())]


@dataclass
class Fault:
    """What to do instead of a normal answer, for requests whose query contains `phrase`."""

    kind: str  # status | stall | malformed | truncated | empty | raw | drop | overlap
    times: int | None = 1  # None: forever
    phrase: str | None = None
    status: int = 503
    retry_after: str | None = None
    seconds: float = 0.0
    body: bytes = b""
    total: int = 0
    min_start: int = 0  # only for pages starting at or after this index


PHRASE = re.compile(r'"([^"]*)"')


def _stamp(text: str) -> str:
    return datetime.fromisoformat(text).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _wrap(text: str, legacy: bool) -> str:
    """Legacy feeds hard-wrapped text at about 80 columns with newline + two spaces."""
    if not legacy:
        return text
    words, lines, line = text.split(" "), [], ""
    for word in words:
        if line and len(line) + len(word) > 78:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "\n  ".join(lines)


def render_entry(e: Entry, legacy: bool = False) -> str:
    vid = f"{e.id}v{e.version}"
    parts = [
        "  <entry>",
        *([] if "id" in e.omit else [f"    <id>http://arxiv.org/abs/{vid}</id>"]),
        f"    <title>{escape(_wrap(e.title, legacy))}</title>",
        f"    <updated>{_stamp(e.updated)}</updated>",
        f'    <link href="https://arxiv.org/abs/{vid}" rel="alternate" type="text/html"/>',
        f'    <link href="https://arxiv.org/pdf/{vid}" rel="related" type="application/pdf"'
        ' title="pdf"/>',
        f"    <summary>{escape(('  ' if legacy else '') + _wrap(e.abstract, legacy))}</summary>",
    ]
    parts += [
        f'    <category term={quoteattr(c)} scheme="http://arxiv.org/schemas/atom"/>'
        for c in e.categories
    ]
    if "published" not in e.omit:
        parts.append(f"    <published>{_stamp(e.published)}</published>")
    if e.comment:
        parts.append(f"    <arxiv:comment>{escape(_wrap(e.comment, legacy))}</arxiv:comment>")
    primary = e.primary_category or (e.categories[0] if e.categories else "")
    if primary:
        parts.append(f"    <arxiv:primary_category term={quoteattr(primary)}/>")
    parts += [f"    <author>\n      <name>{escape(a)}</name>\n    </author>" for a in e.authors]
    parts.append("  </entry>")
    return "\n".join(parts)


def render_feed(
    entries: list[Entry], query: str, start: int, total: int, legacy: bool = False
) -> bytes:
    head = (
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        '<feed xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" '
        'xmlns:arxiv="http://arxiv.org/schemas/atom" xmlns="http://www.w3.org/2005/Atom">\n'
        "  <id>https://arxiv.org/api/fake</id>\n"
        f"  <title>arXiv Query: search_query={escape(query)}</title>\n"
        f"  <updated>{datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}</updated>\n"
        f"  <opensearch:itemsPerPage>{len(entries)}</opensearch:itemsPerPage>\n"
        f"  <opensearch:totalResults>{total}</opensearch:totalResults>\n"
        f"  <opensearch:startIndex>{start}</opensearch:startIndex>\n"
    )
    body = "".join(render_entry(e, legacy) + "\n" for e in entries)
    return (head + body + "</feed>\n").encode()


class FakeArxiv:
    """The server's state; tests add entries and faults, then read `requests`."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.faults: list[Fault] = []
        self.requests: list[tuple[float, dict[str, str]]] = []
        self.legacy = False
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/api/query"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- test API ---------------------------------------------------------------

    def add(self, *entries: Entry) -> None:
        with self.lock:
            for new in entries:
                self.entries = [e for e in self.entries if e.id != new.id] + [new]

    def fail(self, kind: str = "status", **options: Any) -> None:
        with self.lock:
            self.faults.append(Fault(kind=kind, **options))

    def queries(self) -> list[str]:
        return [params.get("search_query", "") for _, params in self.requests]

    # -- serving ------------------------------------------------------------------

    def select(self, query: str) -> list[Entry]:
        positive, _, negative = query.partition("ANDNOT")
        wanted = PHRASE.findall(positive) or positive.split()
        unwanted = PHRASE.findall(negative)
        return [
            e
            for e in self.entries
            if any(e.matches(p) for p in wanted) and not any(e.matches(p) for p in unwanted)
        ]

    def _take_fault(self, query: str, start: int) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if start < fault.min_start:
                    continue
                if fault.phrase is None or f'"{fault.phrase}"' in query:
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self.faults.remove(fault)
                    return fault
        return None

    def answer(self, params: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        query = params.get("search_query", "")
        start = int(params.get("start", "0"))
        size = int(params.get("max_results", "10"))
        with self.lock:
            matched = self.select(query)
        sort_by = params.get("sortBy", "relevance")
        if sort_by in ("lastUpdatedDate", "submittedDate"):
            field_name = "updated" if sort_by == "lastUpdatedDate" else "published"
            matched.sort(
                key=lambda e: _stamp(getattr(e, field_name)),
                reverse=params.get("sortOrder", "descending") == "descending",
            )
        page = matched[start : start + size]
        return 200, {}, render_feed(page, query, start, len(matched), self.legacy)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without this, Nagle holds the body
            # back until the client acknowledges the headers, 40 ms later.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                params = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                fake.requests.append((time.monotonic(), params))
                fault = fake._take_fault(
                    params.get("search_query", ""), int(params.get("start", "0"))
                )
                if fault is None:
                    self._send(*fake.answer(params))
                    return
                handle: Callable[[Fault, dict[str, str]], None] = getattr(self, f"_{fault.kind}")
                handle(fault, params)

            def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/atom+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def _status(self, fault: Fault, params: dict[str, str]) -> None:
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                self._send(fault.status, headers, fault.body or b"<html>unavailable</html>")

            def _stall(self, fault: Fault, params: dict[str, str]) -> None:
                time.sleep(fault.seconds)
                self._send(*fake.answer(params))

            def _malformed(self, fault: Fault, params: dict[str, str]) -> None:
                self._send(200, {}, b"<?xml version='1.0'?><feed><entry><title>oops</feed>")

            def _truncated(self, fault: Fault, params: dict[str, str]) -> None:
                _, headers, body = fake.answer(params)
                self._send(200, headers, body[: len(body) * 2 // 3])

            def _empty(self, fault: Fault, params: dict[str, str]) -> None:
                query = params.get("search_query", "")
                self._send(200, {}, render_feed([], query, 0, fault.total))

            def _raw(self, fault: Fault, params: dict[str, str]) -> None:
                self._send(fault.status, {}, fault.body)

            def _overlap(self, fault: Fault, params: dict[str, str]) -> None:
                """A later page that starts one entry early, as when a new paper shifts
                the results between two requests: one entry comes twice."""
                start = max(0, int(params.get("start", "0")) - 1)
                self._send(*fake.answer({**params, "start": str(start)}))

            def _drop(self, fault: Fault, params: dict[str, str]) -> None:
                self.close_connection = True
                self.connection.close()

        return Handler
