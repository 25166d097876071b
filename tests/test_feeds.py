"""A feed per keyword: valid Atom 1.0 a feed reader can follow, read back with xml.etree."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime

from arxiv_server import entry
from test_archive import paper

from newsletter.archive.atom import FeedLinks, render_feed
from newsletter.cycle import run_cycle
from newsletter.papers import StoredPaper
from newsletter.store import Store

A = "{http://www.w3.org/2005/Atom}"
DAY = date(2025, 3, 7)
NASTY_TITLE = r"Hallucination <script>alert(1)</script> & $\alpha<\beta$ ]]> R\&D"
NASTY_ABSTRACT = r"We bound $|x|<1$ & show </summary><entry> is text; \href{a&b}{c}"


def cycle(settings, today=DAY):
    with Store(settings.store.path) as store:
        return run_cycle(settings, store, today=today)


def rfc3339(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def check_atom(feed: ET.Element) -> None:
    """The RFC 4287 rules a reader relies on: one id, title and updated per feed and
    entry, RFC 3339 dates, an author for every entry (its own or the feed's)."""
    assert feed.tag == f"{A}feed"
    for element in (feed, *feed.findall(f"{A}entry")):
        for tag in ("id", "title", "updated"):
            assert len(element.findall(f"{A}{tag}")) == 1, (element.tag, tag)
        rfc3339(element.findtext(f"{A}updated"))
    assert feed.find(f"{A}author/{A}name").text


def links(element: ET.Element) -> dict[str, str]:
    return {link.get("rel"): link.get("href") for link in element.findall(f"{A}link")}


def test_each_keyword_gets_an_atom_feed_of_its_table(make_settings, arxiv_server):
    arxiv_server.add(
        entry(
            "2503.00001",
            NASTY_TITLE,
            abstract=NASTY_ABSTRACT,
            authors=["Ada Lovelace", "O'Brien & Søn"],
            categories=["cs.CL", "cs.AI"],
            published="2025-03-01T12:00:00+00:00",
            updated="2025-03-05T08:30:00+00:00",
            version=2,
        ),
        entry("2503.00002", "Hallucination second", day="2025-03-03"),
        entry("2502.00009", "Hallucination past the cap", day="2025-02-03"),
        entry("2503.00003", "MLLM only", day="2025-03-02"),
    )
    settings = make_settings(
        archive={"max_papers": 2, "feeds": True, "public_url": "https://papers.example.org/a/"}
    )
    assert cycle(settings).ok
    folder = settings.archive.path.parent / "feeds"
    assert sorted(p.name for p in folder.iterdir()) == ["hallucination.xml", "mllm.xml"]

    feed = ET.parse(folder / "hallucination.xml").getroot()
    check_atom(feed)
    assert feed.findtext(f"{A}id") == "https://papers.example.org/a/feeds/hallucination.xml"
    assert feed.findtext(f"{A}title") == "Daily Papers: Hallucination"
    assert links(feed) == {
        "self": "https://papers.example.org/a/feeds/hallucination.xml",
        "alternate": "https://papers.example.org/a/",
    }
    # The README table's rows, in its order: the newest by first version, capped.
    entries = feed.findall(f"{A}entry")
    assert [e.findtext(f"{A}id") for e in entries] == [
        "http://arxiv.org/abs/2503.00002",
        "http://arxiv.org/abs/2503.00001",
    ]
    # The feed is as new as its newest entry (the revision of 2503.00001).
    assert feed.findtext(f"{A}updated") == "2025-03-05T08:30:00Z"

    revised = entries[1]
    assert revised.findtext(f"{A}title") == NASTY_TITLE
    assert revised.findtext(f"{A}summary") == NASTY_ABSTRACT
    assert revised.findtext(f"{A}published") == "2025-03-01T12:00:00Z"
    assert revised.findtext(f"{A}updated") == "2025-03-05T08:30:00Z"
    assert links(revised) == {
        "alternate": "http://arxiv.org/abs/2503.00001v2",
        "related": "http://arxiv.org/pdf/2503.00001v2",
    }
    assert [a.text for a in revised.findall(f"{A}author/{A}name")] == [
        "Ada Lovelace",
        "O'Brien & Søn",
    ]
    assert [c.get("term") for c in revised.findall(f"{A}category")] == ["cs.CL", "cs.AI"]
    raw = (folder / "hallucination.xml").read_text()
    assert "<script>" not in raw and "&lt;script&gt;" in raw

    mllm = ET.parse(folder / "mllm.xml").getroot()
    assert [e.findtext(f"{A}title") for e in mllm.findall(f"{A}entry")] == ["MLLM only"]


def test_unchanged_feeds_are_not_rewritten(make_settings, arxiv_server):
    arxiv_server.add(entry("2503.00001", "Hallucination one"))
    settings = make_settings(keywords=["Hallucination"], archive={"feeds": True})
    cycle(settings)
    feed = settings.archive.path.parent / "feeds" / "hallucination.xml"
    before = feed.stat().st_mtime_ns
    cycle(settings, today=date(2025, 3, 8))
    assert feed.stat().st_mtime_ns == before
    arxiv_server.add(entry("2503.00002", "Hallucination two", day="2025-03-06"))
    cycle(settings, today=date(2025, 3, 9))
    assert ET.parse(feed).getroot().findtext(f"{A}updated") == "2025-03-06T12:00:00Z"


def test_without_public_url_links_are_relative_and_the_id_is_stable(make_settings, arxiv_server):
    settings = make_settings(keywords=["Reward Model"], archive={"feeds": True})
    cycle(settings)
    path = settings.archive.path.parent / "feeds" / "reward-model.xml"
    feed = ET.parse(path).getroot()
    check_atom(feed)
    assert links(feed) == {"self": "reward-model.xml", "alternate": "../README.md"}
    assert feed.findtext(f"{A}id").startswith("urn:uuid:")
    # An empty feed is still valid, and does not change from one cycle to the next.
    assert feed.findall(f"{A}entry") == []
    assert feed.findtext(f"{A}updated") == "1970-01-01T00:00:00Z"
    text = path.read_bytes()
    cycle(settings, today=date(2025, 3, 8))
    assert path.read_bytes() == text


def test_characters_xml_forbids_are_dropped_not_written():
    p = paper(
        title="Bad\x00 title\x1b with\ud800 controls",
        abstract="form\x0c feed and \x7f delete",
        authors=("Nul\x01 Author",),
        updated=datetime(2025, 3, 2, tzinfo=UTC),
    )
    text = render_feed(
        "Daily Papers: K", [StoredPaper(p, ("K",), 1)], FeedLinks("urn:x", "k.xml", "../R.md")
    )
    feed = ET.fromstring(text.encode("utf-8"))
    check_atom(feed)
    (item,) = feed.findall(f"{A}entry")
    assert item.findtext(f"{A}title") == "Bad title with controls"
    assert item.findtext(f"{A}summary") == "form feed and \x7f delete"
    assert item.findtext(f"{A}author/{A}name") == "Nul Author"
