"""Commands by email, end to end: mail delivered into a real Maildir, the inbox run,
the subscriber files it leaves, and the replies a real SMTP server received."""

from __future__ import annotations

import email
import json
import logging
import os
import re
import signal
import time
import tomllib
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import unquote

import pytest
from arxiv_server import entry
from conftest import run_cli, subscribe
from digest_reader import paper_ids
from mails import (
    INBOX,
    bounce_of,
    confirmation_code,
    deliver,
    dsn,
    mail,
    make_maildir,
    reply_to,
)

from newsletter.cycle import run_cycle
from newsletter.inbox.poll import poll_inbox
from newsletter.status import format_status, gather
from newsletter.store import BouncePolicy, Delivery, Store
from newsletter.tokens import load_secret, token

ANN = "Ann Lee <ann@example.org>"


@pytest.fixture
def maildir(tmp_path):
    return make_maildir(tmp_path / "Maildir")


@pytest.fixture
def settings(make_settings, maildir, tmp_path):
    return make_settings(
        keywords=["Hallucination", "MLLM", "Reasoning"],
        inbox={"address": INBOX, "maildir": str(tmp_path / "Maildir")},
    )


def poll(settings, **options):
    with Store(settings.store.path) as store:
        return poll_inbox(settings, store, **options)


def cycle(settings):
    with Store(settings.store.path) as store:
        return run_cycle(settings, store)


def subscriber_file(settings, address="ann@example.org"):
    path = settings.subscribers.dir / f"{address}.toml"
    return tomllib.loads(path.read_text()) if path.exists() else None


def replies(smtp_server, address="ann@example.org") -> list[EmailMessage]:
    return [r.message for r in smtp_server.to(address)]


def test_subscribe_confirm_then_the_first_digest_is_the_welcome_issue(
    settings, maildir, smtp_server, arxiv_server
):
    arxiv_server.add(entry("2502.00001", "MLLM paper"), entry("2503.00001", "Hallucination one"))
    deliver(maildir, mail(ANN, "subscribe mllm", message_id="<ask@client.example.net>"))
    report = poll(settings)
    assert (report.read, report.acted, report.replies_sent, report.error) == (1, 1, 1, "")
    assert subscriber_file(settings) is None, "nothing before the confirmation"

    (ask,) = smtp_server.messages
    question = ask.message
    assert ask.mail_from == INBOX
    assert question["From"] == f"Daily Papers <{INBOX}>"
    assert question["Auto-Submitted"] == "auto-replied"
    assert question["In-Reply-To"] == "<ask@client.example.net>"
    assert "subscribe ann@example.org to Daily Papers (MLLM)" in question.get_content()

    deliver(maildir, reply_to(smtp_server.messages[0], ANN))
    poll(settings)
    saved = subscriber_file(settings)
    assert saved["keywords"] == ["MLLM"]
    assert saved["name"] == "Ann Lee"
    assert saved["source"] == "email"
    assert datetime.fromisoformat(saved["confirmed"]) <= datetime.now(UTC)
    done = replies(smtp_server)[-1]
    assert done["Subject"] == "Daily Papers: subscribed to MLLM"

    smtp_server.messages.clear()
    assert cycle(settings).delivery.sent == 1
    (digest,) = replies(smtp_server)
    assert digest["Subject"] == "[Daily Papers] Welcome: 1 recent papers: MLLM"
    assert paper_ids(digest) == ["2502.00001"]


def test_without_confirmation_only_the_question_is_sent_and_it_expires(
    settings, maildir, smtp_server, arxiv_server
):
    arxiv_server.add(entry("2502.00001", "MLLM paper"))
    deliver(maildir, mail(ANN, "Subscribe MLLM, Reasoning"))
    poll(settings)
    cycle(settings)
    (question,) = smtp_server.messages
    assert "confirm" in question.message["Subject"]

    later = datetime.now(UTC) + timedelta(hours=49)
    deliver(maildir, reply_to(question, ANN))
    poll(settings, now=later)
    assert subscriber_file(settings) is None
    assert "unknown or has expired" in replies(smtp_server)[-1].get_content()


