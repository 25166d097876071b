"""Paper text in the archive renders as text on GitHub: no image, link, autolink or HTML.

The archive's Markdown is rendered here by cmark-gfm, GitHub's own renderer (the
cmarkgfm package), with GitHub's extensions (table, autolink, tagfilter, strikethrough,
tasklist) and footnotes, and with raw HTML let through as GitHub's renderer does before
its sanitiser: so whatever a paper could inject shows up in the HTML these tests read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from html.parser import HTMLParser
from urllib.parse import urlsplit

import cmarkgfm
import pytest
from arxiv_server import FIXTURES
from cmarkgfm.cmark import Options
from test_archive import paper

from newsletter.archive.markdown import (
    ABSTRACT_MAX,
    COMMENT_MAX,
    ELLIPSIS,
    TITLE_MAX,
    escape_cell,
    page_rows,
    render_archive,
    row,
)
from newsletter.papers import Paper, StoredPaper

# The markup of a row (ours), and the emphasis Markdown may make of paper text.
ROW_TAGS = {"td", "strong", "a", "details", "summary", "p", "br", "span", "em", "del"}
# A bare URL GitHub keeps clickable (markdown._KEPT_URL): code links to GitHub itself.
KEPT_HOSTS = ("github.com", ".github.com", ".github.io")


def render(markdown: str) -> str:
    return cmarkgfm.github_flavored_markdown_to_html(
        markdown, Options.CMARK_OPT_UNSAFE | Options.CMARK_OPT_FOOTNOTES
    )


@dataclass
class Cell:
    tags: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)  # hrefs, in order
    text: str = ""
    spans: list[str] = field(default_factory=list)  # the text in each <span>


class Table(HTMLParser):
    """The body rows of the tables in rendered HTML, each a list of cells."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.rows: list[list[Cell]] = []
        self.outside: list[str] = []  # tags outside any body cell
        self._cell: Cell | None = None
        self._span: list[str] | None = None
        self._in_body = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        if tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append([])
        elif tag == "td" and self._in_body:
            self._cell = Cell()
            self.rows[-1].append(self._cell)
        if self._cell is None:
            self.outside.append(tag)
            return
        self._cell.tags.append(tag)
        if tag == "a":
            self._cell.links.append(dict(attrs).get("href") or "")
        elif tag == "span":
            self._span = []
        elif tag == "br":
            self._cell.text += "\n"

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._in_body = False
        elif tag == "td":
            self._cell = None
        elif tag == "span" and self._cell is not None and self._span is not None:
            self._cell.spans.append("".join(self._span))
            self._span = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.text += data
            if self._span is not None:
                self._span.append(data)


def readme(*papers: Paper) -> str:
    return render_archive({"K": [StoredPaper(p, ("K",), 1) for p in papers]}, 100, date(2025, 3, 7))


def check_rows(html: str, papers: list[Paper]) -> list[list[Cell]]:
    """Every row: four cells, the title's arXiv link and no other link, no image, no tag
    but a row's own; `<span>` only ever holds an `@`."""
    table = Table(html)
    assert len(table.rows) == len(papers)
    assert "img" not in table.outside and "a" not in table.outside
    for cells, p in zip(table.rows, papers, strict=True):
        assert len(cells) == 4, [c.text for c in cells]
        assert cells[0].links == [p.url]
        assert all(not c.links for c in cells[1:]), [c.links for c in cells]
        for cell in cells:
            assert set(cell.tags) <= ROW_TAGS, cell.tags
            assert all(s == "@" for s in cell.spans), cell.spans
        assert cells[1].text == p.updated.date().isoformat()
    return table.rows


