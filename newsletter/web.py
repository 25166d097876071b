"""One-click unsubscribe over HTTPS (RFC 8058), served from a thread of the daemon.

    GET  /unsubscribe/TOKEN   a small page naming the address and the list, with one button
    POST /unsubscribe/TOKEN   with the body List-Unsubscribe=One-Click: unsubscribes at
                              once; idempotent; no login, no cookies

GET changes nothing, so link scanners that fetch every URL in a mail cannot
unsubscribe anyone, and neither can a POST without RFC 8058's body. A token
that is not the one of a current subscription (forged, altered, of someone no
longer subscribed, or of an earlier subscription of the address) gets 404 and
changes nothing. The server listens on `[web] listen` (loopback, behind the
admin's reverse proxy, which adds TLS); `[web] public_url` is the address
people reach. A connection gets REQUEST_DEADLINE seconds in all, and at most
MAX_CONNECTIONS are served at once, so slow clients cannot hold it; a client
that leaves early is no error.

It touches only the subscriber files, never the store, so it can run beside
the daemon's cycles without sharing the store between threads. The token
secret is the daemon's own, handed over at start and again after SIGHUP.
"""

from __future__ import annotations

import contextlib
import html
import logging
import re
import socket
import sys
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from .addresses import address_key
from .config import Settings
from .errors import NewsletterError
from .subscribers import Subscriber, load_subscribers, remove_subscriber
from .tokens import TOKEN_LENGTH, Tokens, load_or_create_secret

log = logging.getLogger(__name__)

_PATH = re.compile(rf"^/unsubscribe/([a-z2-7]{{{TOKEN_LENGTH}}})/?$")
MAX_BODY = 4096  # a one-click POST carries "List-Unsubscribe=One-Click"; nothing more is read
REQUEST_TIMEOUT = 10.0  # seconds a client may take for one read
REQUEST_DEADLINE = 20.0  # seconds a connection may last in all, however it trickles
MAX_CONNECTIONS = 32  # served at once; more are refused with 503 at once
ONE_CLICK = "List-Unsubscribe=One-Click"


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

    def __init__(self, settings: Settings, tokens: Tokens):
        self.directory = settings.subscribers.dir
        self.keywords = settings.keyword_names
        self.tokens = tokens
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
            self._by_token = self.tokens.index(roster.subscribers)
            self._stamp = stamp
        return self._by_token

    def use(self, tokens: Tokens) -> None:
        """The daemon's secret after a reload: links signed with it work at once."""
        with self._lock:
            self.tokens = tokens
            self._stamp = None
            self._gone.clear()

    def page(self, tok: str, *, post: bool, one_click: bool = True) -> Page:
        """The page for a token: GET (`post` False) asks, a POST with RFC 8058's body
        (`one_click`) unsubscribes; a POST without it changes nothing."""
        name = html.escape(self.list_name)
        with self._lock:
            person = self._current().get(tok)
            gone = self._gone.get(tok)
            if person is None and gone is not None:
                if all(address_key(s.email) != address_key(gone) for s in self._by_token.values()):
                    return self._done(gone)  # a repeat; unless they have subscribed again
                del self._gone[tok]
            if person is None:
                return Page(
                    HTTPStatus.NOT_FOUND,
                    "Link not valid",
                    "<p>This unsubscribe link is not valid, or its address is no longer "
                    f"subscribed to {name}. Nothing was changed.</p>",
                )
            if not post or not one_click:
                return Page(
                    HTTPStatus.OK if not post else HTTPStatus.BAD_REQUEST,
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


def is_one_click(content_type: str, body: bytes) -> bool:
    """Whether a POST body says List-Unsubscribe=One-Click (RFC 8058), as a form sends it:
    urlencoded, or multipart/form-data."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        return bool(
            re.search(
                rb'name="?List-Unsubscribe"?\s*\r?\n(?:[^\r\n]+\r?\n)*\r?\n\s*One-Click\s*\r?\n',
                body,
            )
        )
    text = body.decode("ascii", "replace")
    return parse_qs(text.strip()).get("List-Unsubscribe") == ["One-Click"]


def _handler(unsubscriber: Unsubscriber) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "DailyPapers"
        sys_version = ""
        timeout = REQUEST_TIMEOUT

        def _answer(self, post: bool, head: bool = False, one_click: bool = False) -> None:
            match = _PATH.match(self.path.split("?", 1)[0])
            if match is None:
                page = Page(HTTPStatus.NOT_FOUND, "Not found", "<p>Nothing here.</p>")
            else:
                page = unsubscriber.page(match.group(1), post=post, one_click=one_click)
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
            body = self.rfile.read(length) if length > 0 else b""
            one_click = is_one_click(self.headers.get("Content-Type") or "", body)
            self._answer(post=True, one_click=one_click)

        def log_message(self, format: str, *args: Any) -> None:
            # The token is a credential: it never goes into the log.
            text = format % args
            log.debug("web: %s %s", self.address_string(), _PATH_TOKEN.sub("/unsubscribe/…", text))

    return Handler


_PATH_TOKEN = re.compile(r"/unsubscribe/[^ /?\"]+")


def _cut(connection: socket.socket) -> None:
    """The connection's time is up: a read or write blocked on it returns at once."""
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)


class _Server(ThreadingHTTPServer):
    """A thread per connection, at most MAX_CONNECTIONS of them, each cut off after
    REQUEST_DEADLINE seconds; a client that goes away early is not an error."""

    daemon_threads = True
    max_connections = MAX_CONNECTIONS
    deadline = REQUEST_DEADLINE

    def server_activate(self) -> None:
        self.slots = threading.BoundedSemaphore(self.max_connections)
        super().server_activate()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.settimeout(1.0)
                request.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 10\r\n"
                    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
                )
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        timer = threading.Timer(self.deadline, _cut, (request,))
        timer.daemon = True
        timer.start()
        try:
            super().process_request_thread(request, client_address)
        finally:
            timer.cancel()
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError):  # the client left, or its time ran out
            log.debug("web: %s: %s", client_address[0], error)
            return
        log.exception("web: serving %s failed", client_address[0])


class _Server6(_Server):
    address_family = socket.AF_INET6


class WebServer:
    """The unsubscribe pages in a background thread: start() binds and serves, stop() ends."""

    def __init__(self, settings: Settings, tokens: Tokens | None = None):
        """`tokens`: the daemon's secret (and legacy cutoff); read from the secret file
        when not given (a web server alone, in the tests)."""
        self.settings = settings
        self.tokens = tokens
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._unsubscriber: Unsubscriber | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    def start(self) -> None:
        web = self.settings.web
        if not web.listen_host:
            raise WebError(f"{self.settings.file}: [web] listen is not set")
        tokens = self.tokens or Tokens(load_or_create_secret(web.secret_file))
        self._unsubscriber = Unsubscriber(self.settings, tokens)
        handler = _handler(self._unsubscriber)
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

    def use(self, tokens: Tokens) -> None:
        """Sign with this secret from now on (the daemon reloaded it)."""
        self.tokens = tokens
        if self._unsubscriber is not None:
            self._unsubscriber.use(tokens)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