def test_nobody_can_subscribe_somebody_else_nor_forge_a_code(settings, maildir, smtp_server):
    # Mallory writes in Ann's name: the question goes to Ann, never to Mallory.
    deliver(
        maildir,
        mail(ANN, "subscribe all", headers={"Reply-To": "mallory@evil.example"}),
    )
    poll(settings)
    (question,) = smtp_server.messages
    assert question.rcpt_tos == ("ann@example.org",)
    code = confirmation_code(question)

    altered = code[:-1] + ("a" if code[-1] != "a" else "b")
    deliver(
        maildir,
        mail("mallory@evil.example", f"confirm {altered}"),
        mail(ANN, "Re: please confirm", f"confirm {'a' * 26}"),
    )
    poll(settings)
    assert subscriber_file(settings) is None
    assert "unknown or has expired" in replies(smtp_server, "mallory@evil.example")[0].get_content()
    assert "unknown or has expired" in replies(smtp_server)[-1].get_content()

    # The real code still works, once.
    deliver(maildir, mail(ANN, f"Re: Daily Papers: please confirm (confirm {code})"))
    poll(settings)
    assert subscriber_file(settings)["keywords"] == ["Hallucination", "MLLM", "Reasoning"]


def test_the_list_unsubscribe_address_of_a_real_digest_unsubscribes_at_once(
    settings, maildir, smtp_server, arxiv_server
):
    subscribe(settings, "ann@example.org", "MLLM")
    subscribe(settings, "ben@example.org", "MLLM")
    arxiv_server.add(entry("2502.00001", "MLLM paper"))
    cycle(settings)
    digest = replies(smtp_server)[0]
    mailto = re.search(r"<mailto:([^?>]+)\?subject=([^>]+)>", digest["List-Unsubscribe"])
    assert mailto.group(1) == INBOX, "unsubscribe mail goes to the inbox, not to digest.from"
    assert digest["From"] == "Daily Papers <papers@example.org>"

    # What a mail client's unsubscribe button sends: the mailto's subject, no body.
    deliver(maildir, mail("ann@example.org", unquote(mailto.group(2)), to=mailto.group(1)))
    report = poll(settings)
    assert report.acted == 1
    assert subscriber_file(settings) is None
    assert subscriber_file(settings, "ben@example.org") is not None
    assert replies(smtp_server)[-1]["Subject"] == "Daily Papers: unsubscribed"

    smtp_server.messages.clear()
    arxiv_server.add(entry("2502.00002", "MLLM paper 2", day="2025-03-02"))
    assert cycle(settings).delivery.sent == 1
    assert [m.to for m in smtp_server.messages] == ["ben@example.org"]


def test_auto_replies_bounces_and_lists_are_never_answered(settings, maildir, smtp_server):
    deliver(maildir, mail(ANN, "subscribe MLLM"))
    poll(settings)
    (question,) = smtp_server.messages
    code = confirmation_code(question)
    # A vacation responder answers our question, quoting the code: no loop, no subscription.
    robots = [
        mail(ANN, f"Out of office: Re: confirm {code}", headers={"Auto-Submitted": "auto-replied"}),
        mail(ANN, f"Re: confirm {code}", headers={"Precedence": "bulk"}),
        mail(ANN, "subscribe MLLM", headers={"List-Id": "<other.lists.example.org>"}),
        mail(ANN, "help", headers={"X-Autoreply": "yes"}),
        mail("MAILER-DAEMON@relay.example.org", "help"),
        mail(f"Daily Papers <{INBOX}>", "help"),
    ]
    deliver(maildir, *robots)
    report = poll(settings)
    assert (report.read, report.ignored, report.acted) == (6, 6, 0)
    assert len(smtp_server.messages) == 1, "nothing answered"
    assert subscriber_file(settings) is None
    assert not list((settings.inbox.maildir / "new").iterdir()), "all marked handled"


