"""The inbox over IMAP, against a real IMAP server (pymap) on 127.0.0.1."""

from __future__ import annotations

import tomllib

import pytest
from conftest import run_cli
from imap_server import PASSWORD, USER, ImapServer
from mails import INBOX, mail, reply_to

from newsletter.inbox.actions import Inbox
from newsletter.inbox.poll import poll_inbox
from newsletter.inbox.sources import PROCESSED_FLAG
from newsletter.store import Store

ANN = "Ann <ann@example.org>"


@pytest.fixture
def imap(tmp_path):
    server = ImapServer(tmp_path, "maildir")
    yield server
    server.stop()


def imap_settings(make_settings, server: ImapServer, **changes):
    inbox = {
        "address": INBOX,
        "imap_host": "127.0.0.1",
        "imap_port": server.port,
        "security": "none",
        "username": USER,
        "password_env": "TEST_IMAP_PASSWORD",
        "timeout_seconds": 5,
    }
    return make_settings(keywords=["MLLM", "Reasoning"], inbox=inbox | changes)


def poll(settings):
    with Store(settings.store.path) as store:
        return poll_inbox(settings, store)


def test_subscribe_and_confirm_over_imap_marks_each_message_once(
    make_settings, imap, smtp_server, monkeypatch
):
    monkeypatch.setenv("TEST_IMAP_PASSWORD", PASSWORD)
    settings = imap_settings(make_settings, imap)
    imap.append(mail(ANN, "subscribe Reasoning"))
    report = poll(settings)
    assert (report.read, report.replies_sent, report.error) == (1, 1, "")
    assert imap.flags() == [{"\\Seen", PROCESSED_FLAG}]

    imap.append(reply_to(smtp_server.messages[0], ANN))
    poll(settings)
    saved = tomllib.loads((settings.subscribers.dir / "ann@example.org.toml").read_text())
    assert saved["keywords"] == ["Reasoning"] and saved["source"] == "email"
    assert poll(settings).read == 0, "nothing new"

    # Someone marks everything unread in a mail client: nothing is acted on twice.
    imap.clear_flags()
    report = poll(settings)
    assert (report.read, report.ignored) == (2, 2)
    assert len(smtp_server.messages) == 2
    assert imap.flags() == [{"\\Seen", PROCESSED_FLAG}] * 2


def test_a_server_that_cannot_keep_keywords_falls_back_to_seen(
    make_settings, tmp_path, smtp_server, monkeypatch
):
    monkeypatch.setenv("TEST_IMAP_PASSWORD", PASSWORD)
    server = ImapServer(tmp_path, "dict")
    try:
        settings = imap_settings(make_settings, server)
        server.append(mail(ANN, "help"), mail("ben@example.org", "help"))
        assert poll(settings).replies_sent == 2
        assert server.flags() == [{"\\Seen"}, {"\\Seen"}]
        assert poll(settings).read == 0
    finally:
        server.stop()


def test_imap_problems_are_one_line_and_exit_1(make_settings, imap, smtp_server):
    settings = imap_settings(make_settings, imap)
    result = run_cli(
        "--settings", str(settings.file), "inbox", "--once", env={"TEST_IMAP_PASSWORD": "wrong"}
    )
    assert result.returncode == 1
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith("inbox: read 0")
    assert f"FAILED: [inbox] imap_host 127.0.0.1:{imap.port}: " in line

    missing = run_cli("--settings", str(settings.file), "inbox", "--once", env={})
    assert missing.returncode == 1
    assert "[inbox] password_env: the environment variable TEST_IMAP_PASSWORD is not set" in (
        missing.stdout
    )

    settings = imap_settings(make_settings, imap, folder="Archive")
    result = run_cli(
        "--settings", str(settings.file), "inbox", "--once", env={"TEST_IMAP_PASSWORD": PASSWORD}
    )
    assert result.returncode == 1
    assert "cannot open folder 'Archive'" in result.stdout


def test_a_message_that_keeps_failing_is_set_aside_flagged_over_imap(
    make_settings, imap, smtp_server, monkeypatch
):
    monkeypatch.setenv("TEST_IMAP_PASSWORD", PASSWORD)

    def broken(self, incoming, command):
        raise RuntimeError("a bug that this message meets")

    monkeypatch.setattr(Inbox, "_help", broken)
    settings = imap_settings(make_settings, imap)
    imap.append(mail(ANN, "help"), mail("ben@example.org", "subscribe MLLM"))
    for n in range(3):
        report = poll(settings)
        assert len(smtp_server.messages) == 1, "ben's request is answered once, at once"
        if n < 2:
            assert "RuntimeError: a bug that this message meets; tried again" in report.error
            assert imap.flags() == [set(), {"\\Seen", PROCESSED_FLAG}]
    assert (report.set_aside, report.error) == (1, "")
    assert imap.flags() == [{"\\Seen", "\\Flagged", PROCESSED_FLAG}, {"\\Seen", PROCESSED_FLAG}]
    assert poll(settings).read == 0
