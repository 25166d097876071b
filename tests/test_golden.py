"""What readers see, byte for byte: one digest's HTML and text parts against files under
review in tests/golden/, so that any change to a digest's look or wording is a diff
someone reads. After a change you mean, rewrite them with

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py

and read `git diff tests/golden` before committing.
"""

from __future__ import annotations

import difflib
import os
from datetime import UTC, date, datetime
from pathlib import Path

from newsletter.config.settings import DigestSettings
from newsletter.papers import Paper, StoredPaper, all_by_keyword
from newsletter.sending.render import Personal, Renderer
from newsletter.sending.select import keep_only, select_new

GOLDEN = Path(__file__).parent / "golden"
DAY = date(2025, 3, 7)
KEYWORDS = ("Hallucination", "MLLM", "Reasoning")


def paper(n: int, title: str, day: int, **fields) -> Paper:
    stamp = datetime(2025, 3, day, 17, 30, tzinfo=UTC)
    values = {
        "id": f"2503.{n:05d}",
        "version": 1,
        "url": f"http://arxiv.org/abs/2503.{n:05d}v1",
        "title": title,
        "abstract": f"We study {title.lower()} and report what we found.",
        "authors": ("Ada Lovelace", "Alan Turing"),
        "comment": "",
        "categories": ("cs.CL",),
        "primary_category": "cs.CL",
        "published": stamp,
        "updated": stamp,
    }
    return Paper(**(values | fields))


PAPERS = [
    StoredPaper(paper(1, "Hallucination in long answers", 6), ("Hallucination",), 2),
    StoredPaper(
        paper(
            2,
            "Grounded MLLM <b>captions</b> & their hallucination",
            6,
            authors=("Zoë Müller", "李雷", "Seán O'Brien", "Ann Lee"),
            comment="12 pages, ACL 2025",
            categories=("cs.CV", "cs.CL"),
            primary_category="cs.CV",
        ),
        ("MLLM", "Hallucination"),
        2,
    ),
    StoredPaper(
        paper(
            3,
            "A revised reasoning benchmark",
            2,
            version=2,
            url="http://arxiv.org/abs/2503.00003v2",
            updated=datetime(2025, 3, 6, 9, 0, tzinfo=UTC),
        ),
        ("Reasoning",),
        2,
    ),
    StoredPaper(paper(4, "Older reasoning chains", 1), ("Reasoning",), 2),
    StoredPaper(paper(5, "MLLM tokens, counted", 5), ("MLLM",), 2),
]
READER = Personal(
    email="ann@example.org",
    name="Ann Lee",
    unsubscribe_mailto="mailto:papers@example.org?subject=unsubscribe%20TOKEN",
    unsubscribe_url="https://papers.example.org/unsubscribe/TOKEN",
    message_id="<digest.2.golden@example.org>",
)


def rendered_parts() -> tuple[str, str, str]:
    """A daily digest of three keywords: a paper under two keywords (a tag), a revision,
    markup in a title, a comment, and one paper left to the archive."""
    defaults = DigestSettings(sender="Daily Papers <papers@example.org>", sender_address="")
    renderer = Renderer(
        None,
        subject=defaults.subject,
        welcome_subject=defaults.welcome_subject,
        max_html_bytes=defaults.max_html_bytes,
        archive_url="https://github.com/lab/papers",
        unsubscribe_address="papers@example.org",
    )
    by_keyword = all_by_keyword(PAPERS, KEYWORDS)
    digest = select_new(KEYWORDS, KEYWORDS, by_keyword, after_cycle=1, limit=20)
    digest = keep_only(digest, {f"2503.0000{n}" for n in (1, 2, 3, 5)})
    result = renderer.render(digest, KEYWORDS, DAY)
    html, text = result.personalise(READER)
    return result.subject, html, text


def test_a_digest_looks_exactly_as_reviewed():
    subject, html, text = rendered_parts()
    assert subject == "[Daily Papers] 4 new papers: Hallucination, MLLM, Reasoning (2025-03-07)"
    for name, got in (("digest.html", html), ("digest.txt", text)):
        path = GOLDEN / name
        if os.environ.get("UPDATE_GOLDEN"):
            path.write_text(got, encoding="utf-8")
        want = path.read_text(encoding="utf-8")
        diff = "".join(
            difflib.unified_diff(
                want.splitlines(keepends=True), got.splitlines(keepends=True), name, "rendered"
            )
        )
        assert got == want, f"{name} changed; review, then UPDATE_GOLDEN=1:\n{diff}"