def test_bounce_reports_count_once_and_only_when_they_answer_our_digest_to_that_subscriber(
    make_settings, maildir, smtp_server, arxiv_server, tmp_path
):
    settings = make_settings(
        keywords=["MLLM"],
        inbox={"address": INBOX, "maildir": str(tmp_path / "Maildir")},
        smtp={"max_bounces": 2},
    )
    for name in ("gone", "ok", "mallory"):
        subscribe(settings, f"{name}@example.org", "MLLM")
    arxiv_server.add(entry("2502.00001", "MLLM paper"))
    assert cycle(settings).delivery.sent == 3
    assert {m.mail_from for m in smtp_server.messages} == {INBOX}, "bounces come to the inbox"
    digest = {m.to: m for m in smtp_server.messages}

    # Forgeries: a report in Postfix's form returning nothing of ours; one from a
    # stranger (no null sender) with the same block 50 times; a subscriber's own
    # digest returned in a report that names somebody else; a delay, not a failure.
    stranger = "Helpful Relay <postmaster@evil.example>"
    block = b"\r\n\r\nFinal-Recipient: rfc822; gone@example.org\r\nAction: failed\r\nStatus: 5.1.1"
    fifty = (
        dsn("gone@example.org")
        .replace(b"Return-Path: <>", f"Return-Path: <{stranger}>".encode())
        .replace(b"From: MAILER-DAEMON@relay.example.org", f"From: {stranger}".encode())
        .replace(
            b"\r\n\r\n--B\r\nContent-Type: text/rfc822",
            block * 49 + b"\r\n\r\n--B\r\nContent-Type: text/rfc822",
        )
    )
    deliver(
        maildir,
        dsn("gone@example.org"),
        dsn("ok@example.org"),
        fifty,
        bounce_of(digest["mallory@example.org"], recipient="gone@example.org", sender=stranger),
        bounce_of(digest["mallory@example.org"], recipient="ok@example.org"),
        dsn("ok@example.org", status="4.2.2", action="delayed"),
    )
    report = poll(settings)
    assert (report.read, report.bounces, report.replies_sent) == (6, 0, 0)
    with Store(settings.store.path) as store:
        assert all(d.bounces == 0 for d in store.deliveries.all().values()), "nothing changed"

    # A relay's genuine report on gone's digest counts, once, however often it arrives.
    genuine = bounce_of(digest["gone@example.org"])
    deliver(maildir, genuine, genuine.replace(b"Message-Id: <", b"Message-Id: <again."))
    report = poll(settings)
    assert report.bounces == 1
    with Store(settings.store.path) as store:
        assert store.deliveries.get("gone@example.org").bounces == 1

    # The next digest is refused too (its headers returned, this time): now bouncing.
    smtp_server.messages.clear()
    arxiv_server.add(entry("2502.00002", "MLLM paper 2", day="2025-03-02"))
    assert cycle(settings).delivery.sent == 3
    deliver(maildir, bounce_of(smtp_server.to("gone@example.org")[0], returned="headers"))
    assert poll(settings).bounces == 1

    arxiv_server.add(entry("2502.00003", "MLLM paper 3", day="2025-03-03"))
    third = cycle(settings)
    assert (third.delivery.sent, third.delivery.bouncing) == (2, 1)
    listing = run_cli("--settings", str(settings.file), "subscribers")
    assert re.search(
        r"gone@example.org: MLLM; .*bouncing \(2 refusals: bounce report: 5.1.1 smtp; 550 5.1.1",
        listing.stdout,
    )
    assert "ok@example.org: MLLM; daily; last delivery" in listing.stdout
    status = run_cli("--settings", str(settings.file), "status")
    assert "bouncing: gone@example.org (2 refusals" in status.stdout

    # Any command from the address brings it back: its digests are tried again.
    smtp_server.messages.clear()
    deliver(maildir, mail("gone@example.org", "help"))
    poll(settings)
    arxiv_server.add(entry("2502.00004", "MLLM paper 4", day="2025-03-04"))
    assert cycle(settings).delivery.sent == 3
    assert smtp_server.to("gone@example.org")


def test_a_bounce_older_than_bounce_days_no_longer_counts(tmp_path):
    old = (datetime.now(UTC) - timedelta(days=31)).isoformat(timespec="seconds")
    policy = BouncePolicy(max_bounces=2, days=30)
    with Store(tmp_path / "state.json") as store:
        store.deliveries.records["ann@example.org"] = Delivery(
            "ann@example.org", "S", bounces=1, bounce_log=((1, old),)
        )
        first = store.deliveries.record_bounce(
            "ann@example.org", "S", cycle=5, detail="bounce report: 5.1.1", policy=policy
        )
        assert (first.bounces, first.state) == (1, "active"), "the old one no longer counts"
        again = store.deliveries.record_bounce(
            "ann@example.org", "S", cycle=5, detail="bounce report: 5.1.1", policy=policy
        )
        assert again is None, "one digest counts once"
        second = store.deliveries.record_bounce(
            "ann@example.org", "S", cycle=6, detail="bounce report: 5.1.1", policy=policy
        )
        assert (second.bounces, second.state) == (2, "bouncing")


