"""Years of history: the store keeps in full only what can still be shown, every other paper
as a seen id; the first release's store is converted; nothing published is ever lost."""

from __future__ import annotations

import json
import shutil
import signal
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
from arxiv_server import FIXTURES, entry
from conftest import run_cli, subscribe
from digest_reader import paper_ids, text_part
from mails import INBOX, bounce_of, deliver, mail, make_maildir

from newsletter.archive.markdown import page_rows
from newsletter.cycle import run_cycle
from newsletter.inbox.poll import poll_inbox
from newsletter.papers import keyword_slug
from newsletter.store import Store, inbox_state
from newsletter.store import cycles as cycle_log
from newsletter.tokens import create_secret

FIRST_RELEASE = FIXTURES / "store-v1"  # see its README.md: how and with what it was made
# What the fixture's arXiv served (the fixture's cycles 1 to 3), and one paper more.
FIXTURE_ENTRIES = [
    entry("2501.00001", "Hallucination in January", day="2025-01-10"),
    entry("2501.00002", "MLLM in January", day="2025-01-12"),
    entry("2502.00004", "MLLM and Hallucination together", day="2025-02-05"),
    entry("2502.00005", "MLLM in February", day="2025-02-20"),
    entry("hep-th/9901001", "An old Hallucination", day="1999-01-04", categories=["cs.AI"]),
    entry("2503.00006", "Hallucination in March", day="2025-03-02"),
    entry("2503.00007", "MLLM in March", day="2025-03-04"),
    entry("2503.00008", "Hallucination again in March", day="2025-03-06"),
    entry(
        "2502.00003",
        "Hallucination in February, revised",
        day="2025-02-03",
        updated="2025-03-05T09:00:00+00:00",
        version=2,
    ),
    entry("2503.00009", "MLLM late in March", day="2025-03-09"),
]
FIXTURE_IDS = {e.id for e in FIXTURE_ENTRIES}


def first_release_settings(make_settings, tmp_path, **changes):
    """Settings like the fixture's, with its store, subscribers and archive copied in."""
    make_maildir(tmp_path / "Maildir")
    settings = make_settings(
        keywords=["Hallucination", "MLLM"],
        archive={"max_papers": 3, "rotate": True},
        inbox={"address": INBOX, "maildir": str(tmp_path / "Maildir")},
        **changes,
    )
    state = settings.store.path.parent
    state.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIRST_RELEASE / "newsletter.json", settings.store.path)
    shutil.copy(FIRST_RELEASE / "newsletter.json.journal", state / "newsletter.json.journal")
    shutil.copytree(FIRST_RELEASE / "subscribers", settings.subscribers.dir)
    shutil.copytree(FIRST_RELEASE / "archive", settings.archive.path.parent, dirs_exist_ok=True)
    create_secret(settings.web.secret_file)  # made by that release's first run
    return settings


def shown_anywhere(settings, keyword: str) -> Counter[str]:
    """How often each paper appears in the keyword's README table and monthly pages."""
    readme = settings.archive.path.read_text()
    section = readme.split(f"## {keyword}\n")[1].split("\n## ")[0]
    ids = [r.paper_id for r in page_rows(section)]
    for page in sorted((settings.archive.path.parent / keyword_slug(keyword)).glob("*.md")):
        ids += [r.paper_id for r in page_rows(page.read_text())]
    return Counter(ids)


def check_first_release_state(store: Store, *, cycles_since: bool = False) -> None:
    """Everything the fixture's store held that is still needed; as the first release left
    it, or as a cycle since then (ann's and carl's digests sent) leaves it."""
    known = {pid for pid in FIXTURE_IDS if store.papers.published_of(pid) is not None}
    assert known == FIXTURE_IDS
    deliveries = store.deliveries.all()
    ann, carl = deliveries["ann@example.org"], deliveries["carl@example.org"]
    if cycles_since:
        assert ann.last_cycle == carl.last_cycle == store.cycles.last_number()
    else:
        assert ann.last_cycle == 3, "the journal line was replayed"
        assert (carl.last_cycle, carl.failures) == (0, 2)
    assert deliveries["bob@example.org"].state == "bouncing"
    dora = store.inbox.pending.get("dora@example.org")
    assert dora is not None and dora["keywords"] == ["MLLM"] and dora["action"] == "subscribe"
    assert store.inbox.is_processed("id:<dora1@client.example.net>")
    assert [c["number"] for c in store.cycles.all()][:3] == [1, 2, 3]