# Text a paper could send to make GitHub show an image, a link or HTML, or to break the row.
HOSTILE = {
    "image": "![x](https://evil.example/t.png)",
    "image-no-scheme": "![](//evil.example/t.png)",
    "link": "[Download](https://evil.example/x.exe)",
    "link-with-title": '[a](http://e.example "t")',
    "reference-link": "see [x][1] and [y]\n[1]: https://evil.example\n[y]: https://evil.example",
    "footnote": "a claim[^1]\n[^1]: https://evil.example",
    "autolink": "<https://evil.example/x>",
    "autolink-email": "<me@evil.example>",
    "bare-https": "code at https://evil.example/x.",
    "bare-http-upper": "HTTP://EVIL.EXAMPLE/X",
    "bare-ftp": "ftp://evil.example/x",
    "bare-scheme-after-backslash": "\\https://evil.example",
    "bare-in-latex": "\\href{https://evil.example}{code}",
    "www": "visit www.evil.example today",
    "www-in-parens": "(www.evil.example)",
    "www-after-emphasis": "*www.evil.example*",
    "www-cut-by-a-summary": "x www.evil.example",  # a folded comment shows "x www..."
    "email": "write to me@evil.example",
    "email-mailto": "mailto:me@evil.example",
    "email-escaped-at": "me\\@evil.example",
    "email-entity": "me&#64;evil.example me&#x40;e.example me&commat;e.example",
    "html-img": '<img src="https://evil.example/t.png">',
    "html-a": '<a href="https://evil.example">x</a>',
    "script": "<script>alert(1)</script>",
    "closing-markup": "</p></details></td><td>x",
    "html-comment": "<!-- x -->",
    "entities": "&lt;img src=x&gt; &amp;",
    "entity-bracket": "&#91;x&#93;(https://evil.example)",
    "pipes": "a | b || c \\| d",
    "backticks": "`</summary>` and ``x``",
    "code-span-around-markup": "`a` `</p></details>",
    "trailing-backslash": "ends in \\",
    "trailing-backslashes": "ends in \\\\\\",
    "backslash-before-line-break": "a\\\nb",
}
# What a reader sees, where Markdown itself makes something else of the text (emphasis,
# entities, backslash escapes: left alone); every other text shows exactly as sent.
SHOWN = {
    "www-after-emphasis": "www.evil.example",
    "email-entity": "me@evil.example me@e.example me@e.example",
    "entities": "<img src=x> &",
    "entity-bracket": "[x](https://evil.example)",
    "trailing-backslashes": "ends in \\\\",
}


FOLD = " (and a comment long enough to fold)"


@pytest.mark.parametrize("name", HOSTILE)
@pytest.mark.parametrize("where", ["title", "abstract", "comment", "folded-comment"])
def test_hostile_text_renders_as_text_in_a_readme_table(where, name):
    text, shown = HOSTILE[name], SHOWN.get(name, HOSTILE[name])
    fields = {
        "title": {"title": text},
        "abstract": {"abstract": text},
        "comment": {"comment": text},
        "folded-comment": {"comment": text + FOLD},
    }[where]
    papers = [paper("2503.00003"), paper("2503.00002", **fields), paper("2503.00001")]
    cells = check_rows(render(readme(*papers)), papers)[1]
    if where == "title":
        assert cells[0].text == shown
    elif where == "abstract":
        assert cells[2].text == "Show" + shown
    elif where == "comment" and len(text) <= 20:
        assert cells[3].text == shown  # inline
    else:
        assert cells[3].text.endswith("..." + shown + (FOLD if where == "folded-comment" else ""))