def test_a_bounce_report_is_forgotten_when_digests_are_accepted_a_week_later(tmp_path):
    path = tmp_path / "state.json"
    with Store(path) as store:
        store.deliveries.record_bounce(
            "ann@example.org", "S", cycle=1, detail="bounce report: 5.2.2", policy=BouncePolicy(3)
        )
        store.deliveries.record_sent("ann@example.org", "S", 1)
        assert store.deliveries.get("ann@example.org").bounces == 1, "kept: reports come after"
        store.deliveries.flush()
    # A digest accepted 8 days later, as the delivery journal records it.
    later = (datetime.now(UTC) + timedelta(days=8)).isoformat(timespec="seconds")
    line = {"key": "ann@example.org", "since": "S", "cycle": 2, "at": later}
    path.with_name("state.json.journal").write_text(json.dumps(line) + "\n")
    with Store(path) as store:
        delivery = store.deliveries.get("ann@example.org")
        assert (delivery.bounces, delivery.last_cycle, delivery.last_bounce) == (0, 2, "")


def test_malformed_mail_is_handled_and_never_stops_the_others(settings, maildir, smtp_server):
    latin = (
        b"From: =?iso-8859-1?q?Jos=E9?= <jose@example.org>\r\nTo: papers-inbox@example.org\r\n"
        b"Subject: hola\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n"
    ) + "subscribe Reasoning\r\n\r\nGracias, José\r\n".encode("latin-1")
    weird_charset = (
        b"From: kim@example.org\r\nSubject: \r\nContent-Type: text/plain; charset=x-klingon\r\n\r\n"
        b"keywords \xff\xfe MLLM\r\n"
    )
    broken_mime = (
        b"From: lee@example.org\r\nSubject: help\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="never-closed"\r\n\r\n'
        b"--never-closed\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"!!!not base64!!!\r\n"
    )
    no_from = b"Subject: subscribe MLLM\r\n\r\nsubscribe MLLM\r\n"
    two_from = b"From: a@example.org, b@example.org\r\nSubject: subscribe MLLM\r\n\r\n"
    garbage = bytes(range(256)) * 10
    huge = mail("big@example.org", "subscribe MLLM", "x" * 80 + "\n" * 30_000 + "y" * 1_500_000)
    html_only = (
        b"From: pat@example.org\r\nSubject: Re: hi\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><body><div>subscribe MLLM</div><blockquote>unsubscribe</blockquote></body></html>"
    )
    deliver(maildir, latin, weird_charset, broken_mime, no_from, two_from, garbage, huge, html_only)
    report = poll(settings)
    assert report.error == "" and report.read == 8
    assert (
        "subscribe jose@example.org to Daily Papers (Reasoning)"
        in replies(smtp_server, "jose@example.org")[0].get_content()
    )
    assert "is not subscribed" in replies(smtp_server, "kim@example.org")[0].get_content()
    assert replies(smtp_server, "lee@example.org")[0]["Subject"] == "Daily Papers: commands"
    assert "confirm" in replies(smtp_server, "big@example.org")[0]["Subject"]
    assert "confirm" in replies(smtp_server, "pat@example.org")[0]["Subject"]
    assert {r.to for r in smtp_server.messages} == {
        "jose@example.org",
        "kim@example.org",
        "lee@example.org",
        "big@example.org",
        "pat@example.org",
    }
    assert not list((settings.inbox.maildir / "new").iterdir())


def test_names_in_raw_utf8_headers_reach_the_subscriber_file(settings, maildir, smtp_server):
    deliver(maildir, "From: Zoë Ång <zoe@example.org>\r\nSubject: subscribe MLLM\r\n\r\n".encode())
    poll(settings)
    (question,) = smtp_server.messages
    deliver(maildir, reply_to(question, "zoe@example.org"))
    poll(settings)
    assert subscriber_file(settings, "zoe@example.org")["name"] == "Zoë Ång"


