"""Digests end to end: the fake arXiv, a cycle, and the mail a real SMTP server received."""

from __future__ import annotations

import re
from datetime import date
from email.header import decode_header, make_header

import pytest
from arxiv_server import entry
from conftest import run_cli, subscribe
from digest_reader import html_part, paper_ids, sections, text_part

from newsletter.cycle import run_cycle
from newsletter.store import Store

DAY = date(2025, 3, 7)


def cycle(settings):
    with Store(settings.store.path) as store:
        return run_cycle(settings, store, today=DAY)


def papers(prefix: str, keyword: str, count: int, day: int = 1, **fields):
    return [
        entry(f"{prefix}.{n:05d}", f"{keyword} paper {n}", day=f"2025-03-{day:02d}", **fields)
        for n in range(1, count + 1)
    ]


def three_keywords(make_settings, arxiv_server):
    settings = make_settings(keywords=["Hallucination", "MLLM", "Reasoning"])
    arxiv_server.add(
        *papers("2503", "Hallucination", 2),
        *papers("2502", "MLLM", 2),
        entry("2501.00001", "Reasoning about MLLM hallucination"),
    )
    return settings


def test_each_subscriber_gets_only_their_keywords_then_only_what_is_new(
    make_settings, arxiv_server, smtp_server
):
    settings = three_keywords(make_settings, arxiv_server)
    subscribe(settings, "alice@example.org", "Hallucination", name="Alice")
    subscribe(settings, "bob@example.org", "MLLM", "Reasoning")
    subscribe(settings, "carol@example.org", "Reasoning")

    report = cycle(settings)
    assert report.delivery.sent == 3
    alice, bob, carol = (
        smtp_server.to(f"{n}@example.org")[0].message for n in ("alice", "bob", "carol")
    )
    assert sections(alice) == {"Hallucination": ["2503.00002", "2503.00001", "2501.00001"]}
    assert sections(bob) == {"MLLM": ["2502.00002", "2502.00001", "2501.00001"]}
    assert sections(carol) == {"Reasoning": ["2501.00001"]}
    assert "Welcome" in alice["Subject"]

    arxiv_server.add(
        entry("2503.00010", "Hallucination paper 10", day="2025-03-05"),
        entry("2503.00011", "Reasoning paper 11", day="2025-03-05"),
    )
    smtp_server.messages.clear()
    report = cycle(settings)
    assert report.delivery.sent == 3
    assert paper_ids(smtp_server.to("alice@example.org")[0].message) == ["2503.00010"]
    assert paper_ids(smtp_server.to("bob@example.org")[0].message) == ["2503.00011"]
    assert paper_ids(smtp_server.to("carol@example.org")[0].message) == ["2503.00011"]
    assert smtp_server.to("bob@example.org")[0].message["Subject"] == (
        "[Daily Papers] 1 new papers: Reasoning (2025-03-07)"
    )

    smtp_server.messages.clear()
    report = cycle(settings)
    assert report.delivery.sent == 0 and smtp_server.messages == []


def test_a_paper_appears_once_under_its_first_keyword_with_tags(
    make_settings, arxiv_server, smtp_server
):
    settings = three_keywords(make_settings, arxiv_server)
    subscribe(settings, "dora@example.org", "MLLM", "Reasoning", "Hallucination")
    cycle(settings)
    message = smtp_server.to("dora@example.org")[0].message
    assert paper_ids(message).count("2501.00001") == 1
    assert sections(message)["Hallucination"][-1] == "2501.00001"
    html = html_part(message)
    tags = re.findall(r"<span class=\"tag\"[^>]*>([^<]+)</span>", html)
    assert tags == ["MLLM", "Reasoning"]
    assert list(sections(message)) == ["Hallucination", "MLLM"]  # settings order


def test_subscriber_added_between_cycles_gets_the_welcome_issue(
    make_settings, arxiv_server, smtp_server
):
    settings = make_settings(keywords=["MLLM"], digest={"max_papers_per_keyword": 3})
    arxiv_server.add(*papers("2502", "MLLM", 5))
    subscribe(settings, "early@example.org", "MLLM")
    cycle(settings)
    subscribe(settings, "late@example.org", "MLLM", name="Late")
    smtp_server.messages.clear()
    report = cycle(settings)
    assert report.delivery.sent == 1
    (late,) = smtp_server.messages
    assert late.to == "late@example.org"
    assert paper_ids(late.message) == ["2502.00005", "2502.00004", "2502.00003"]
    assert late.message["Subject"] == "[Daily Papers] Welcome: 3 recent papers: MLLM"
    assert "Hello Late," in text_part(late.message)


