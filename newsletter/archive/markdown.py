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


# Longest text a field shows; past it the text is cut and ends with "…", so one hostile
# paper cannot make the README megabytes. arXiv caps an abstract at 1,920 characters and
# the seed's longest title is 168 and comment 100: no real paper is ever cut, and a
# 10,000-character abstract (tests/test_bad_input.py) still shows whole.
TITLE_MAX = 500
ABSTRACT_MAX = 10_000
COMMENT_MAX = 1_000
ELLIPSIS = "…"


def cap(text: str, limit: int) -> str:
    """`text`, or its first `limit - 1` characters and an ellipsis when it is longer."""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


# GitHub keeps one kind of bare URL clickable: the code links of real abstracts, which the
# seed README shows as links (https://github.com/..., https://NAME.github.io/...). The host
# must be followed by "/", so no userinfo ("github.com@evil"), port or lookalike host passes.
_KEPT_URL = re.compile(
    r"https?://(?:(?:[a-z0-9-]+\.)?github\.com|[a-z0-9-]+\.github\.io)/", re.IGNORECASE
)
# What GFM's autolink extension links without any markup: a scheme's letters before "://"
# (cmark-gfm links http, https and ftp, taking every letter before the colon as the
# scheme), and "www." not inside a word or a URL.
_SCHEME = re.compile(r"(?<![A-Za-z])[A-Za-z]++(?=://)")
_WWW = re.compile(r"(?<![A-Za-z0-9/.])(www)(\.)", re.IGNORECASE)
# A character that is markup, each with the whole run of backslashes before it (an odd
# run escapes it already), and the end of the text (a trailing odd run would escape what
# we put after it). "@" includes the entities that decode to it. Runs are matched from
# their start and never backtracked, so a long one costs linear time.
_MARKUP = re.compile(r"(?<!\\)(\\*+)(\r\n|\r|\n|<|\||[\[\]`]|@|&(?:#0*64|#[xX]0*40|commat);|\Z)")


def _unlink(text: str) -> str:
    def scheme(m: re.Match[str]) -> str:
        kept = _KEPT_URL.match(text, m.start())
        return m.group(0) if kept else m.group(0) + "\\"

    return _WWW.sub(r"\1\\\2", _SCHEME.sub(scheme, text))


def _escape_markup(m: re.Match[str]) -> str:
    slashes, char = m.group(1), m.group(2)
    odd = len(slashes) % 2 == 1
    if char == "<":
        return slashes + ("<" if odd else "&lt;")
    if char == "|":
        return slashes + ("\\\\|" if odd else "\\|")
    if char in ("[", "]", "`"):
        return slashes + ("" if odd else "\\") + char
    # What follows is markup of ours ("<br>", "<span>") or the end of the cell: an odd run
    # would escape its first character, so it gets one backslash more.
    slashes += "\\" if odd else ""
    if char in ("\r\n", "\r", "\n"):
        return slashes + "<br>"
    return f"{slashes}<span>{char}</span>" if char else slashes


def escape_cell(text: str) -> str:
    """Make untrusted text safe inside a GitHub table cell: it shows as the text it is,
    never as markup, and the seed's own rows come out unchanged (they hold none of this).

    Each change stops one thing GitHub's renderer (cmark-gfm) would do with the text:

    - `|` would end the cell: `\\|`, with one more backslash when the text already had one
      before it (LaTeX's `\\|`), because GitHub splits a row at a pipe preceded by an even
      number of backslashes. Line breaks would end the row: `<br>`.
    - `<` would open a tag (`</details>`, `<script>`, `<img>`) or an autolink
      (`<https://...>`): `&lt;`.
    - `[` and `]` would open a link or an image (`[x](url)`, `![x](url)`, `[x][1]`, `[^1]`):
      `\\[`, `\\]`. A backtick would open a code span, which can swallow the markup
      between a comment's summary and its text: `` \\` ``.
    - A bare URL is linked by GFM's autolink extension: a backslash before the scheme's
      colon (`https\\://`) and after `www` (`www\\.`) stops that, showing the same text.
      Code links to GitHub itself stay (`_KEPT_URL`).
    - An e-mail address is linked from the text as the renderer finally sees it, where an
      escape is gone: `@` (or an entity for it) goes in a `<span>`, which splits the text.
    - A run of backslashes at the end, or before a line break or an `@`, would escape the
      first character of the markup that follows (`\\</p>`): it gets one more backslash.

    Everything else, LaTeX included, stays as arXiv sent it.
    """
    return _MARKUP.sub(_escape_markup, _unlink(text))


def escape_link_text(text: str) -> str:
    """A table cell that is also a link's text: an unescaped bracket would end the link,
    and `escape_cell` escapes every one."""
    return escape_cell(text)


def escape_url(url: str) -> str:
    return url.replace(" ", "%20").replace(")", "%29").replace("|", "%7C")


def comment_cell(comment: str) -> str:
    if not comment:
        return ""
    comment = cap(comment, COMMENT_MAX)
    if len(comment) <= COMMENT_INLINE_MAX:
        return escape_cell(comment)
    # The "..." is escaped with the text it follows: "www" + "..." would be a link.
    return (
        f"<details><summary>{escape_cell(comment[:5] + '...')}</summary>"
        f"<p>{escape_cell(comment)}</p></details>"
    )


def row(paper: Paper) -> str:
    return (
        f"| **[{escape_link_text(cap(paper.title, TITLE_MAX))}]({escape_url(paper.url)})** "
        f"| {paper.updated.date().isoformat()} "
        f"| <details><summary>Show</summary><p>{escape_cell(cap(paper.abstract, ABSTRACT_MAX))}"
        "</p></details> "
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
# "|" and brackets are escaped (escape_cell), so the first match is the real end.
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


def heading_anchor(name: str) -> str:
    """The fragment GitHub gives a keyword's "## NAME" heading (as github-slugger does:
    lowercase, punctuation dropped, each space a dash), so a digest can link to it."""
    kept = "".join(c for c in name.lower() if c.isalnum() or c in "-_ ")
    return kept.replace(" ", "-")


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