@pytest.mark.parametrize("slashes", [1, 2, 3, 4])
def test_backslashes_at_the_end_cannot_eat_the_link_or_the_closing_markup(slashes):
    end = "\\" * slashes
    papers = [
        paper("2503.00002", title=f"Title{end}", abstract=f"Abstract{end}", comment=f"C{end}"),
        paper("2503.00001", comment=f"A comment that folds{end}"),
        paper("2503.00003", comment=f"Abcd{end}and more than twenty"),  # the summary's end
    ]
    html = render(readme(*papers))
    rows = check_rows(html, papers)
    shown = "\\" * ((slashes + 1) // 2)  # an odd run gets one more, then pairs show as one
    assert rows[0][0].text == f"Title{shown}"
    assert rows[0][2].text == f"ShowAbstract{shown}"
    assert rows[0][3].text == f"C{shown}"
    assert rows[1][3].text == f"A com...A comment that folds{shown}"
    assert rows[2][3].text.startswith("Abcd...Abcd")  # its "..." follows one: `\\.` is "."
    assert "&lt;/" not in html and "</p>" not in "".join(c.text for r in rows for c in r)
    assert html.count("<details>") == html.count("</details>") == 5


def test_each_field_is_capped_with_an_ellipsis():
    huge = "x" * 2_000_000
    papers = [paper("2503.00002", title=huge, abstract=huge, comment=huge)]
    text = readme(*papers)
    assert len(text) < TITLE_MAX + ABSTRACT_MAX + 2 * COMMENT_MAX + 1_000
    cells = check_rows(render(text), papers)[0]
    assert cells[0].text == "x" * (TITLE_MAX - 1) + ELLIPSIS
    assert cells[2].text == "Show" + "x" * (ABSTRACT_MAX - 1) + ELLIPSIS
    assert cells[3].text == "xxxxx..." + "x" * (COMMENT_MAX - 1) + ELLIPSIS


def test_a_long_hostile_field_is_capped_before_it_is_escaped():
    text = "<@[|`" * 400_000  # 2 MB, every character one we escape
    papers = [paper("2503.00002", title=text, abstract=text, comment=text)]
    markdown = readme(*papers)
    assert len(markdown) < 20 * (TITLE_MAX + ABSTRACT_MAX + 2 * COMMENT_MAX)
    cells = check_rows(render(markdown), papers)[0]
    assert len(cells[0].text) == TITLE_MAX and cells[0].text.endswith(ELLIPSIS)
    assert len(cells[2].text) == len("Show") + ABSTRACT_MAX
    assert cells[3].text.endswith(text[: COMMENT_MAX - 1] + ELLIPSIS)


def test_real_text_at_the_caps_is_not_cut():
    p = paper(title="t" * TITLE_MAX, abstract="a" * ABSTRACT_MAX, comment="c" * COMMENT_MAX)
    assert ELLIPSIS not in row(p)


KEPT = [
    "https://github.com/owner/repo",
    "https://github.com/owner/repo/blob/main/README.md",
    "http://github.com/owner/repo",
    "https://gist.github.com/owner/1",
    "https://name.github.io/project/",
    "HTTPS://GITHUB.COM/owner/repo",
]
NOT_KEPT = [
    "https://github.com",  # no path: nothing to keep
    "https://github.com@evil.example/",
    "https://github.com:evil@evil.example/",
    "https://github.com.evil.example/x",
    "https://github.com:443/x",
    "https://evilgithub.com/x",
    "https://evil.example/github.com/x",
    "https://github.io/x",
    "https://a.b.github.io/x",
    "https://github.com\\@evil.example/",
    "ftp://github.com/x",
    "xhttps://github.com/x",
    "https://g\u0456thub.com/x",  # a Cyrillic i
]


@pytest.mark.parametrize("url", KEPT)
def test_a_code_link_to_github_stays_a_link_as_in_the_seed(url):
    p = paper(abstract=f"Code at {url} now.")
    assert escape_cell(p.abstract) == p.abstract
    (cells,) = Table(render(readme(p))).rows
    assert cells[2].links == [url]


@pytest.mark.parametrize("url", NOT_KEPT)
def test_anything_else_that_looks_like_github_is_not_linked(url):
    for where in ("title", "abstract", "comment"):
        p = paper(**{where: f"Code at {url} now."})
        check_rows(render(readme(p)), [p])


def seed_papers() -> list[dict]:
    return json.loads((FIXTURES / "seed_papers.json").read_text())


def test_the_seed_holds_nothing_we_escape_so_its_rows_stay_byte_for_byte():
    """The golden file (test_archive.py) proves the bytes; this says why: `escape_cell`
    leaves every field of every seed paper as it is."""
    fields = [p[k] or "" for p in seed_papers() for k in ("title", "abstract", "comment")]
    assert len(fields) == 120
    assert all(escape_cell(f) == f for f in fields)


def test_the_seeds_only_links_besides_titles_are_its_code_links_to_github():
    text = (FIXTURES / "seed-excerpt.md").read_text()
    table = Table(render(text))
    assert len(table.rows) == 40
    links = []
    for cells in table.rows:
        assert len(cells) == 4
        assert len(cells[0].links) == 1 and urlsplit(cells[0].links[0]).hostname == "arxiv.org"
        assert not any(set(c.tags) - ROW_TAGS for c in cells)
        links += [link for c in cells[1:] for link in c.links]
    assert "img" not in table.outside
    assert len(links) == 10
    assert all(urlsplit(u).hostname.endswith(KEPT_HOSTS) for u in links), links


def test_page_rows_reads_link_and_date_of_hostile_rows():
    titles = [
        "A title](http://evil.example)** | 2025-01-01 | <details>",
        "Ends in \\",
        "[x](https://evil.example/2501.00001v1)",
        "a@b.example www.evil.example https://evil.example/abs/2501.00001",
    ]
    papers = [paper(f"2503.0000{n}", title=t) for n, t in enumerate(titles, 1)]
    rows = page_rows("".join(row(p) + "\n" for p in papers))
    assert [(r.paper_id, r.date) for r in rows] == [(p.id, "2025-03-01") for p in papers]