def test_smtp_down_for_a_cycle_then_everything_pending_arrives_once(
    make_settings, arxiv_server, smtp_server
):
    settings = make_settings(keywords=["MLLM"])
    subscribe(settings, "ann@example.org", "MLLM")
    arxiv_server.add(*papers("2502", "MLLM", 1))
    cycle(settings)
    smtp_server.messages.clear()

    smtp_server.stop()
    arxiv_server.add(entry("2502.00020", "MLLM paper 20", day="2025-03-02"))
    down = cycle(settings)
    assert down.delivery.sent == 0 and down.delivery.pending == 1

    smtp_server.start()
    arxiv_server.add(entry("2502.00030", "MLLM paper 30", day="2025-03-03"))
    back = cycle(settings)
    assert back.delivery.sent == 1
    (message,) = smtp_server.to("ann@example.org")
    assert paper_ids(message.message) == ["2502.00030", "2502.00020"]

    smtp_server.messages.clear()
    assert cycle(settings).delivery.sent == 0


def test_refused_recipient_does_not_stop_the_others_and_bounces_are_counted(
    make_settings, arxiv_server, smtp_server
):
    settings = make_settings(keywords=["MLLM"], smtp={"max_bounces": 2})
    for name in ("a", "gone", "c"):
        subscribe(settings, f"{name}@example.org", "MLLM")
    smtp_server.refuse("gone@example.org")
    arxiv_server.add(*papers("2502", "MLLM", 1))

    first = cycle(settings)
    assert (first.delivery.sent, first.delivery.bounced) == (2, 1)
    assert sorted(m.to for m in smtp_server.messages) == ["a@example.org", "c@example.org"]

    arxiv_server.add(entry("2502.00002", "MLLM paper 2", day="2025-03-02"))
    second = cycle(settings)
    assert (second.delivery.sent, second.delivery.bounced) == (2, 1)

    arxiv_server.add(entry("2502.00003", "MLLM paper 3", day="2025-03-03"))
    third = cycle(settings)
    assert third.delivery.bouncing == 1 and third.delivery.bounced == 0
    listing = run_cli("--settings", str(settings.file), "subscribers")
    assert re.search(r"gone@example.org: MLLM; .*bouncing \(2 refusals: 550", listing.stdout)


def test_untrusted_text_is_escaped_in_html_and_readable_in_text(
    make_settings, arxiv_server, smtp_server
):
    settings = make_settings(keywords=["MLLM"])
    subscribe(settings, "x@example.org", "MLLM")
    arxiv_server.add(
        entry(
            "2502.00001",
            "MLLM <script>alert(1)</script> & friends",
            abstract="We show $a<b$ & R\\&D for MLLM </details><img src=x onerror=alert(1)>",
            comment="<b>bold</b> claim",
        )
    )
    cycle(settings)
    message = smtp_server.messages[0].message
    html = html_part(message)
    assert "<script>" not in html and "<img" not in html and "<b>bold" not in html
    assert "MLLM &lt;script&gt;alert(1)&lt;/script&gt; &amp; friends" in html
    text = text_part(message)
    assert "MLLM <script>alert(1)</script> & friends" in text
    assert "R\\&D" in text


@pytest.mark.parametrize("how", ["by-hand", "web", "inbox"])
def test_the_footer_says_how_to_stop_as_it_really_works(
    make_settings, arxiv_server, smtp_server, tmp_path, how
):
    changes = {
        "by-hand": {},
        "web": {"web": {"listen": "127.0.0.1:8025", "public_url": "https://papers.example.org"}},
        "inbox": {"inbox": {"address": "in@example.org", "maildir": str(tmp_path / "Maildir")}},
    }[how]
    settings = make_settings(keywords=["MLLM"], **changes)
    subscribe(settings, "ann@example.org", "MLLM")
    arxiv_server.add(*papers("2502", "MLLM", 1))
    cycle(settings)
    message = smtp_server.to("ann@example.org")[0].message
    html, text = html_part(message), " ".join(text_part(message).split())
    by_hand = "write to papers@example.org: a person there will unsubscribe you"
    # Nothing reads mail or serves a page: say whom to ask, never imply a command works.
    assert (by_hand in text) == (how == "by-hand")
    assert ('or send "unsubscribe" to in@example.org' in text) == (how == "inbox")
    assert ("https://papers.example.org/unsubscribe/" in html) == (how == "web")
    assert 'send "unsubscribe" to papers@example.org' not in text


