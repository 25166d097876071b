"""The archive: the seed README reproduced byte for byte, and cells that cannot break a table."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

from arxiv_server import FIXTURES, entry, seed_entries

from newsletter.archive.files import write_archive
from newsletter.archive.markdown import (
    comment_cell,
    escape_cell,
    heading_anchor,
    render_archive,
    row,
)
from newsletter.cycle import run_cycle
from newsletter.papers import Paper, StoredPaper, all_by_keyword
from newsletter.store import Store

SEED_DAY = date(2025, 3, 7)


def paper(pid: str = "2503.00001", **fields) -> Paper:
    base = dict(
        id=pid,
        version=1,
        url=f"http://arxiv.org/abs/{pid}v1",
        title="A title",
        abstract="An abstract.",
        authors=("A. Author",),
        comment="",
        categories=("cs.CL",),
        primary_category="cs.CL",
        published=datetime(2025, 3, 1, 12, tzinfo=UTC),
        updated=datetime(2025, 3, 1, 12, tzinfo=UTC),
    )
    return Paper(**(base | fields))


def gfm_cells(line: str) -> list[str]:
    """Split a table row the way GitHub does: a pipe is escaped by an odd run of backslashes."""
    cells, current, slashes = [], "", 0
    for char in line.strip()[1:-1]:
        if char == "|" and slashes % 2 == 0:
            cells.append(current)
            current = ""
        else:
            current += char
        slashes = slashes + 1 if char == "\\" else 0
    return [*cells, current]


def test_seed_excerpt_is_reproduced_byte_for_byte(make_settings, arxiv_server):
    arxiv_server.add(*seed_entries())
    settings = make_settings()
    with Store(settings.store.path) as store:
        report = run_cycle(settings, store, today=SEED_DAY)
    assert report.ok
    assert settings.archive.path.read_bytes() == (FIXTURES / "seed-excerpt.md").read_bytes()


def test_mllm_rows_follow_first_version_not_update_date(make_settings, arxiv_server):
    arxiv_server.add(*seed_entries())
    settings = make_settings()
    with Store(settings.store.path) as store:
        run_cycle(settings, store, today=SEED_DAY)
    text = settings.archive.path.read_text()
    mllm = text.split("## MLLM\n")[1]
    dates = re.findall(r"\)\*\* \| (\d{4}-\d\d-\d\d) \|", mllm)
    assert dates != sorted(dates, reverse=True), "the excerpt's Date column is not monotonic"


def test_header_takes_the_cap_from_settings():
    text = render_archive({"MLLM": []}, 7, SEED_DAY)
    assert "up to a maximum of 7 papers." in text
    assert text.endswith(
        "## MLLM\n| **Title** | **Date** | **Abstract** | **Comment** |\n"
        "| --- | --- | --- | --- |\n\n"
    )


def test_rows_newest_first_by_published_ties_by_id_descending():
    same = datetime(2025, 3, 2, tzinfo=UTC)
    papers = [
        paper("2503.00001", published=same),
        paper("2503.00009", published=same),
        paper("2502.00001", published=datetime(2025, 2, 1, tzinfo=UTC), updated=same),
        paper("2503.00005", published=datetime(2025, 3, 3, tzinfo=UTC)),
    ]
    grouped = all_by_keyword((StoredPaper(p, ("K",), 1) for p in papers), ["K"])
    assert [s.paper.id for s in grouped["K"]][:3] == ["2503.00005", "2503.00009", "2503.00001"]


def test_a_paper_appears_under_every_keyword_it_matched():
    p = StoredPaper(paper(), ("A", "B"), 1)
    grouped = all_by_keyword([p], ["A", "B", "C"])
    assert grouped == {"A": [p], "B": [p], "C": []}


def test_pipe_and_line_breaks_cannot_break_the_table():
    p = paper(
        title="Norms | and [brackets",
        abstract="We bound \\|\\nabla f\\| and |U_{e3}|^2.",
        comment="a | b\nc",
    )
    line = row(p)
    assert "\n" not in line
    cells = gfm_cells(line)
    assert len(cells) == 4
    assert "Norms \\| and \\[brackets" in cells[0]
    assert "\\\\\\|\\nabla f\\\\\\|" in cells[2]
    assert cells[3].strip() == "a \\| b<br>c"


def test_tags_in_untrusted_text_cannot_close_the_details_block():
    line = row(paper(abstract="x</p></details><script>alert(1)</script> & y < z"))
    assert "<script>" not in line
    assert "</details></p>" not in line
    assert "&lt;script>alert(1)&lt;/script> & y &lt; z" in line


def test_latex_is_left_alone():
    text = r"The $\text{LapEigvals}$ method \href{https://github.com/x}{code} keeps R\&D"
    assert escape_cell(text) == text
    # only a URL GitHub would link, and that is not a code link on GitHub, changes
    assert escape_cell(r"\href{https://x}{code}") == r"\href{https\://x}{code}"


def test_comment_cell_formats():
    assert comment_cell("") == ""
    assert comment_cell("4 pages") == "4 pages"
    assert comment_cell("x" * 20) == "x" * 20
    assert comment_cell("Preprint, under review") == (
        "<details><summary>Prepr...</summary><p>Preprint, under review</p></details>"
    )


def test_archive_not_rewritten_when_only_the_date_changes(tmp_path: Path):
    path = tmp_path / "README.md"
    sections = {"K": [StoredPaper(paper(), ("K",), 1)]}
    assert write_archive(path, render_archive(sections, 100, date(2025, 3, 1)))
    before = path.stat().st_mtime_ns
    assert not write_archive(path, render_archive(sections, 100, date(2025, 3, 2)))
    assert path.stat().st_mtime_ns == before
    assert "Last update: 2025-03-01" in path.read_text()
    assert write_archive(
        path,
        render_archive({"K": [StoredPaper(paper(title="New"), ("K",), 1)]}, 100, date(2025, 3, 2)),
    )
    assert "Last update: 2025-03-02" in path.read_text()


def test_archive_keeps_at_most_max_papers(make_settings, arxiv_server):
    arxiv_server.add(*(entry(f"2503.{n:05d}", f"Hallucination {n}") for n in range(1, 8)))
    settings = make_settings(keywords=["Hallucination"], archive={"max_papers": 3})
    with Store(settings.store.path) as store:
        report = run_cycle(settings, store)
        assert store.papers.count() == 7
    assert report.keywords[0].archived == 3
    text = settings.archive.path.read_text()
    assert [int(n) for n in re.findall(r"Hallucination (\d+)\]", text)] == [7, 6, 5]


def test_heading_anchors_are_the_ones_github_gives_the_keyword_headings():
    """Digests link "N more in the archive" to the keyword's heading on GitHub."""
    assert heading_anchor("Hallucination") == "hallucination"
    assert heading_anchor("Reward Model") == "reward-model"
    assert heading_anchor("C++ & Rust") == "c--rust", "punctuation goes, each space a dash"
    assert heading_anchor("Vision-Language (VLM)") == "vision-language-vlm"
    assert heading_anchor("Sprachmodelle für Ärzte") == "sprachmodelle-für-ärzte"
