"""The archive's Markdown: the README's tables and the monthly pages, rendered (pure).

The format is the README this product replaces, byte for byte, so existing
readers and links keep working. Papers in, text out; files.py writes it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date

from ..papers import BadPaper, Paper, StoredPaper, parse_arxiv_id

TABLE_HEAD = "| **Title** | **Date** | **Abstract** | **Comment** |\n| --- | --- | --- | --- |\n"
DATE_LINE = re.compile(r"^Last update: .*$", re.MULTILINE)
COMMENT_INLINE_MAX = 20


def header(max_papers: int, today: date) -> str:
    return (
        "# Daily Papers\n"
        "The project automatically fetches the latest papers from arXiv based on keywords.\n\n"
        "The subheadings in the README file represent the search keywords.\n\n"
        "Only the most recent articles for each keyword are retained, "
        f"up to a maximum of {max_papers} papers.\n\n"
        "You can click the 'Watch' button to receive daily email notifications.\n\n"
        f"Last update: {today.isoformat()}\n\n"
    )


_PIPE = re.compile(r"(\\*)\|")
_LT = re.compile(r"(\\*)<")
_BRACKET = re.compile(r"(\\*)([\[\]])")
_NEWLINES = re.compile(r"\r\n|\r|\n")


def escape_cell(text: str) -> str:
    """Make untrusted text safe inside a GitHub table cell, altering nothing else.

    `|` would end the cell: it becomes `\\|`, with one more backslash when the
    text already had one before it (LaTeX's `\\|`), because GitHub splits a row
    at a pipe preceded by an even number of backslashes. Line breaks would end
    the row: they become `<br>`. `<` could open a tag that swallows the rest of
    the table (`</details>`, `<script>`): it becomes `&lt;`. Everything else,
    LaTeX included, stays as arXiv sent it.
    """
    text = _LT.sub(lambda m: m.group(1) + ("<" if len(m.group(1)) % 2 else "&lt;"), text)
    text = _PIPE.sub(lambda m: m.group(1) + ("\\|" if len(m.group(1)) % 2 == 0 else "\\\\|"), text)
    return _NEWLINES.sub("<br>", text)


def escape_link_text(text: str) -> str:
    """A table cell that is also a link's text: an unbalanced bracket would end the link."""
    return _BRACKET.sub(
        lambda m: m.group(0) if len(m.group(1)) % 2 else m.group(1) + "\\" + m.group(2),
        escape_cell(text),
    )


def escape_url(url: str) -> str:
    return url.replace(" ", "%20").replace(")", "%29").replace("|", "%7C")


def comment_cell(comment: str) -> str:
    if not comment:
        return ""
    if len(comment) <= COMMENT_INLINE_MAX:
        return escape_cell(comment)
    return (
        f"<details><summary>{escape_cell(comment[:5])}...</summary>"
        f"<p>{escape_cell(comment)}</p></details>"
    )


def row(paper: Paper) -> str:
    return (
        f"| **[{escape_link_text(paper.title)}]({escape_url(paper.url)})** "
        f"| {paper.updated.date().isoformat()} "
        f"| <details><summary>Show</summary><p>{escape_cell(paper.abstract)}</p></details> "
        f"| {comment_cell(paper.comment)} |"
    )


def month_of(paper: Paper) -> str:
    """The monthly page a paper goes to: its first version's month (UTC), the month of
    `order_key`, so the pages read newest first one after another like the table."""
    return paper.published.astimezone(UTC).strftime("%Y-%m")


def render_page(name: str, month: str, rows: Sequence[str], readme_name: str) -> str:
    """A monthly page: the README's table format, rows as `row` makes them (newest first);
    no date line, so its bytes change only when a row does."""
    return (
        f"# {name}: {month}\n\n"
        f"Papers on {name} first published in {month} that no longer fit in the table of "
        f"[the archive](../{escape_url(readme_name)}), newest first.\n\n"
        f"{TABLE_HEAD}" + "".join(line + "\n" for line in rows)
    )


# Where a row's title link ends and its Date cell follows. A title cannot hold this: its
# "|" and brackets are escaped (escape_link_text), so the first match is the real end.
_ROW_LINK = re.compile(r"\]\((\S+?)\)\*\* \| (\d{4}-\d\d-\d\d) \| <details>")


@dataclass(frozen=True)
class PageRow:
    """One row of a page already on disk: its text as written, and what sorts it."""

    text: str
    paper_id: str  # "" when the row's link is not an arXiv abstract we can read
    date: str  # its Date column, YYYY-MM-DD ("" when unreadable)


def page_rows(text: str) -> list[PageRow]:
    """The table rows of a page on disk, in their order; lines that are not rows are not
    returned (the heading, the table's head)."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("| **["):
            continue
        link = _ROW_LINK.search(line)
        paper_id = ""
        if link:
            with contextlib.suppress(BadPaper):
                paper_id = parse_arxiv_id(link.group(1))[0]
        rows.append(PageRow(line, paper_id, link.group(2) if link else ""))
    return rows


def older_line(slug: str, months: Sequence[str]) -> str:
    """The line under a keyword's table linking its monthly pages (relative to the README)."""
    return "Older papers: " + ", ".join(f"[{m}]({slug}/{m}.md)" for m in months)


def render_archive(
    sections: Mapping[str, Sequence[StoredPaper]],
    max_papers: int,
    today: date,
    older: Mapping[str, str] | None = None,
) -> str:
    """The README; `older` maps a keyword to the line placed after its table (rotation)."""
    parts = [header(max_papers, today)]
    for name, entries in sections.items():
        parts.append(f"## {name}\n{TABLE_HEAD}")
        parts.append("".join(row(entry.paper) + "\n" for entry in entries))
        parts.append("\n")
        if older and older.get(name):
            parts.append(f"{older[name]}\n\n")
    return "".join(parts)
