"""Rotation: papers that fall off a capped table go to monthly pages, linked under it."""

from __future__ import annotations

import re
from datetime import date

from arxiv_server import FIXTURES, entry, seed_entries
from conftest import run_cli

from newsletter.archive.markdown import TABLE_HEAD, row
from newsletter.cycle import run_cycle
from newsletter.papers import keyword_slug
from newsletter.store import Store

DAY = date(2025, 3, 7)

# Seven Hallucination papers over three months; with max_papers 2 the table keeps
# the two of March and five go to pages for February (3) and January (2).
PAPERS = [
    ("2501.00001", "2025-01-05"),
    ("2501.00002", "2025-01-20"),
    ("2502.00001", "2025-02-03"),
    ("2502.00002", "2025-02-17"),
    ("2502.00003", "2025-02-28"),
    ("2503.00001", "2025-03-01"),
    ("2503.00002", "2025-03-04"),
]


def add_papers(arxiv_server) -> None:
    arxiv_server.add(*(entry(pid, f"Hallucination {pid}", day=day) for pid, day in PAPERS))


def cycle(settings, today=DAY):
    with Store(settings.store.path) as store:
        return run_cycle(settings, store, today=today)


def titles(text: str) -> list[str]:
    return re.findall(r"\*\*\[Hallucination ([\d.]+)\]", text)


def test_papers_past_the_cap_go_to_monthly_pages_newest_first(make_settings, arxiv_server):
    add_papers(arxiv_server)
    settings = make_settings(keywords=["Hallucination"], archive={"max_papers": 2, "rotate": True})
    report = cycle(settings)
    assert report.ok
    folder = settings.archive.path.parent
    readme = settings.archive.path.read_text()
    assert titles(readme) == ["2503.00002", "2503.00001"]
    february = (folder / "hallucination" / "2025-02.md").read_text()
    january = (folder / "hallucination" / "2025-01.md").read_text()
    assert titles(february) == ["2502.00003", "2502.00002", "2502.00001"]
    assert titles(january) == ["2501.00002", "2501.00001"]
    assert sorted(p.name for p in (folder / "hallucination").iterdir()) == [
        "2025-01.md",
        "2025-02.md",
    ]
    with Store(settings.store.path, lock=False) as store:
        stored = {s.paper.id: s.paper for s in store.papers.stored()}
    # Same table format as the README: its header row and its rows, byte for byte.
    assert february.endswith(
        TABLE_HEAD
        + "".join(row(stored[p]) + "\n" for p in ("2502.00003", "2502.00002", "2502.00001"))
    )
    assert february.startswith("# Hallucination: 2025-02\n\n")
    assert "[the archive](../README.md)" in february


def test_the_readme_links_the_pages_in_one_line_after_the_table(make_settings, arxiv_server):
    add_papers(arxiv_server)
    settings = make_settings(
        keywords=["Hallucination", "MLLM"], archive={"max_papers": 2, "rotate": True}
    )
    cycle(settings)
    readme = settings.archive.path.read_text()
    section = readme.split("## Hallucination\n")[1].split("## MLLM\n")[0]
    rows, after = section.split("\n\n", 1)
    assert rows.count("\n| **[") == 2  # the header, then the two rows, then a blank line
    assert after == (
        "Older papers: [2025-02](hallucination/2025-02.md), [2025-01](hallucination/2025-01.md)\n\n"
    )
    # A keyword with nothing past its table gets no line.
    assert readme.endswith("## MLLM\n" + TABLE_HEAD + "\n")


def test_unchanged_pages_are_not_rewritten(make_settings, arxiv_server):
    add_papers(arxiv_server)
    settings = make_settings(keywords=["Hallucination"], archive={"max_papers": 2, "rotate": True})
    cycle(settings)
    pages = sorted((settings.archive.path.parent / "hallucination").iterdir())
    before = {page: page.stat().st_mtime_ns for page in pages}
    arxiv_server.add(entry("2503.00003", "Hallucination 2503.00003", day="2025-03-05"))
    report = cycle(settings, today=date(2025, 3, 8))
    assert report.archive_written
    # 2503.00001 moved from the table to a new March page; January and February are untouched.
    march = settings.archive.path.parent / "hallucination" / "2025-03.md"
    assert titles(march.read_text()) == ["2503.00001"]
    assert {page: page.stat().st_mtime_ns for page in pages} == before
    assert "[2025-03](hallucination/2025-03.md), [2025-02]" in settings.archive.path.read_text()


def test_a_revision_stays_on_its_first_versions_page(make_settings, arxiv_server):
    add_papers(arxiv_server)
    settings = make_settings(keywords=["Hallucination"], archive={"max_papers": 2, "rotate": True})
    cycle(settings)
    arxiv_server.add(
        entry(
            "2501.00001",
            "Hallucination 2501.00001",
            version=2,
            published="2025-01-05T12:00:00+00:00",
            updated="2025-03-06T12:00:00+00:00",
        )
    )
    cycle(settings, today=date(2025, 3, 8))
    january = (settings.archive.path.parent / "hallucination" / "2025-01.md").read_text()
    assert "2501.00001v2)** | 2025-03-06 |" in january
    assert titles(january) == ["2501.00002", "2501.00001"]


def test_pages_whose_papers_are_back_in_the_table_are_removed(make_settings, arxiv_server):
    add_papers(arxiv_server)
    settings = make_settings(keywords=["Hallucination"], archive={"max_papers": 2, "rotate": True})
    cycle(settings)
    settings = make_settings(keywords=["Hallucination"], archive={"max_papers": 5, "rotate": True})
    (settings.archive.path.parent / "hallucination" / "notes.txt").write_text("mine\n")
    result = run_cli("--settings", str(settings.file), "archive")
    assert result.returncode == 0, result.stderr
    assert "monthly pages: 1, 0 written, 1 removed" in result.stdout
    folder = settings.archive.path.parent / "hallucination"
    assert sorted(p.name for p in folder.iterdir()) == ["2025-01.md", "notes.txt"]
    readme = settings.archive.path.read_text()
    assert "Older papers: [2025-01](hallucination/2025-01.md)\n" in readme
    assert "2025-02.md" not in readme


def test_rotation_without_overflow_leaves_the_seed_format_intact(make_settings, arxiv_server):
    arxiv_server.add(*seed_entries())
    settings = make_settings(archive={"rotate": True})
    cycle(settings)
    assert settings.archive.path.read_bytes() == (FIXTURES / "seed-excerpt.md").read_bytes()
    assert sorted(p.name for p in settings.archive.path.parent.iterdir()) == ["README.md"]


def test_keyword_slugs_are_plain_file_names():
    assert keyword_slug("Reward Model") == "reward-model"
    assert keyword_slug("  Vision/Language (VLM)  ") == "vision-language-vlm"
    assert keyword_slug("Éléphant") == "elephant"
    assert re.fullmatch(r"keyword-[0-9a-f]{10}", keyword_slug("幻觉"))
    assert keyword_slug("幻觉") == keyword_slug("幻觉") != keyword_slug("推理")
