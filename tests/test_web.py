"""One-click unsubscribe over HTTP: the real server on a real socket, and the links in digests."""

from __future__ import annotations

import http.client
import re
import tomllib
from collections.abc import Iterator

import pytest
from arxiv_server import entry
from conftest import subscribe
from smtp_server import free_port

from newsletter.config import ConfigError, load_settings
from newsletter.cycle import run_cycle
from newsletter.store import Store
from newsletter.tokens import load_or_create_secret, token
from newsletter.web import WebError, WebServer


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


def request(server: WebServer, method: str, path: str, body: str = "") -> tuple[int, str, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
        conn.request(method, path, body=body or None, headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode(), dict(response.getheaders())
    finally:
        conn.close()


def link_of(settings, address: str) -> str:
    return "/unsubscribe/" + token(load_or_create_secret(settings.web.secret_file), address)


def test_get_shows_a_page_and_changes_nothing_post_unsubscribes_at_once(site):
    settings, server = site
    subscribe(settings, "ann@example.org", "MLLM")
    subscribe(settings, "ben@example.org", "MLLM")
    path = link_of(settings, "ann@example.org")

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

    status, page, _ = request(server, "POST", path)
    assert status == 200 and "is unsubscribed" in page, "a repeated POST is harmless"


def test_forged_or_altered_tokens_get_404_and_change_nothing(site):
    settings, server = site
    subscribe(settings, "ann@example.org", "MLLM")
    path = link_of(settings, "ann@example.org")
    altered = path[:-1] + ("a" if path[-1] != "a" else "b")
    forged = "/unsubscribe/" + token(b"not the secret" * 4, "ann@example.org")
    for bad in (altered, forged, "/unsubscribe/x", path + "/../..", "/", "/unsubscribe/"):
        for method in ("GET", "POST"):
            status, _page, _ = request(server, method, bad)
            assert status == 404, (method, bad)
    assert "ann@example.org" not in request(server, "GET", forged)[1]
    assert tomllib.loads((settings.subscribers.dir / "ann@example.org.toml").read_text())


def test_digests_carry_the_public_link_in_headers_and_footer(site, arxiv_server, smtp_server):
    settings, server = site
    subscribe(settings, "ann@example.org", "MLLM")
    arxiv_server.add(entry("2502.00001", "MLLM paper"))
    with Store(settings.store.path) as store:
        run_cycle(settings, store)
    message = smtp_server.messages[0].message
    _mailto, https = re.findall(r"<([^>]+)>", message["List-Unsubscribe"])
    assert https == "https://papers.example.org/list" + link_of(settings, "ann@example.org")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert f'href="{https}"' in message.get_body(("html",)).get_content()

    # The reverse proxy maps the public URL onto our listen address, path unchanged.
    status, _page, _ = request(
        server, "POST", https.removeprefix("https://papers.example.org/list")
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