def test_the_first_release_store_is_read_then_converted_keeping_everything(
    make_settings, arxiv_server, smtp_server, tmp_path
):
    settings = first_release_settings(make_settings, tmp_path, digest={"max_papers_per_keyword": 2})
    old = settings.store.path.read_bytes()

    # Read-only commands read it as it is, and write nothing.
    status = run_cli("--settings", str(settings.file), "status")
    assert status.returncode == 0, status.stderr
    assert "10 papers in full, 0 only as seen ids" in status.stdout
    assert settings.store.path.read_bytes() == old
    assert not settings.store.path.with_name("newsletter.json.bak").exists()

    with Store(settings.store.path) as store:
        check_first_release_state(store)
        assert store.papers.count() == 10
        queued = [r.recipient for r in store.inbox.outbox()]
        assert queued == ["dora@example.org", "eve@example.net"]
    backup = settings.store.path.with_name("newsletter.json.bak")
    assert backup.read_bytes() == old, "the old file is kept as it was"
    state = json.loads(settings.store.path.read_text())
    assert "papers" not in state and state["meta"]["1"]["format"] == 2
    assert settings.store.path.with_name("newsletter.json.journal").read_text() == ""

    arxiv_server.add(*FIXTURE_ENTRIES, entry("2503.00010", "MLLM at the end of March"))
    with Store(settings.store.path) as store:
        report = run_cycle(settings, store, today=date(2025, 3, 12))
        assert report.ok
        check_first_release_state(store, cycles_since=True)
        # The tables (3 a keyword) and carl's digest still due: the rest are seen ids.
        assert store.papers.count() <= 6
        assert store.papers.count() + len(store.papers.seen()) == 11
    for keyword in ("Hallucination", "MLLM"):
        shown = shown_anywhere(settings, keyword)
        assert set(shown.values()) == {1}, f"{keyword}: a paper shown twice"
    assert set(shown_anywhere(settings, "Hallucination")) == {
        "2501.00001",
        "2502.00003",
        "2502.00004",
        "2503.00006",
        "2503.00008",
        "hep-th/9901001",
    }
    assert len(shown_anywhere(settings, "MLLM")) == 6
    status = run_cli("--settings", str(settings.file), "status")
    assert "only as seen ids" in status.stdout and "old store kept:" in status.stdout