def test_the_same_message_is_acted_on_once(settings, maildir, smtp_server):
    message = mail(ANN, "subscribe MLLM", message_id="<once@client.example.net>")
    deliver(maildir, message, message)  # the MTA delivered it twice
    poll(settings)
    assert len(smtp_server.messages) == 1

    # Killed after saving the effect but before marking: the message is still in new/.
    deliver(maildir, message)
    report = poll(settings)
    assert (report.read, report.ignored, len(smtp_server.messages)) == (1, 1, 1)


def test_killed_between_saving_and_marking_acts_once_and_replies_once(
    settings, maildir, smtp_server
):
    deliver(maildir, mail(ANN, "subscribe MLLM"))
    killed = run_cli(
        "--settings",
        str(settings.file),
        "inbox",
        "--once",
        env={"NEWSLETTER_CRASH_AT": "inbox-after-save"},
    )
    assert killed.returncode == -signal.SIGKILL
    assert len(list((settings.inbox.maildir / "new").iterdir())) == 1, "not marked"
    assert smtp_server.messages == [], "the reply waits in the store"

    again = run_cli("--settings", str(settings.file), "inbox", "--once")
    assert again.returncode == 0, again.stderr
    assert "read 1, acted on 0, ignored 1" in again.stdout
    assert len(smtp_server.messages) == 1
    assert not list((settings.inbox.maildir / "new").iterdir())
    deliver(maildir, reply_to(smtp_server.messages[0], ANN))
    poll(settings)
    assert subscriber_file(settings)["keywords"] == ["MLLM"], "the saved request is the one used"


def test_a_confirmation_that_cannot_be_saved_is_tried_again(settings, maildir, smtp_server):
    deliver(maildir, mail(ANN, "subscribe MLLM"))
    poll(settings)
    settings.subscribers.dir.write_text("not a folder")  # the subscriber file cannot be written
    deliver(maildir, reply_to(smtp_server.messages[0], ANN))
    report = poll(settings)
    assert f"{settings.subscribers.dir}: File exists; tried again next poll" in report.error
    assert len(list((settings.inbox.maildir / "new").iterdir())) == 1, "not marked"

    settings.subscribers.dir.unlink()
    report = poll(settings)
    assert (report.read, report.acted, report.error) == (1, 1, "")
    assert subscriber_file(settings)["keywords"] == ["MLLM"]
    assert replies(smtp_server)[-1]["Subject"] == "Daily Papers: subscribed to MLLM"


def test_replies_per_address_are_limited_per_hour(make_settings, maildir, smtp_server, tmp_path):
    settings = make_settings(
        inbox={"maildir": str(tmp_path / "Maildir"), "max_replies_per_hour": 2}
    )
    now = datetime.now(UTC)
    deliver(maildir, *(mail(ANN, "help") for _ in range(4)), mail("ben@example.org", "help"))
    report = poll(settings, now=now)
    assert report.acted == 5
    assert len(replies(smtp_server)) == 2
    assert len(replies(smtp_server, "ben@example.org")) == 1

    deliver(maildir, mail(ANN, "help"))
    poll(settings, now=now + timedelta(minutes=30))
    assert len(replies(smtp_server)) == 2
    deliver(maildir, mail(ANN, "help"))
    poll(settings, now=now + timedelta(minutes=61))
    assert len(replies(smtp_server)) == 3


def test_keyword_changes_and_plain_unsubscribe_wait_for_confirmation(
    settings, maildir, smtp_server
):
    subscribe(settings, "ann@example.org", "MLLM")
    deliver(maildir, mail(ANN, "", "keywords Reasoning, hallucination\n\n-- \nAnn"))
    poll(settings)
    assert subscriber_file(settings)["keywords"] == ["MLLM"]
    deliver(maildir, reply_to(smtp_server.messages[-1], ANN))
    poll(settings)
    saved = subscriber_file(settings)
    assert saved["keywords"] == ["Hallucination", "Reasoning"]
    assert saved["source"] == "cli", "where the subscription came from is kept"
    assert replies(smtp_server)[-1]["Subject"] == (
        "Daily Papers: keywords changed to Hallucination, Reasoning"
    )

    deliver(maildir, mail(ANN, "Re: [Daily Papers] 3 new papers", "Unsubscribe\n\n> old digest"))
    poll(settings)
    assert subscriber_file(settings) is not None
    deliver(maildir, reply_to(smtp_server.messages[-1], ANN))
    poll(settings)
    assert subscriber_file(settings) is None
    assert replies(smtp_server)[-1]["Subject"] == "Daily Papers: unsubscribed"


