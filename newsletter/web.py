"""One-click unsubscribe over HTTPS (RFC 8058), served from a thread of the daemon.

    GET  /unsubscribe/TOKEN   a small page naming the address and the list, with one button
    POST /unsubscribe/TOKEN   unsubscribes at once; idempotent; no login, no cookies

GET changes nothing, so link scanners that fetch every URL in a mail cannot
unsubscribe anyone. A token that is not the HMAC of a subscriber's address
(forged, altered, or of someone no longer subscribed) gets 404 and changes
nothing. The server listens on `[web] listen` (loopback, behind the admin's
reverse proxy, which adds TLS); `[web] public_url` is the address people reach.

It touches only the subscriber files, never the store, so it can run beside
the daemon's cycles without sharing the store between threads.
"""

from __future__ import annotations

import html
import logging
import re
import socket
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .config import Settings
from .errors import NewsletterError
from .subscribers import Subscriber, load_subscribers, remove_subscriber
from .tokens import TOKEN_LENGTH, load_or_create_secret, token

log = logging.getLogger(__name__)

_PATH = re.compile(rf"^/unsubscribe/([a-z2-7]{{{TOKEN_LENGTH}}})/?$")
MAX_BODY = 4096  # a one-click POST carries "List-Unsubscribe=One-Click"; nothing more is read
REQUEST_TIMEOUT = 10.0  # seconds a client may take to send its request


class WebError(NewsletterError):
    """The web server cannot start; str() names the setting."""


@dataclass(frozen=True)
class Page:
    status: HTTPStatus
    title: str
    body: str  # HTML, already escaped
    button: bool = False


class Unsubscriber:
    """Token → subscriber, from the subscriber files (re-read when the folder changes)."""

    def __init__(self, settings: Settings, secret: bytes):
        self.directory = settings.subscribers.dir
        self.keywords = settings.keyword_names
        self.secret = secret
        self.list_name = settings.digest.list_name
        self._lock = threading.Lock()
        self._stamp: int | None = None
        self._by_token: dict[str, Subscriber] = {}
        self._gone: dict[str, str] = {}  # token → address unsubscribed here, for idempotent repeats

    def _current(self) -> dict[str, Subscriber]:
        try:
            stamp = self.directory.stat().st_mtime_ns
        except FileNotFoundError:
            stamp = 0
        if stamp != self._stamp:
            roster = load_subscribers(self.directory, self.keywords)
            self._by_token = {token(self.secret, s.email): s for s in roster.subscribers}
            self._stamp = stamp
        return self._by_token

    def page(self, tok: str, *, post: bool) -> Page:
        name = html.escape(self.list_name)
        with self._lock:
            person = self._current().get(tok)
            if person is None and tok in self._gone:
                return self._done(self._gone[tok])
            if person is None:
                return Page(
                    HTTPStatus.NOT_FOUND,
                    "Link not valid",
                    "<p>This unsubscribe link is not valid, or its address is no longer "
                    f"subscribed to {name}. Nothing was changed.</p>",
                )
            if not post:
                return Page(
                    HTTPStatus.OK,
                    f"Unsubscribe from {self.list_name}",
                    f"<p>Stop sending {name} digests to <strong>{html.escape(person.email)}"
                    "</strong>?</p>",
                    button=True,
                )
            try:
                remove_subscriber(self.directory, person.email)
            except OSError as err:
                log.error("web: cannot unsubscribe %s: %s", person.email, err)
                return Page(
                    HTTPStatus.SERVICE_UNAVAILABLE,
                    "Please try again later",
                    "<p>The unsubscription could not be saved just now. Nothing was changed; "
                    "please try again in a few minutes.</p>",
                )
            self._gone[tok] = person.email
            self._stamp = None
        log.info("web: %s unsubscribed", person.email)
        return self._done(person.email)

    def _done(self, address: str) -> Page:
        return Page(
            HTTPStatus.OK,
            "Unsubscribed",
            f"<p><strong>{html.escape(address)}</strong> is unsubscribed from "
            f"{html.escape(self.list_name)}: no more digests will be sent.</p>",
        )


def render(page: Page) -> bytes:
    button = (
        '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>'
        if page.button
        else ""
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{html.escape(page.title)}</title>"
        "<style>body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;"
        "max-width:32em;margin:3em auto;padding:0 1em;color:#1f2328;line-height:1.5}"
        "button{font-size:1em;padding:.5em 1.2em;cursor:pointer}</style></head>"
        f"<body><h1>{html.escape(page.title)}</h1>{page.body}{button}</body></html>\n"
    ).encode()


def _handler(unsubscriber: Unsubscriber) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "DailyPapers"
        sys_version = ""
        timeout = REQUEST_TIMEOUT

        def _answer(self, post: bool, head: bool = False) -> None:
            match = _PATH.match(self.path.split("?", 1)[0])
            if match is None:
                page = Page(HTTPStatus.NOT_FOUND, "Not found", "<p>Nothing here.</p>")
            else:
                page = unsubscriber.page(match.group(1), post=post)
            body = render(page)
            self.send_response(page.status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("X-Robots-Tag", "noindex")
            self.send_header(
                "Content-Security-Policy",
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
            )
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer(post=False)

        def do_HEAD(self) -> None:
            self._answer(post=False, head=True)

        def do_POST(self) -> None:
            try:
                length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
            except ValueError:
                length = 0
            if length > 0:
                self.rfile.read(length)
            self._answer(post=True)

        def log_message(self, format: str, *args: Any) -> None:
            # The token is a credential: it never goes into the log.
            text = format % args
            log.debug("web: %s %s", self.address_string(), _PATH_TOKEN.sub("/unsubscribe/…", text))

    return Handler


_PATH_TOKEN = re.compile(r"/unsubscribe/[^ /?\"]+")


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class WebServer:
    """The unsubscribe pages in a background thread: start() binds and serves, stop() ends."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    def start(self) -> None:
        web = self.settings.web
        if not web.listen_host:
            raise WebError(f"{self.settings.file}: [web] listen is not set")
        secret = load_or_create_secret(web.secret_file)
        handler = _handler(Unsubscriber(self.settings, secret))
        server_class = _Server6 if ":" in web.listen_host else _Server
        try:
            server = server_class((web.listen_host, web.listen_port), handler)
        except OSError as err:
            raise WebError(f"[web] listen {web.listen}: {err.strerror or err}") from None
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="web", daemon=True
        )
        self._thread.start()
        log.info("web: unsubscribe pages on %s, public at %s", web.listen, web.public_url)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