@pytest.mark.parametrize(
    "point",
    [
        "convert-after-backup",
        "papers-write-middle:1",  # the working set, written from the old file
        "convert-after-papers",
        "state-write-middle:1",  # the new state file, the conversion's last step
        "state-write-middle:2",  # converted; the journal's delivery being saved
    ],
)
def test_a_kill_during_the_conversion_loses_nothing(
    make_settings, arxiv_server, smtp_server, tmp_path, point
):
    settings = first_release_settings(make_settings, tmp_path)
    old = settings.store.path.read_bytes()
    arxiv_server.add(*FIXTURE_ENTRIES)
    killed = run_cli(
        "--settings", str(settings.file), "inbox", "--once", env={"NEWSLETTER_CRASH_AT": point}
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    if point != "state-write-middle:2":
        assert settings.store.path.read_bytes() == old, "the old store until the new is whole"

    again = run_cli("--settings", str(settings.file), "inbox", "--once")
    assert again.returncode == 0, again.stderr
    with Store(settings.store.path) as store:
        check_first_release_state(store)
        assert store.papers.count() == 10
        assert store.inbox.outbox() == []
    # The two replies the old store had queued, sent once, by the run that completed.
    assert sorted(m.to for m in smtp_server.messages) == ["dora@example.org", "eve@example.net"]
    assert not list(settings.store.path.parent.glob(".*.tmp"))


def weekly_entries(week: int, start: date) -> list:
    day = (start + timedelta(weeks=week)).isoformat()
    return [
        entry(f"h{week}", f"Hallucination week {week}", day=day, terms=["Hallucination"]),
        entry(f"m{week}", f"MLLM week {week}", day=day, terms=["MLLM"]),
        entry(f"b{week}", f"Both week {week}", day=day, terms=["Hallucination", "MLLM"]),
    ]


def test_three_years_of_cycles_keep_every_paper_on_a_table_or_its_page(
    make_settings, arxiv_server, monkeypatch
):
    # Ids like "h12" are not arXiv's: map them to valid ones the parser accepts.
    def arxiv_id(name: str) -> str:
        return f"2{ord(name[0]) - 96:03d}.{int(name[1:]):05d}"

    settings = make_settings(
        keywords=["Hallucination", "MLLM"],
        arxiv={"max_results": 8, "page_size": 8},
        archive={"max_papers": 4, "rotate": True},
        digest={"max_papers_per_keyword": 2},
    )
    start = date(2023, 1, 2)
    served: dict[str, set[str]] = {"Hallucination": set(), "MLLM": set()}
    versions: dict[str, int] = {}
    with Store(settings.store.path) as store:
        for week in range(156):
            fresh = weekly_entries(week, start)
            for item in fresh:
                item.id = arxiv_id(item.id)
                for term in item.terms:
                    served[term].add(item.id)
            if week >= 60 and week % 10 == 0:  # a paper of a year ago is revised
                old = arxiv_id(f"b{week - 52}")
                versions[old] = versions.get(old, 1) + 1
                when = datetime.combine(start + timedelta(weeks=week), datetime.min.time(), UTC)
                fresh.append(
                    entry(
                        old,
                        f"Both week {week - 52}, revised",
                        day=(start + timedelta(weeks=week - 52)).isoformat(),
                        updated=when.isoformat(),
                        version=versions[old],
                        terms=["Hallucination", "MLLM"],
                    )
                )
            arxiv_server.add(*fresh)
            report = run_cycle(settings, store, today=start + timedelta(weeks=week))
            assert report.ok, report.summary()
            assert store.papers.count() <= 8, f"week {week}: the working set grew"
        total = len(served["Hallucination"] | served["MLLM"])
        assert store.papers.count() + len(store.papers.seen()) == total == 468

    for keyword, ids in served.items():
        shown = shown_anywhere(settings, keyword)
        assert set(shown) == ids, f"{keyword}: lost {sorted(ids - set(shown))[:5]}"
        assert set(shown.values()) == {1}
    folder = settings.archive.path.parent
    for page in (folder / "hallucination").glob("*.md"):
        rows = page_rows(page.read_text())
        weeks = [int(r.paper_id.split(".")[1]) for r in rows]
        assert weeks == sorted(weeks, reverse=True), f"{page.name}: not newest first"
        for r in rows:
            if r.paper_id in versions:
                assert f"{r.paper_id}v{versions[r.paper_id]})" in r.text, "the newest version"


def test_a_pruned_paper_that_returns_revised_is_updated_not_news(
    make_settings, arxiv_server, smtp_server
):
    settings = make_settings(
        keywords=["Hallucination"],
        archive={"max_papers": 2, "rotate": True},
        digest={"max_papers_per_keyword": 1},
    )
    subscribe(settings, "ann@example.org", "Hallucination")
    months = ("01", "02", "03", "04", "05")
    arxiv_server.add(
        *(entry(f"25{m}.00001", f"Hallucination {m}", day=f"2025-{m}-02") for m in months)
    )
    with Store(settings.store.path) as store:
        run_cycle(settings, store)
        assert store.papers.count() == 2 and len(store.papers.seen()) == 3
    assert len(smtp_server.messages) == 1  # the welcome issue

    arxiv_server.add(
        entry(
            "2501.00001",
            "Hallucination 01, revised",
            day="2025-01-02",
            updated="2025-06-01T08:00:00+00:00",
            version=2,
        )
    )
    with Store(settings.store.path) as store:
        report = run_cycle(settings, store)
        (counts,) = report.keywords
        assert (counts.new, counts.updated) == (0, 1)
        assert store.papers.count() == 2, "back out of the working set"
        assert store.papers.seen().get("2501.00001")[0] == 2
    assert len(smtp_server.messages) == 1, "a revision is not news"
    january = settings.archive.path.parent / "hallucination" / "2025-01.md"
    (row,) = page_rows(january.read_text())
    assert "Hallucination 01, revised" in row.text and "2501.00001v2)" in row.text
    assert shown_anywhere(settings, "Hallucination") == Counter(f"25{m}.00001" for m in months)

    status = run_cli("--settings", str(settings.file), "status", "--json")
    papers = json.loads(status.stdout)["papers"]
    assert papers == {"full": 2, "seen_ids": 3}


def test_a_subscriber_pending_for_many_cycles_gets_the_newest_of_each_keyword(
    make_settings, arxiv_server, smtp_server
):
    settings = make_settings(
        keywords=["Hallucination", "MLLM"],
        archive={"max_papers": 3},
        digest={"max_papers_per_keyword": 2},
    )
    subscribe(settings, "ann@example.org", "Hallucination", "MLLM")
    arxiv_server.add(entry("2501.00001", "Hallucination zero", day="2025-01-01"))
    with Store(settings.store.path) as store:
        run_cycle(settings, store)  # her welcome issue
        smtp_server.refuse("ann@example.org", "451 4.2.1 mailbox busy, try later")
        for n in range(1, 11):  # ten cycles of new papers while her mailbox refuses
            day = f"2025-02-{n + 1:02d}"
            arxiv_server.add(
                entry(f"2502.{n:05d}", f"Hallucination {n}", day=day),
                entry(f"2502.{n + 100:05d}", f"MLLM {n}", day=day),
            )
            run_cycle(settings, store)
            assert store.papers.count() <= 8
        smtp_server.refusals.clear()
        run_cycle(settings, store)
    digest = smtp_server.messages[-1].message
    assert sorted(paper_ids(digest)) == ["2502.00009", "2502.00010", "2502.00109", "2502.00110"]
    assert "[Daily Papers] 4 new papers" in digest["Subject"], "what this mail holds"
    intro = " ".join(text_part(digest).split())
    assert "4 new papers on your keywords in this mail, and 16 more in the archive." in intro


def test_an_inbox_poll_never_writes_paper_data(make_settings, arxiv_server, smtp_server, tmp_path):
    box = make_maildir(tmp_path / "Maildir")
    settings = make_settings(
        keywords=["MLLM"], inbox={"address": INBOX, "maildir": str(tmp_path / "Maildir")}
    )
    subscribe(settings, "ann@example.org", "MLLM")
    arxiv_server.add(*(entry(f"2502.{n:05d}", f"MLLM {n}") for n in range(1, 30)))
    papers_file = settings.store.path.with_name("newsletter.papers.json")
    with Store(settings.store.path) as store:
        run_cycle(settings, store)
        before = store.write_counts()
        stamp = papers_file.stat().st_mtime_ns
        deliver(
            box,
            mail("Bob <bob@example.org>", "subscribe MLLM"),
            mail("carl@example.org", "help"),
            bounce_of(smtp_server.to("ann@example.org")[0]),
        )
        report = poll_inbox(settings, store)
        assert (report.read, report.bounces, report.error) == (3, 1, "")
        after = store.write_counts()
    assert after["state"] > before["state"]
    assert (after["papers"], after["seen"]) == (before["papers"], before["seen"])
    assert papers_file.stat().st_mtime_ns == stamp


def test_side_tables_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(cycle_log, "KEEP_CYCLES", 5)
    monkeypatch.setattr(inbox_state, "MAX_PROCESSED", 3)
    now = datetime(2025, 3, 7, tzinfo=UTC)
    with Store(tmp_path / "s.json") as store:
        for _ in range(8):
            store.cycles.begin()
        assert [c["number"] for c in store.cycles.all()] == [4, 5, 6, 7, 8]
        for n in range(6):
            store.inbox.mark_processed(f"id:<{n}@x>", now - timedelta(days=40 - n))
        store.inbox.mark_processed("id:<new@x>", now)
        store.inbox.forget_processed(now)
        # Older than 30 days: forgotten; and at most MAX_PROCESSED, the newest.
        assert [store.inbox.is_processed(f"id:<{n}@x>") for n in range(6)] == [False] * 6
        assert store.inbox.is_processed("id:<new@x>")
    with Store(tmp_path / "s.json") as store:
        assert store.cycles.last_number() == 8