def test_unknown_keywords_and_unknown_commands_are_answered_with_help_never_an_echo(
    settings, maildir, smtp_server
):
    spam = "subscribe CHEAP PILLS at https://spam.example/buy-now, MLLM"
    deliver(
        maildir,
        mail(ANN, spam),
        mail("ben@example.org", "hello there", "Could you add me?\n"),
        mail("cy@example.org", "keywords MLLM"),
        mail("dee@example.org", "Quantum?", "subscribe Quantum"),
    )
    poll(settings)
    for received in smtp_server.messages:  # nothing a stranger wrote goes back out
        text = received.data.decode("utf-8", "replace").lower()
        for word in ("cheap", "pills", "spam.example", "buy-now", "hello", "quantum", "add me"):
            assert word not in text, (received.to, word)
    refused = replies(smtp_server)[0].get_content()
    assert "name one or more of the keywords listed below" in refused
    assert "Keywords: Hallucination, MLLM, Reasoning" in refused
    helped = replies(smtp_server, "ben@example.org")[0].get_content()
    assert "I did not understand your message." in helped and "hello" not in helped
    assert "subscribe KEYWORD, KEYWORD" in helped and "Keywords: Hallucination, MLLM" in helped
    assert "is not subscribed" in replies(smtp_server, "cy@example.org")[0].get_content()
    assert not settings.subscribers.dir.exists() or not list(settings.subscribers.dir.iterdir())


def test_replies_wait_in_the_store_while_the_smtp_server_is_down(settings, maildir, smtp_server):
    smtp_server.stop()
    deliver(maildir, mail(ANN, "help"))
    report = poll(settings)
    assert (report.acted, report.replies_sent, report.replies_waiting) == (1, 0, 1)
    assert not list((settings.inbox.maildir / "new").iterdir()), "handled: not acted on again"

    smtp_server.start()
    report = poll(settings)
    assert (report.read, report.replies_sent, report.replies_waiting) == (0, 1, 0)
    assert len(smtp_server.messages) == 1
    poll(settings)
    assert len(smtp_server.messages) == 1


def test_inbox_once_on_the_command_line(settings, maildir, smtp_server, make_settings, tmp_path):
    deliver(maildir, mail(ANN, "help"))
    result = run_cli("--settings", str(settings.file), "inbox", "--once")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        "inbox: read 1, acted on 1, ignored 0, bounces 0, replies sent 1"
    )

    missing = make_settings(inbox={"maildir": str(tmp_path / "nowhere")})
    result = run_cli("--settings", str(missing.file), "inbox", "--once")
    assert result.returncode == 2, "a settings mistake, found before any work"
    assert f"[inbox] maildir {tmp_path / 'nowhere'}: not a Maildir" in result.stderr

    plain = make_settings()
    result = run_cli("--settings", str(plain.file), "inbox", "--once")
    assert result.returncode == 2
    assert "[inbox] is not configured" in result.stderr


def deliver_fast(maildir, messages) -> None:
    """As an MTA delivers (tmp/, then new/), without mailbox.Maildir's fsync per message."""
    path = Path(maildir._path)
    for n, data in enumerate(messages):
        name = f"{int(time.time())}.F{n:06d}.test"
        (path / "tmp" / name).write_bytes(data)
        os.rename(path / "tmp" / name, path / "new" / name)


