"""Rendering once per distinct digest gives everyone exactly the mail a render for
them alone would: the same papers, sections, counts and personal links, byte for byte.

Random subscriber sets (seeded, so a failure replays): random keywords, names
that need escaping, encoding or dot-stuffing, new and returning subscribers. Each person's
mail as the real path sends it (grouped, over SMTP) is compared with a
reference built the plain way: the digest planned for that person alone,
jinja2 and premailer with their own values, the email package's own encoder.
"""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, date, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import formataddr
from html import unescape

import pytest
from arxiv_server import entry
from conftest import REPO, SEED_KEYWORDS, subscribe
from digest_reader import html_part, sections, text_part

from newsletter.cycle import run_cycle
from newsletter.papers import Paper
from newsletter.sending.deliver import deliver_digests, make_renderer, personal
from newsletter.sending.plan import plan_all
from newsletter.sending.preview import preview_next
from newsletter.sending.render import PERSONAL_MARGIN, Renderer
from newsletter.sending.select import Digest, trim_fair
from newsletter.store import Store
from newsletter.subscribers import Roster, Subscriber
from newsletter.tokens import load_or_create_secret

DAY = date(2025, 3, 7)
NAMES = [
    "",
    "Ann",
    "Seán O'Brien",
    "Zoë Müller-Lüdenscheidt",
    "Ann & <Bob>",
    'Jo "JJ" Lee',
    "李雷",
    "Dr. A. Very-Long-Name Person, Department of Computational Linguistics",
    # "Hello " and 68 characters fill a quoted-printable line: the next one starts
    # with ".", which SMTP must not take for the message's end.
    "Ana " * 17 + ". Dot",
]
COMPARED_HEADERS = (
    "From",
    "To",
    "Subject",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Auto-Submitted",
)


def seed_papers(rng: random.Random) -> list[tuple[Paper, list[str]]]:
    """The seed archive's 40 real papers, each on one or two random keywords."""
    records = json.loads((REPO / "tests" / "fixtures" / "seed_papers.json").read_text())
    papers = []
    for r in records:
        paper = Paper.from_record({**r, "url": f"http://arxiv.org/abs/{r['id']}v{r['version']}"})
        papers.append((paper, rng.sample(SEED_KEYWORDS, rng.choice((1, 1, 2)))))
    return papers


def fill_two_cycles(store: Store, rng: random.Random) -> None:
    """Cycle 1 brought most papers, cycle 2 (the one being mailed) the rest."""
    papers = seed_papers(rng)
    rng.shuffle(papers)
    for cycle, batch in ((1, papers[:28]), (2, papers[28:])):
        assert store.cycles.begin() == cycle
        fetched: dict[str, list[Paper]] = {k: [] for k in SEED_KEYWORDS}
        for paper, keywords in batch:
            for keyword in keywords:
                fetched[keyword].append(paper)
        store.papers.apply_fetch(cycle, fetched)


def random_subscribers(settings, store: Store, rng: random.Random) -> list[Subscriber]:
    """New ones (welcome issue), ones who got cycle 1, ones who never got anything yet
    under an old record, and ones already up to date (no mail)."""
    people = []
    for n in range(rng.randint(6, 16)):
        keywords = rng.sample(SEED_KEYWORDS, rng.randint(1, len(SEED_KEYWORDS)))
        email = f"p{n}@lab{n % 3}.example.org"
        subscriber = subscribe(settings, email, *keywords, name=rng.choice(NAMES))
        history = rng.choice(("new", "new", 1, 1, 1, 0, 2))
        if history != "new":
            store.deliveries.record_sent(subscriber.key, subscriber.created, history)
        people.append(subscriber)
    store.deliveries.flush()
    return people


def planned_alone(settings, subscriber: Subscriber, store: Store) -> Digest | None:
    groups, _, _ = plan_all(settings, store, Roster((subscriber,), ()))
    return next(iter(groups.digests.values()), None)