def test_headers_and_both_parts(make_settings, arxiv_server, smtp_server):
    settings = make_settings(
        keywords=["MLLM"],
        web={"listen": "127.0.0.1:8025", "public_url": "https://papers.example.org/"},
        archive={"public_url": "https://github.com/lab/papers"},
    )
    subscribe(settings, "ann@example.org", "MLLM", name="Ann Lee")
    subscribe(settings, "ben@example.org", "MLLM")
    arxiv_server.add(*papers("2502", "MLLM", 2))
    cycle(settings)
    ann = smtp_server.to("ann@example.org")[0].message
    ben = smtp_server.to("ben@example.org")[0].message
    assert ann["From"] == "Daily Papers <papers@example.org>"
    assert ann["To"] == "Ann Lee <ann@example.org>"
    assert ann["List-Id"] == "Daily Papers <daily-papers.example.org>"
    assert ann["Message-ID"] != ben["Message-ID"]
    assert ann["Message-ID"].endswith("@example.org>")
    assert ann["Date"]
    mailto, https = re.findall(r"<([^>]+)>", ann["List-Unsubscribe"])
    assert mailto.startswith("mailto:papers@example.org?subject=unsubscribe%20")
    assert https.startswith("https://papers.example.org/unsubscribe/")
    assert ann["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert https != re.findall(r"<([^>]+)>", ben["List-Unsubscribe"])[1]
    assert ann.get_content_type() == "multipart/alternative"
    html, text = html_part(ann), text_part(ann)
    assert f'href="{https}"' in html and https in text
    assert "https://github.com/lab/papers" in html and "https://github.com/lab/papers" in text
    assert "Hello Ann Lee," in html
    # CSS inlined: style attributes on elements, no stylesheet links, only @media left in <style>.
    assert re.search(r'<p class="title" style="[^"]*font-weight:bold', html)
    assert "<link" not in html
    assert re.findall(r"<style>(.*?)</style>", html, re.S)[0].strip().startswith("@media")


@pytest.mark.parametrize(
    ("sender", "list_id"),
    [
        ('"NLP Lab, Papers" <papers@example.org>', '"NLP Lab, Papers" <daily-papers.example.org>'),
        ("Papiers Über <papers@example.org>", "Papiers Über <daily-papers.example.org>"),
    ],
)
def test_list_id_carries_the_lists_name_from_the_from_setting(
    make_settings, arxiv_server, smtp_server, sender, list_id
):
    """The name replies and the web pages use, quoted or encoded as a display name is."""
    settings = make_settings(keywords=["MLLM"], digest={"from": sender})
    subscribe(settings, "ann@example.org", "MLLM")
    arxiv_server.add(*papers("2502", "MLLM", 1))
    cycle(settings)
    (received,) = smtp_server.messages
    raw = received.data.decode("ascii").split("\r\nList-Id: ", 1)[1].split("\r\n")[0]
    assert str(make_header(decode_header(raw))) == list_id


def test_next_cycle_message_ids_differ(make_settings, arxiv_server, smtp_server):
    settings = make_settings(keywords=["MLLM"])
    subscribe(settings, "ann@example.org", "MLLM")
    arxiv_server.add(*papers("2502", "MLLM", 1))
    cycle(settings)
    arxiv_server.add(entry("2502.00009", "MLLM paper 9", day="2025-03-04"))
    cycle(settings)
    first, second = smtp_server.messages
    assert first.message["Message-ID"] != second.message["Message-ID"]


def test_oversize_digest_is_trimmed_under_the_limit(make_settings, arxiv_server, smtp_server):
    settings = make_settings(keywords=["MLLM"], digest={"max_html_bytes": 30_000})
    subscribe(settings, "ann@example.org", "MLLM")
    arxiv_server.add(entry("2501.00001", "MLLM first"))
    cycle(settings)
    arxiv_server.add(*papers("2502", "MLLM", 40, day=2, abstract="MLLM " + "words " * 150))
    cycle(settings)
    message = smtp_server.messages[1].message
    html = html_part(message)
    assert len(html.encode()) <= 30_000
    shown = paper_ids(message)
    assert 0 < len(shown) < 40
    assert f"{40 - len(shown)} more in the archive" in html
    assert shown[0] == "2502.00040", "the newest are kept, the oldest dropped"


def test_broken_subscriber_files_are_reported_and_skipped(make_settings, arxiv_server, smtp_server):
    settings = make_settings(keywords=["MLLM"])
    subscribe(settings, "ok@example.org", "MLLM")
    folder = settings.subscribers.dir
    (folder / "broken.toml").write_text("email = ")
    (folder / "unknown.toml").write_text('email = "u@example.org"\nkeywords = ["Quantum"]\n')
    (folder / "dupe.toml").write_text('email = "OK@example.org"\nkeywords = ["MLLM"]\n')
    arxiv_server.add(*papers("2502", "MLLM", 1))
    report = cycle(settings)
    assert report.delivery.sent == 1 and report.delivery.skipped == 3
    listing = run_cli("--settings", str(settings.file), "subscribers")
    assert "broken.toml: not valid TOML" in listing.stderr
    assert (
        "unknown.toml: unknown keyword 'Quantum'; valid keywords: MLLM; skipped" in listing.stderr
    )
    assert "is also in" in listing.stderr


def test_preview_changes_nothing(make_settings, arxiv_server, smtp_server, tmp_path):
    settings = make_settings(keywords=["MLLM"])
    arxiv_server.add(*papers("2502", "MLLM", 2))
    cycle(settings)
    subscribe(settings, "ann@example.org", "MLLM")
    state = {p: p.read_bytes() for p in settings.store.path.parent.iterdir()}

    out = tmp_path / "preview.html"
    html = run_cli(
        "--settings", str(settings.file), "preview", "ann@example.org", "--out", str(out)
    )
    assert html.returncode == 0, html.stderr
    assert "2502.00002" in out.read_text()
    text = run_cli("--settings", str(settings.file), "preview", "ann@example.org", "--text")
    assert "MLLM paper 2" in text.stdout and "<" not in text.stdout.split("--")[0]

    assert {p: p.read_bytes() for p in settings.store.path.parent.iterdir()} == state
    assert smtp_server.messages == []
    assert cycle(settings).delivery.sent == 1, "the previewed digest is still due"


def test_a_trimmed_welcome_issue_keeps_every_keyword_and_says_what_it_holds(
    make_settings, arxiv_server, smtp_server
):
    """The four-keyword welcome issue of issue 15: trimming by age alone left the keyword
    with the oldest papers 2 of 20 and a subject counting papers the mail did not hold."""
    names = ["Hallucination", "MLLM", "Reasoning", "Reward Model"]
    settings = make_settings(
        keywords=names,
        digest={"max_html_bytes": 40_000},
        archive={"public_url": "https://github.com/lab/papers"},
    )
    subscribe(settings, "ann@example.org", *names)
    wordy = "words " * 150
    for n, name in enumerate(names):
        day = 1 if name == "MLLM" else 5  # MLLM's papers are the oldest
        arxiv_server.add(*papers(f"250{n + 1}", name, 20, day=day, abstract=wordy))
    cycle(settings)
    (received,) = smtp_server.messages
    message = received.message
    html, text = html_part(message), " ".join(text_part(message).split())
    assert len(html.encode()) <= 40_000
    shown = {name: len(ids) for name, ids in sections(message).items()}
    assert set(shown) == set(names) and min(shown.values()) > 0
    assert max(shown.values()) - min(shown.values()) <= 1, "turns across the keywords"
    assert sections(message)["MLLM"][0] == "2502.00020", "newest first within each"
    total = sum(shown.values())
    assert message["Subject"] == f"[Daily Papers] Welcome: {total} recent papers: " + ", ".join(
        names
    )
    assert (
        f"Here are the latest {total} papers on your keywords in this mail, "
        f"and {80 - total} more in the archive." in text
    )
    for name, count in shown.items():
        assert f"{name}: {count} (+{20 - count} in the archive)" in text
    assert text.count("arxiv.org/abs/") == total
    more = re.findall(r'<a href="https://github.com/lab/papers#([^"]+)" style="([^"]+)"', html)
    assert [anchor for anchor, _ in more] == ["hallucination", "mllm", "reasoning", "reward-model"]
    assert all("color:#0969da" in style for _, style in more), "styled inline like every link"
    assert "https://github.com/lab/papers#reward-model" in text


def test_links_are_https_with_a_pdf_and_a_revision_shows_both_dates(
    make_settings, arxiv_server, smtp_server
):
    settings = make_settings(keywords=["MLLM"])
    subscribe(settings, "ann@example.org", "MLLM")
    arxiv_server.add(
        entry("2502.00001", "MLLM first", day="2025-03-02"),
        entry(
            "2502.00002",
            "MLLM revised",
            version=3,
            published="2025-02-26T12:00:00+00:00",
            updated="2025-03-04T12:00:00+00:00",
        ),
    )
    cycle(settings)
    message = smtp_server.messages[0].message
    html, text = html_part(message), text_part(message)
    for shown in (html, text):
        assert "http://" not in shown.replace("http://www.w3.org", "")
        assert "https://arxiv.org/abs/2502.00002" in shown and "abs/2502.00002v" not in shown
        assert "https://arxiv.org/pdf/2502.00002" in shown
        assert "v3 · updated 2025-03-04 · first 2025-02-26" in shown
        assert "2025-03-02" in shown and "v1 ·" not in shown, "a first version: one date"
    assert '<a class="pdf" href="https://arxiv.org/pdf/2502.00001" style="' in html
    assert "\n-- \n" in text, "the signature separator mail readers know"