def test_two_thousand_forged_requests_send_no_more_than_the_caps(
    settings, maildir, smtp_server, tmp_path
):
    """Forged From addresses: one domain's people, people all over, and one Gmail mailbox
    spelt 40 ways (case, +tags, dots, googlemail.com). The inbox sends no more than the
    caps allow: per mailbox, per domain, and in all; the rest is dropped and counted."""
    template = mail("Victim <victim@placeholder.invalid>", "subscribe MLLM, Reasoning")
    spellings = ("victim", "v.i.c.t.i.m", "Victim", "vic.tim")
    domains = ("gmail.com", "GoogleMail.com")
    gmail = [f"{spellings[n % 4]}+{n}@{domains[n % 3 == 0]}" for n in range(40)]
    addresses = (
        [f"worker{n}@bigcorp.example" for n in range(960)]
        + [f"person{n}@site{n}.example" for n in range(1000)]
        + gmail
    )
    assert len(addresses) == 2000
    deliver_fast(
        maildir,
        (
            template.replace(b"victim@placeholder.invalid", a.encode()).replace(
                b"Message-ID: <", f"Message-ID: <{n}.".encode()
            )
            for n, a in enumerate(addresses)
        ),
    )
    report = poll(settings)
    sent = smtp_server.messages
    assert (report.read, report.error) == (2000, "")
    assert len(sent) == report.replies_sent <= 100, "max_confirmations_per_hour"
    assert report.dropped == 2000 - len(sent)
    assert sum(m.to.endswith("@bigcorp.example") for m in sent) <= 20, "per domain"
    assert sum("victim" in m.to.replace(".", "") for m in sent) <= 5, "one mailbox"
    with Store(settings.store.path) as store:
        assert len(store.inbox.pending) == len(sent), "nothing asked that was not mailed"
    shown = format_status(gather(settings))
    assert f"inbox: {report.dropped} requests dropped without a reply in the last day" in shown


def test_a_254_character_address_does_not_delay_anyone_else(settings, maildir, smtp_server):
    longest = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".org"
    assert len(longest) == 254
    ann = subscribe(settings, "ann@example.org", "MLLM")
    deliver(maildir, mail(longest, "subscribe MLLM"))
    poll(settings)
    (question,) = smtp_server.to(longest)
    ann_token = token(load_secret(settings.web.secret_file), ann.email, ann.created)
    deliver(maildir, reply_to(question, longest), mail(ANN, f"unsubscribe {ann_token}"))
    report = poll(settings)
    assert (report.read, report.acted, report.error) == (2, 2, "")
    assert subscriber_file(settings) is None, "the unsubscribe, in the same poll"
    (saved,) = settings.subscribers.dir.glob("*.toml")
    assert len(saved.name) <= 105 and tomllib.loads(saved.read_text())["email"] == longest
    assert "subscribed" in smtp_server.to(longest)[-1].message["Subject"]


def test_a_message_that_keeps_failing_is_set_aside_and_never_holds_up_the_others(
    settings, maildir, smtp_server, caplog
):
    deliver(maildir, mail("carl@example.org", "subscribe MLLM"))
    poll(settings)
    (question,) = smtp_server.to("carl@example.org")
    # Carl's subscriber file cannot be written: a folder stands where it goes.
    (settings.subscribers.dir / "carl@example.org.toml").mkdir(parents=True)
    confirm = reply_to(question, "carl@example.org")
    carl_id = email.message_from_bytes(confirm)["Message-ID"]
    for n in range(1, 4):
        deliver(maildir, mail("ben@example.org", "help"))
        if n == 1:
            deliver(maildir, confirm)
        report = poll(settings)
        assert len(smtp_server.to("ben@example.org")) == n, "the others are served each time"
        if n < 3:
            assert "Is a directory; tried again next poll" in report.error
            assert len(list((settings.inbox.maildir / "new").iterdir())) == 1, "left for later"
    assert (report.set_aside, report.error) == (1, "")
    assert not list((settings.inbox.maildir / "new").iterdir())
    (flagged,) = (settings.inbox.maildir / "cur").glob("*:2,FS")
    assert flagged.read_bytes() == confirm, "marked and flagged for a person"
    aside = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(carl_id in m and "set aside after 3 tries: " in m for m in aside), aside


def test_an_old_unsubscribe_token_does_nothing_after_subscribing_again(
    settings, maildir, smtp_server
):
    first = subscribe(settings, "ann@example.org", "MLLM")
    poll(settings)  # the secret is made
    old = token(load_secret(settings.web.secret_file), first.email, first.created)
    deliver(maildir, mail(ANN, f"unsubscribe {old}"))
    poll(settings)
    assert subscriber_file(settings) is None
    subscribe(settings, "ann@example.org", "MLLM")

    deliver(
        maildir, mail("mallory@evil.example", f"unsubscribe {old}"), mail(ANN, f"unsubscribe {old}")
    )
    report = poll(settings)
    assert report.acted == 2
    assert subscriber_file(settings) is not None, "the leaked token of before does nothing"
    assert "is not subscribed" in replies(smtp_server, "mallory@evil.example")[0].get_content()
    assert "confirm" in replies(smtp_server)[-1]["Subject"], "a plain unsubscribe: confirm first"