def reference_mail(settings, subscriber: Subscriber, digest: Digest, cycle: int) -> EmailMessage:
    """This person's digest the plain way: planned alone, rendered with their own
    values, encoded whole by the email package."""
    person = personal(settings, load_or_create_secret(settings.web.secret_file), subscriber, cycle)
    rendered = make_renderer(settings).render(digest, subscriber.keywords, DAY, person)
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = settings.digest.sender
    message["To"] = formataddr((person.name, person.email))
    message["Subject"] = rendered.subject
    message["Message-ID"] = person.message_id
    message["List-Id"] = formataddr((settings.digest.list_name, settings.digest.list_id))
    links = [f"<{person.unsubscribe_mailto}>"]
    if person.unsubscribe_url:
        links.append(f"<{person.unsubscribe_url}>")
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["List-Unsubscribe"] = ", ".join(links)
    message["Auto-Submitted"] = "auto-generated"
    html, text = rendered.personalise(person)  # rendered for them: no spots left to fill
    message.set_content(text, cte="quoted-printable")
    message.add_alternative(html, subtype="html", cte="quoted-printable")
    return message_from_bytes(message.as_bytes(), policy=policy.default)  # type: ignore[return-value]


# One-click unsubscribe links in the digests (the web server itself is not started here).
WEB = {"listen": "127.0.0.1:8025", "public_url": "https://papers.example.org"}


@pytest.mark.parametrize("seed", range(6))
def test_everyone_gets_what_a_render_for_them_alone_gives(seed, make_settings, smtp_server):
    rng = random.Random(seed)
    settings = make_settings(
        keywords=SEED_KEYWORDS,
        # No trimming here (that has its own test): every digest is rendered whole.
        digest={"max_papers_per_keyword": rng.choice((5, 20)), "max_html_bytes": 500_000},
        web=WEB if seed % 2 else {},
        archive={"public_url": "https://github.com/lab/papers"},
    )
    with Store(settings.store.path) as store:
        fill_two_cycles(store, rng)
        people = random_subscribers(settings, store, rng)
        alone = {s.key: planned_alone(settings, s, store) for s in people}
        expected = {
            s.key: reference_mail(settings, s, digest, 2)
            for s in people
            if (digest := alone[s.key]) is not None
        }
        distinct = {
            (s.keywords, digest.welcome, digest.paper_ids())
            for s in people
            if (digest := alone[s.key]) is not None
        }

        report = deliver_digests(settings, store, 2, today=DAY)

    assert report.sent == len(expected) and report.nothing_new == len(people) - len(expected)
    assert report.digests == len(distinct), "one render per distinct digest"
    assert report.renders == len(distinct), "jinja2 + premailer once per distinct digest"
    for subscriber in people:
        received = smtp_server.to(subscriber.email)
        if subscriber.key not in expected:
            assert received == [], f"{subscriber.email} was up to date"
            continue
        (mail,) = received
        got, want = mail.message, expected[subscriber.key]
        for header in COMPARED_HEADERS:
            assert got[header] == want[header], f"{subscriber.email}: {header}"
        assert sections(got) == sections(want)
        assert text_part(got) == text_part(want)
        if '"' in subscriber.name:  # we write &quot; where lxml leaves " in text
            assert unescape(html_part(got)) == unescape(html_part(want))
        else:
            assert html_part(got) == html_part(want), subscriber.email


def test_a_shared_oversized_digest_fits_everyone_whatever_their_name(make_settings, smtp_server):
    """The trim is decided once, with stand-ins for the personal parts; the longest
    name and link still keep every member's HTML under the limit."""
    settings = make_settings(
        keywords=SEED_KEYWORDS,
        digest={"max_html_bytes": 30_000},
        web=WEB,
    )
    with Store(settings.store.path) as store:
        fill_two_cycles(store, random.Random(1))
        names = ["", "A", "X" * 100, "Ü" * 100]
        for n, name in enumerate(names):
            subscribe(settings, f"reader{n}@example.org", *SEED_KEYWORDS, name=name)
        report = deliver_digests(settings, store, 2, today=DAY)
    assert report.sent == len(names)
    shown = {json.dumps(sections(m.message)) for m in smtp_server.messages}
    assert len(shown) == 1, "one digest, the same papers for all"
    for received in smtp_server.messages:
        html = html_part(received.message)
        assert len(html.encode()) <= 30_000
        assert "more in the archive" in html
    assert report.renders < 8, "the trim took a few premailer passes, not a binary search"


