"""Cycles: what is new, what is updated, and what survives a keyword's failure."""

from __future__ import annotations

from arxiv_server import entry

from newsletter.cycle import run_cycle
from newsletter.store import Store


def test_second_cycle_finds_only_new_ids(make_settings, arxiv_server):
    settings = make_settings()
    arxiv_server.add(entry("2503.00001", "Hallucination one"), entry("2503.00002", "MLLM two"))
    with Store(settings.store.path) as store:
        first = run_cycle(settings, store)
        arxiv_server.add(entry("2503.00003", "Hallucination three", day="2025-03-02"))
        second = run_cycle(settings, store)
        third = run_cycle(settings, store)
        by_id = {s.paper.id: s for s in store.papers.stored()}
    assert [k.new for k in first.keywords] == [1, 1]
    assert [k.new for k in second.keywords] == [1, 0]
    assert [k.new for k in third.keywords] == [0, 0]
    assert by_id["2503.00003"].first_seen == second.number
    assert by_id["2503.00001"].first_seen == first.number


def test_new_version_updates_the_record_but_is_not_new(make_settings, arxiv_server):
    settings = make_settings(keywords=["Hallucination"])
    arxiv_server.add(
        entry("2503.00001", "Hallucination old title", day="2025-03-01"),
        entry("2503.00002", "Hallucination later paper", day="2025-03-02"),
    )
    with Store(settings.store.path) as store:
        run_cycle(settings, store)
        arxiv_server.add(
            entry(
                "2503.00001",
                "Hallucination revised title",
                version=2,
                published="2025-03-01T12:00:00+00:00",
                updated="2025-03-05T12:00:00+00:00",
            )
        )
        report = run_cycle(settings, store)
        (record,) = [s for s in store.papers.stored() if s.paper.id == "2503.00001"]
    assert report.keywords[0].new == 0 and report.keywords[0].updated == 1
    assert record.paper.version == 2
    assert record.paper.url == "http://arxiv.org/abs/2503.00001v2"
    assert record.paper.title == "Hallucination revised title"
    assert record.first_seen == 1
    text = settings.archive.path.read_text()
    # The revision keeps its place below the later paper, showing its new date.
    assert text.index("later paper") < text.index("revised title")
    assert "2503.00001v2)** | 2025-03-05 |" in text
    assert "old title" not in text


def test_paper_matching_two_keywords_is_stored_once(make_settings, arxiv_server):
    settings = make_settings()
    arxiv_server.add(entry("2503.00001", "MLLM Hallucination"))
    with Store(settings.store.path) as store:
        report = run_cycle(settings, store)
        (record,) = store.papers.stored()
    assert record.keywords == ("Hallucination", "MLLM")
    assert [k.new for k in report.keywords] == [1, 1]
    assert settings.archive.path.read_text().count("**[MLLM Hallucination]") == 2


def test_failed_keyword_keeps_its_archive_rows(make_settings, arxiv_server):
    settings = make_settings()
    arxiv_server.add(entry("2503.00001", "Hallucination one"), entry("2503.00002", "MLLM two"))
    with Store(settings.store.path) as store:
        run_cycle(settings, store)
        arxiv_server.add(entry("2503.00003", "MLLM three", day="2025-03-03"))
        arxiv_server.fail("status", status=503, phrase="Hallucination", times=None)
        report = run_cycle(settings, store)
        assert store.papers.count() == 3
    hallucination, mllm = report.keywords
    assert "HTTP 503" in hallucination.error and hallucination.archived == 1
    assert mllm.error is None and mllm.new == 1
    assert not report.ok
    text = settings.archive.path.read_text()
    assert "Hallucination one" in text and "MLLM three" in text


def test_sudden_zero_does_not_empty_a_section(make_settings, arxiv_server):
    settings = make_settings(keywords=["Hallucination"])
    arxiv_server.add(entry("2503.00001", "Hallucination one"))
    with Store(settings.store.path) as store:
        run_cycle(settings, store)
        arxiv_server.entries.clear()
        report = run_cycle(settings, store)
    assert "had papers before" in report.keywords[0].error
    assert "Hallucination one" in settings.archive.path.read_text()


def test_cycle_record_counts_per_keyword(make_settings, arxiv_server):
    settings = make_settings()
    arxiv_server.add(entry("2503.00001", "Hallucination one"))
    arxiv_server.fail("status", status=400, phrase="MLLM", times=None)
    with Store(settings.store.path) as store:
        run_cycle(settings, store)
        (cycle,) = store.cycles.all()
    assert cycle["finished"] is not None
    assert cycle["keywords"]["Hallucination"] == {
        "fetched": 1,
        "new": 1,
        "updated": 0,
        "error": None,
        "tried": True,
    }
    assert cycle["keywords"]["MLLM"]["error"].startswith("HTTP 400")


def test_store_is_written_a_bounded_number_of_times(make_settings, arxiv_server):
    settings = make_settings()
    arxiv_server.add(*(entry(f"2503.{n:05d}", f"Hallucination MLLM {n}") for n in range(300)))
    with Store(settings.store.path) as store:
        run_cycle(settings, store)
        assert store.papers.count() == 100
        # The state file: start, the keywords' counts, end; the papers: the diff (all 100
        # are in the tables, so nothing is pruned).
        assert store.write_counts() == {"state": 3, "papers": 1, "seen": 0}
