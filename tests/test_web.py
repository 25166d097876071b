"""One-click unsubscribe over HTTP: the real server on a real socket, and the links in digests."""

from __future__ import annotations

import http.client
import logging
import re
import socket
import struct
import time
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from arxiv_server import entry
from conftest import subscribe
from smtp_server import free_port

from newsletter import web
from newsletter.config import ConfigError, load_settings
from newsletter.cycle import run_cycle
from newsletter.store import Store
from newsletter.subscribers import Subscriber
from newsletter.tokens import Tokens, legacy_cutoff, legacy_token, load_or_create_secret, token
from newsletter.web import ONE_CLICK, WebError, WebServer


@pytest.fixture
def site(make_settings) -> Iterator[tuple]:
    settings = make_settings(
        keywords=["MLLM"],
        web={"listen": f"127.0.0.1:{free_port()}", "public_url": "https://papers.example.org/list"},
    )
    server = WebServer(settings)
    server.start()
    yield settings, server
    server.stop()


def request(
    server: WebServer,
    method: str,
    path: str,
    body: str = "",
    content_type: str = "application/x-www-form-urlencoded",
) -> tuple[int, str, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        headers = {"Content-Type": content_type} if body and content_type else {}
        conn.request(method, path, body=body or None, headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode(), dict(response.getheaders())
    finally:
        conn.close()


def link_of(settings, subscriber: Subscriber) -> str:
    """The path of the one-click link in this subscription's digests."""
    secret = load_or_create_secret(settings.web.secret_file)
    return "/unsubscribe/" + token(secret, subscriber.email, subscriber.created)


def test_get_shows_a_page_and_changes_nothing_post_unsubscribes_at_once(site):
    settings, server = site
    ann = subscribe(settings, "ann@example.org", "MLLM")
    subscribe(settings, "ben@example.org", "MLLM")
    path = link_of(settings, ann)

    status, page, headers = request(server, "GET", path)
    assert status == 200
    assert "<strong>ann@example.org</strong>" in page and "Daily Papers" in page
    assert '<form method="post">' in page and "<button" in page
    assert "Set-Cookie" not in headers and headers["Cache-Control"] == "no-store"
    assert request(server, "HEAD", path)[0] == 200
    assert (settings.subscribers.dir / "ann@example.org.toml").exists(), "GET changed nothing"

    # What Gmail sends for RFC 8058 one-click: a POST with this body.
    status, page, _ = request(server, "POST", path, "List-Unsubscribe=One-Click")
    assert status == 200 and "is unsubscribed" in page
    assert not (settings.subscribers.dir / "ann@example.org.toml").exists()
    assert (settings.subscribers.dir / "ben@example.org.toml").exists()

    status, page, _ = request(server, "POST", path, "List-Unsubscribe=One-Click")
    assert status == 200 and "is unsubscribed" in page, "a repeated POST is harmless"


@pytest.mark.parametrize(
    "body, content_type",
    [
        ("", ""),
        ("anything=else", "application/x-www-form-urlencoded"),
        ("List-Unsubscribe=Two-Clicks", "application/x-www-form-urlencoded"),
        (
            "List-Unsubscribe=One-Click&List-Unsubscribe=One-Click",
            "application/x-www-form-urlencoded",
        ),
    ],
)
def test_a_post_without_rfc_8058s_body_changes_nothing(site, body, content_type):
    settings, server = site
    ann = subscribe(settings, "ann@example.org", "MLLM")
    status, page, _ = request(server, "POST", link_of(settings, ann), body, content_type)
    assert status == 400 and "<button" in page
    assert (settings.subscribers.dir / "ann@example.org.toml").exists()


def test_one_click_as_multipart_form_data_unsubscribes(site):
    settings, server = site
    ann = subscribe(settings, "ann@example.org", "MLLM")
    body = (
        '--XyZ\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
        "One-Click\r\n--XyZ--\r\n"
    )
    status, _, _ = request(
        server, "POST", link_of(settings, ann), body, "multipart/form-data; boundary=XyZ"
    )
    assert status == 200
    assert not (settings.subscribers.dir / "ann@example.org.toml").exists()


def test_an_old_token_does_nothing_after_the_person_subscribes_again(site):
    settings, server = site
    first = subscribe(settings, "ann@example.org", "MLLM")
    old = link_of(settings, first)
    assert request(server, "POST", old, "List-Unsubscribe=One-Click")[0] == 200
    again = subscribe(settings, "ann@example.org", "MLLM")
    assert again.created != first.created, "a new subscription"

    status, _, _ = request(server, "POST", old, "List-Unsubscribe=One-Click")
    assert status == 404, "the leaked link of the first subscription"
    assert (settings.subscribers.dir / "ann@example.org.toml").exists()
    assert request(server, "POST", link_of(settings, again), "List-Unsubscribe=One-Click")[0] == 200
    assert not (settings.subscribers.dir / "ann@example.org.toml").exists()


def test_forged_or_altered_tokens_get_404_and_change_nothing(site):
    settings, server = site
    ann = subscribe(settings, "ann@example.org", "MLLM")
    path = link_of(settings, ann)
    altered = path[:-1] + ("a" if path[-1] != "a" else "b")
    forged = "/unsubscribe/" + token(b"not the secret" * 4, ann.email, ann.created)
    for bad in (altered, forged, "/unsubscribe/x", path + "/../..", "/", "/unsubscribe/"):
        for method in ("GET", "POST"):
            status, _page, _ = request(server, method, bad, "List-Unsubscribe=One-Click")
            assert status == 404, (method, bad)
    assert "ann@example.org" not in request(server, "GET", forged)[1]
    assert tomllib.loads((settings.subscribers.dir / "ann@example.org.toml").read_text())


def test_digests_carry_the_public_link_in_headers_and_footer(site, arxiv_server, smtp_server):
    settings, server = site
    ann = subscribe(settings, "ann@example.org", "MLLM")
    arxiv_server.add(entry("2502.00001", "MLLM paper"))
    with Store(settings.store.path) as store:
        run_cycle(settings, store)
    message = smtp_server.messages[0].message
    _mailto, https = re.findall(r"<([^>]+)>", message["List-Unsubscribe"])
    assert https == "https://papers.example.org/list" + link_of(settings, ann)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert f'href="{https}"' in message.get_body(("html",)).get_content()

    # The reverse proxy maps the public URL onto our listen address, path unchanged.
    status, _page, _ = request(
        server, "POST", https.removeprefix("https://papers.example.org/list"), ONE_CLICK
    )
    assert status == 200 and not (settings.subscribers.dir / "ann@example.org.toml").exists()


def test_a_port_in_use_is_one_clear_error(site, make_settings):
    _settings, server = site
    taken = make_settings(
        keywords=["MLLM"],
        web={"listen": f"127.0.0.1:{server.port}", "public_url": "https://papers.example.org"},
    )
    with pytest.raises(WebError, match=rf"\[web\] listen 127.0.0.1:{server.port}: "):
        WebServer(taken).start()


@pytest.mark.parametrize(
    "web, message",
    [
        ('listen = "127.0.0.1:8025"', "[web] public_url must be set when listen is set"),
        ('public_url = "https://x.org"', "[web] listen must be set when public_url is set"),
        (
            'listen = "localhost"\npublic_url = "https://x.org"',
            '[web] listen must be a "HOST:PORT" like "127.0.0.1:8025", got "localhost"',
        ),
        (
            'listen = "127.0.0.1:8025"\npublic_url = "http://x.org"',
            '[web] public_url must be an https:// URL, got "http://x.org"',
        ),
    ],
)
def test_web_settings_errors(tmp_path, web, message):
    path = tmp_path / "settings.toml"
    path.write_text(f'[[keywords]]\nname = "MLLM"\n[web]\n{web}\n')
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(path)


def test_the_old_digest_unsubscribe_url_says_where_it_moved(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text('[[keywords]]\nname = "MLLM"\n[digest]\nunsubscribe_url = "https://x.org/u"\n')
    with pytest.raises(ConfigError, match=r"\[digest\] unsubscribe_url has moved: set \[web\]"):
        load_settings(path)


def test_slow_clients_are_cut_off_at_the_deadline_and_connections_are_bounded(
    make_settings, monkeypatch, capfd, caplog
):
    """A client trickling one byte at a time (each read is quick, so a per-read timeout
    never fires) is cut off at the whole-request deadline; while the connections are all
    taken, more are refused at once; clients that vanish mid-request are no error."""
    monkeypatch.setattr(web._Server, "deadline", 0.5)
    monkeypatch.setattr(web._Server, "max_connections", 2)
    settings = make_settings(
        keywords=["MLLM"],
        web={"listen": f"127.0.0.1:{free_port()}", "public_url": "https://papers.example.org"},
    )
    server = WebServer(settings)
    server.start()
    try:
        slow = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(2)]
        for conn in slow:
            conn.sendall(b"GET /unsubscribe/")
        time.sleep(0.1)
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as third:
            third.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert third.recv(100).startswith(b"HTTP/1.1 503 "), "all connections taken"

        started = time.monotonic()
        while time.monotonic() - started < 5:
            try:
                slow[0].sendall(b"a")
                if slow[0].recv(1, socket.MSG_DONTWAIT) == b"":
                    break  # the server shut the connection
            except BlockingIOError:
                pass  # nothing to read: still open
            except OSError:
                break  # reset
            time.sleep(0.1)
        open_for = time.monotonic() - started
        assert open_for < 1.5, f"cut off at the deadline, not per read ({open_for:.1f} s)"
        for conn in slow:
            conn.close()
        time.sleep(0.3)

        for early in (b"GET /unsubscribe/", b"POST /unsubscribe/x HTTP/1.1\r\nContent-Length: 9"):
            conn = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            conn.sendall(early)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # a reset, mid-request
        # The two reset connections free their slots as their threads see the reset.
        deadline = time.monotonic() + 5
        while (status := request(server, "GET", "/")[0]) == 503 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert status == 404, "served again"
    finally:
        server.stop()
    assert "Traceback" not in capfd.readouterr().err
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_links_of_the_release_before_keep_working_90_days_for_the_subscriptions_of_then():
    """Before tokens were bound to a subscription they were an HMAC of the address alone;
    the digests already mailed carry those. They keep unsubscribing the subscriptions
    that existed when this release first ran, for 90 days, and nobody else."""
    secret = b"s" * 64
    upgraded = datetime(2025, 3, 1, tzinfo=UTC)
    then = Subscriber("ann@example.org", ("MLLM",), created="2025-01-05T10:00:00+00:00")
    again = Subscriber("ben@example.org", ("MLLM",), created="2025-03-02T10:00:00.5+00:00")
    cutoff = legacy_cutoff(upgraded.isoformat(), upgraded + timedelta(days=30))
    tokens = Tokens(secret, cutoff)
    assert tokens.find(legacy_token(secret, then.email), [then, again]) is then
    assert tokens.find(legacy_token(secret, again.email), [then, again]) is None
    assert tokens.find(token(secret, again.email, again.created), [then, again]) is again
    assert legacy_cutoff(upgraded.isoformat(), upgraded + timedelta(days=91)) == ""