def test_raw_headers_keep_the_unsubscribe_link_readable(make_settings, smtp_server):
    """A long List-Unsubscribe stays one plain line: folded at 78 columns, the email
    package would turn the URL into an encoded word that no client reads as a link."""
    settings = make_settings(
        keywords=SEED_KEYWORDS,
        web=WEB,
    )
    with Store(settings.store.path) as store:
        fill_two_cycles(store, random.Random(2))
        subscribe(settings, "ann@example.org", "MLLM", name="Zoë " * 25)
        deliver_digests(settings, store, 2, today=DAY)
    (received,) = smtp_server.messages
    raw = received.data.decode("ascii")
    assert "\r\nList-Unsubscribe: <mailto:papers@example.org?subject=unsubscribe%20" in raw
    assert "=?" not in raw.split("\r\nList-Unsubscribe: ")[1].split("\r\n")[0]
    assert "\r\nTo: =?utf-8?" in raw, "a non-ASCII name is still encoded"
    words = re.findall(r"=\?[^?]+\?[bq]\?[^?]*\?=", raw, re.I)
    assert words and all(len(w) < 78 for w in words), "encoded words folded as usual"
    assert all(len(line) <= 998 for line in raw.split("\r\n"))
    body_lines = raw.split("\r\n\r\n", 1)[1].split("\r\n")
    assert all(len(line) <= 76 for line in body_lines), "quoted-printable lines, RFC 2045"


def test_preview_is_the_mail_that_is_sent(make_settings, smtp_server):
    settings = make_settings(keywords=SEED_KEYWORDS)
    with Store(settings.store.path) as store:
        fill_two_cycles(store, random.Random(3))
    subscribe(settings, "ann@example.org", "Reasoning", "MLLM", name="Seán O'Brien")
    load_or_create_secret(settings.web.secret_file)  # a first run creates it; preview never does
    found = preview_next(settings, "ann@example.org")
    with Store(settings.store.path) as store:
        deliver_digests(settings, store, 2, today=datetime.now(UTC).date())
    (received,) = smtp_server.messages
    assert html_part(received.message) == found.html
    assert text_part(received.message) == found.text


@pytest.mark.parametrize("limit", [12_000, 25_000, 40_000, 55_000, 70_000])
def test_the_trim_keeps_as_many_of_the_newest_papers_as_fit(limit, make_settings):
    settings = make_settings(keywords=SEED_KEYWORDS, digest={"max_papers_per_keyword": 40})
    with Store(settings.store.path) as store:
        fill_two_cycles(store, random.Random(5))
        reader = Subscriber("ann@example.org", tuple(SEED_KEYWORDS), created="2025-01-01")
        digest = planned_alone(settings, reader, store)
    assert digest is not None
    roomy = make_renderer(settings)
    tight = Renderer(settings.digest.templates, "s", "w", max_html_bytes=limit + PERSONAL_MARGIN)
    trimmed = tight.render(digest, reader.keywords, DAY)
    kept = sum(len(s.items) for s in trimmed.digest.sections)
    assert 0 < kept < 40 and len(trimmed.html.shared().encode()) <= limit
    one_more = roomy.render(trim_fair(digest, kept + 1), reader.keywords, DAY)
    assert len(one_more.html.shared().encode()) > limit, "the most that fit, not just some"
    assert tight.renders <= 6, "interpolated, not bisected"


def test_placeholder_text_in_a_paper_reaches_every_reader_verbatim(
    make_settings, arxiv_server, smtp_server
):
    """The stand-in names of the earlier design, jinja's syntax, and an old-style id made
    of one, sent by arXiv: each reader sees them as they are, and their own address and
    unsubscribe link only where the template puts them (the footer, the headers)."""
    said = (
        "Hello ZZpersonalGreetingZZ at ZZpersonalEmailZZ: ZZpersonalUnsubscribeZZ, "
        "{{ email }} {{ unsubscribe_link }}."
    )
    old_style = "ZZpersonalUnsubscribeZZ/0000001"
    arxiv_server.add(
        entry("2502.00001", "MLLM ZZpersonalEmailZZ", abstract=f"MLLM. {said}", comment=said),
        entry(old_style, "MLLM, the old way", categories=["cs.CL"]),
    )
    settings = make_settings(keywords=["MLLM"], web=WEB)
    for name in ("ann", "ben"):
        subscribe(settings, f"{name}@example.org", "MLLM", name=name.title())
    with Store(settings.store.path) as store:
        run_cycle(settings, store)
    assert len(smtp_server.messages) == 2
    for received in smtp_server.messages:
        message, reader = received.message, received.to
        link = re.findall(r"<(https://[^>]+)>", message["List-Unsubscribe"])[0]
        text, html = text_part(message), unescape(html_part(message))
        for shown in (text, html):
            assert "ZZpersonalEmailZZ" in shown and "{{ unsubscribe_link }}" in shown
            assert f"https://arxiv.org/abs/{old_style}" in shown, "the paper's link, from its id"
            assert shown.count(link) == 1 and shown.count(reader) == 1, "the footer only"
        assert " ".join(said.split()) in " ".join(text.split())
