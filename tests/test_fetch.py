"""Fetching from arXiv over real HTTP: queries, parsing, and the arxiv client's gaps closed."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from arxiv_server import FIXTURES, entry

from newsletter.config import Keyword
from newsletter.fetch.client import ArxivClient, FetchError, parse_retry_after
from newsletter.fetch.keywords import build_query, fetch_keyword
from newsletter.papers import BadPaper, parse_arxiv_id

API = FIXTURES / "arxiv-api"


def fetch(settings, name="Hallucination", had_papers=False, **keyword):
    client = ArxivClient(settings.arxiv)
    return fetch_keyword(client, Keyword(name=name, **keyword), settings.arxiv, had_papers)


def test_default_query_searches_title_and_abstract():
    assert build_query(Keyword("Reward Model")) == 'ti:"Reward Model" OR abs:"Reward Model"'


def test_quotes_in_a_name_keep_the_query_valid():
    query = build_query(Keyword('The "Best" Model'))
    assert query == 'ti:"The Best Model" OR abs:"The Best Model"'
    assert query.count('"') == 4


def test_exclude_terms_are_removed_with_andnot():
    query = build_query(Keyword("MLLM", exclude=("survey", "benchmark")))
    assert query == (
        '(ti:"MLLM" OR abs:"MLLM") ANDNOT '
        '(ti:"survey" OR abs:"survey" OR ti:"benchmark" OR abs:"benchmark")'
    )


def test_raw_query_overrides_the_default():
    assert build_query(Keyword("Robots", query="cat:cs.RO AND abs:grasp")) == (
        "cat:cs.RO AND abs:grasp"
    )


def test_request_asks_for_newest_updates_first(make_settings, arxiv_server):
    arxiv_server.add(entry("2503.00001", "Hallucination one"))
    fetch(make_settings())
    _, params = arxiv_server.requests[0]
    assert params["sortBy"] == "lastUpdatedDate"
    assert params["sortOrder"] == "descending"
    assert params["search_query"] == 'ti:"Hallucination" OR abs:"Hallucination"'


@pytest.mark.parametrize(
    "text, expected",
    [
        ("http://arxiv.org/abs/2503.03595v1", ("2503.03595", 1)),
        ("https://arxiv.org/abs/2005.14124v12", ("2005.14124", 12)),
        ("http://arxiv.org/abs/hep-th/9901001v2", ("hep-th/9901001", 2)),
        ("http://arxiv.org/abs/math.GT/0309136v1", ("math.GT/0309136", 1)),
        ("0704.0001", ("0704.0001", 1)),
        ("astro-ph/0601001", ("astro-ph/0601001", 1)),
    ],
)
def test_arxiv_ids_new_and_old_style(text, expected):
    assert parse_arxiv_id(text) == expected


def test_garbage_id_is_refused():
    with pytest.raises(BadPaper):
        parse_arxiv_id("https://arxiv.org/api/errors#incorrect_id_format_for_abc")


def test_real_api_answer_is_normalised(make_settings, arxiv_server):
    arxiv_server.fail(
        "raw", status=200, body=(API / "arxivpy__q_testing_s0_m100__http200.xml").read_bytes()
    )
    result = fetch(make_settings(arxiv={"categories": [], "max_results": 100}), name="testing")
    papers = {p.id: p for p in result.papers}
    assert len(papers) == 100
    assert {"cs/0503050", "hep-ph/0301050", "gr-qc/0103067"} <= set(papers)
    revised = papers["2005.14124"]
    assert revised.version == 2 and revised.updated > revised.published
    assert revised.url == "http://arxiv.org/abs/2005.14124v2"
    assert all("\n" not in p.abstract and "  " not in p.abstract for p in papers.values())
    assert all(p.published.tzinfo == UTC for p in papers.values())
    assert any("$" in p.title for p in papers.values()), "LaTeX stays as sent"


def test_legacy_hard_wrapped_answer_is_collapsed(make_settings, arxiv_server):
    arxiv_server.fail(
        "raw", status=200, body=(API / "zoia__id_1601.00001__legacy_2020.xml").read_bytes()
    )
    (paper,) = fetch(make_settings(arxiv={"categories": []}), name="probe").papers
    assert paper.title == (
        "Inelastic effects in molecular transport junctions: The probe technique at high bias"
    )
    assert paper.abstract.startswith('We extend the Landauer-B\\"uttiker probe formalism')
    assert paper.published == datetime(2015, 12, 26, 21, 19, 45, tzinfo=UTC)


def test_fake_server_legacy_wrapping_round_trips(make_settings, arxiv_server):
    arxiv_server.legacy = True
    long_title = "Hallucination " + "very long words in a title that wraps " * 4
    arxiv_server.add(entry("2503.00001", long_title.strip(), comment="12 pages " * 12))
    (paper,) = fetch(make_settings()).papers
    assert paper.title == " ".join(long_title.split())
    assert paper.comment == " ".join(("12 pages " * 12).split())


def test_categories_filter_keeps_listed_archives(make_settings, arxiv_server):
    arxiv_server.add(
        entry("2503.00001", "Hallucination in cs", categories=["cs.CL"]),
        entry("2503.00002", "Hallucination in stat", categories=["stat.ML"]),
        entry("2503.00003", "Hallucination cross-listed", categories=["eess.IV", "cs.CV"]),
        entry("2503.00004", "Hallucination in physics", categories=["physics.optics"]),
    )
    result = fetch(make_settings())
    assert sorted(p.id for p in result.papers) == ["2503.00001", "2503.00002", "2503.00003"]
    assert result.filtered == 1
    only = fetch(make_settings(), categories=("physics",))
    assert [p.id for p in only.papers] == ["2503.00004"]
    everything = fetch(make_settings(arxiv={"categories": []}))
    assert len(everything.papers) == 4


def test_bad_request_is_not_retried_and_says_why(make_settings, arxiv_server):
    body = (API / "arxivpy__id_abc__error_http400.xml").read_bytes()
    arxiv_server.fail("raw", status=400, body=body, times=None)
    with pytest.raises(FetchError, match=r"HTTP 400: incorrect id format for abc"):
        fetch(make_settings(arxiv={"retries": 3}))
    assert len(arxiv_server.requests) == 1


def test_temporary_error_is_retried_then_succeeds(make_settings, arxiv_server):
    arxiv_server.add(entry("2503.00001", "Hallucination one"))
    arxiv_server.fail("status", status=503)
    assert len(fetch(make_settings(arxiv={"retries": 2})).papers) == 1
    assert len(arxiv_server.requests) == 2


def test_temporary_errors_give_up_after_retries(make_settings, arxiv_server):
    arxiv_server.fail("status", status=503, times=None)
    with pytest.raises(FetchError, match=r"HTTP 503 \(gave up after 3 tries\)"):
        fetch(make_settings(arxiv={"retries": 2}))
    assert len(arxiv_server.requests) == 3


def test_retry_after_is_honoured(make_settings, arxiv_server):
    arxiv_server.add(entry("2503.00001", "Hallucination one"))
    arxiv_server.fail("status", status=429, retry_after="1")
    fetch(make_settings())
    (first, _), (second, _) = arxiv_server.requests
    assert second - first >= 0.95


def test_retry_after_longer_than_the_cap_skips_the_keyword(make_settings, arxiv_server):
    arxiv_server.fail("status", status=503, retry_after="3600")
    with pytest.raises(FetchError, match="asks to wait 3600 s"):
        fetch(make_settings())
    assert len(arxiv_server.requests) == 1


def test_retry_after_as_http_date():
    now = datetime(2025, 3, 7, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Fri, 07 Mar 2025 12:00:30 GMT", now) == 30
    assert parse_retry_after("120") == 120
    assert parse_retry_after("soon") is None


def test_silent_server_times_out(make_settings, arxiv_server):
    arxiv_server.fail("stall", seconds=3, times=None)
    settings = make_settings(arxiv={"timeout_seconds": 0.5, "retries": 0})
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"no reply within 0.5 s"):
        fetch(settings)
    assert time.monotonic() - started < 2.5


def test_empty_page_with_nonzero_total_is_an_error(make_settings, arxiv_server):
    arxiv_server.fail("empty", total=250, times=None)
    with pytest.raises(FetchError, match="empty page although 250 results were announced"):
        fetch(make_settings())


@pytest.mark.parametrize("kind", ["malformed", "truncated"])
def test_broken_xml_is_an_error_not_fewer_papers(make_settings, arxiv_server, kind):
    arxiv_server.add(*(entry(f"2503.{n:05d}", f"Hallucination {n}") for n in range(1, 6)))
    arxiv_server.fail(kind, times=None)
    with pytest.raises(FetchError, match="malformed XML"):
        fetch(make_settings())


def test_dropped_connection_is_retried(make_settings, arxiv_server):
    arxiv_server.add(entry("2503.00001", "Hallucination one"))
    arxiv_server.fail("drop")
    assert len(fetch(make_settings()).papers) == 1


def test_connection_refused_is_an_error(make_settings, arxiv_server):
    url = arxiv_server.url
    arxiv_server.close()
    with pytest.raises(FetchError, match="refused the connection"):
        fetch(make_settings(arxiv={"api_url": url, "retries": 0}))


def test_sudden_zero_is_asked_twice_then_failed(make_settings, arxiv_server):
    with pytest.raises(FetchError, match="had papers before"):
        fetch(make_settings(), had_papers=True)
    assert len(arxiv_server.requests) == 2
    assert fetch(make_settings(), had_papers=False).papers == ()


def test_paging_and_duplicates_across_pages(make_settings, arxiv_server):
    arxiv_server.add(
        *(entry(f"2503.{n:05d}", f"Hallucination {n}", day=f"2025-03-{n:02d}") for n in range(1, 8))
    )
    settings = make_settings(arxiv={"page_size": 3, "max_results": 7})
    assert len(fetch(settings).papers) == 7
    starts = [params["start"] for _, params in arxiv_server.requests]
    assert starts == ["0", "3", "6"]


def test_one_client_paces_every_request(make_settings, arxiv_server):
    arxiv_server.add(entry("2503.00001", "Hallucination one"), entry("2503.00002", "MLLM two"))
    settings = make_settings(arxiv={"delay_seconds": 0.4})
    client = ArxivClient(settings.arxiv)
    for name in ("Hallucination", "MLLM"):
        fetch_keyword(client, Keyword(name), settings.arxiv, False)
    (first, _), (second, _) = arxiv_server.requests
    assert second - first >= 0.38
