"""Properties that must hold for any text arXiv or an admin can send us (hypothesis)."""

from __future__ import annotations

import email
import email.policy
import quopri
import re
from datetime import date
from email import quoprimime
from urllib.parse import urlsplit

from hypothesis import given, settings
from hypothesis import strategies as st
from test_archive import gfm_cells, paper
from test_markdown_safety import KEPT_HOSTS, ROW_TAGS, Table, readme, render

from newsletter.archive.markdown import comment_cell, escape_cell, row
from newsletter.config import ConfigError, Keyword
from newsletter.config.sections import check_query
from newsletter.config.toml_table import TomlTable
from newsletter.fetch.keywords import build_query, phrase
from newsletter.papers import Paper, StoredPaper
from newsletter.sending.mime import MailTemplate, quoted_printable
from newsletter.sending.render import Personal, Rendered, Renderer
from newsletter.sending.select import Digest, Item, Section

# Text with everything that matters to a table cell and an HTML block, plus anything else.
CELL_TEXT = st.text(
    alphabet=st.sampled_from(list("ab |\\<>&$\n\r\t[]*_`()\"'")) | st.characters(),
    max_size=80,
)


def _unescaped_lt(text: str) -> bool:
    """A `<` that could open a tag: not part of our `<br>` or `<span>@</span>`, not escaped
    by an odd run of `\\`."""
    text = re.sub(r"<br>|<span>(@|&#0*64;|&#[xX]0*40;|&commat;)</span>", "", text)
    return any(len(m.group(1)) % 2 == 0 for m in re.finditer(r"(\\*)<", text))


@settings(max_examples=300, deadline=None)
@given(title=CELL_TEXT, abstract=CELL_TEXT, comment=CELL_TEXT)
def test_any_text_keeps_the_row_four_cells_on_one_line(title, abstract, comment):
    title = title.strip() or "t"  # a Paper always has a title (empty ones are refused)
    line = row(paper(title=title, abstract=abstract, comment=comment))
    assert "\n" not in line and "\r" not in line
    assert len(gfm_cells(line)) == 4


@settings(max_examples=300, deadline=None)
@given(text=CELL_TEXT)
def test_escaped_cell_opens_no_tag_and_alters_nothing_else(text):
    cell = escape_cell(text)
    assert not _unescaped_lt(cell)
    # Undo our escapes (on text without '&' and '\\', where every '&lt;' and '\\' is ours).
    if "&" not in text and "\\" not in text:
        undone = re.sub(r"<span>@</span>", "@", cell.replace("<br>", "\n"))
        undone = undone.replace("&lt;", "<").replace("\\", "")
        assert undone == re.sub(r"\r\n|\r", "\n", text)


# Paper text made of every kind of markup GitHub could make of it, in any order: links,
# images, references and footnotes, autolinks and bare URLs (and GitHub's, which stay
# links), e-mail addresses, tags and entities, backslashes, pipes, code spans, emphasis.
_PIECES = [
    *"[]()!<>\\|`*_~@:/. \n",
    "![", "](", "][", "[^", "\r\n", "\\\\", "<img src=x>", "<a href=x>", "</p>", "</details>",
    "&#64;", "&commat;", "&lt;", "&amp;", "&#91;", "://", "http", "https", "HTTPS", "ftp",
    "www.", "WWW.", "mailto:", "evil.example", "e.co", "github.com", "x.github.io", "a1",
]  # fmt: skip
FIELD = st.lists(st.sampled_from(_PIECES) | st.characters(codec="utf-8"), max_size=25).map("".join)
# The same without what Markdown itself makes something else of and we leave alone:
# backslash escapes, entities, emphasis (and NUL, which becomes U+FFFD).
_LEFT_ALONE = "\\&*_~\0"
PLAIN_FIELD = st.lists(
    st.sampled_from([p for p in _PIECES if not set(p) & set(_LEFT_ALONE)])
    | st.characters(codec="utf-8", exclude_characters=_LEFT_ALONE),
    max_size=25,
).map("".join)


@settings(max_examples=500, deadline=None)
@given(title=FIELD, abstract=FIELD, comment=FIELD)
def test_any_text_in_any_field_renders_one_link_the_titles_and_no_image(title, abstract, comment):
    papers = [
        paper("2503.00002", title=title.strip() or "t", abstract=abstract, comment=comment),
        paper("2503.00001"),  # the next row is intact too
    ]
    table = Table(render(readme(*papers)))
    assert len(table.rows) == 2
    assert "img" not in table.outside and "a" not in table.outside
    for cells, p in zip(table.rows, papers, strict=True):
        assert len(cells) == 4
        assert cells[0].links == [p.url] and urlsplit(p.url).hostname == "arxiv.org"
        assert cells[1].text == "2025-03-01"
        for cell in cells:
            assert set(cell.tags) <= ROW_TAGS, cell.tags  # no <img>, no tag from the text
            assert all(s == "@" for s in cell.spans)
        others = [link for c in cells[1:] for link in c.links]
        # Only a code link to GitHub, as the seed has, may be a second link.
        assert all(urlsplit(u).hostname.endswith(KEPT_HOSTS) for u in others), others
        if "github" not in (title + abstract + comment).lower():
            assert others == []


@settings(max_examples=500, deadline=None)
@given(title=PLAIN_FIELD, abstract=PLAIN_FIELD, comment=PLAIN_FIELD)
def test_escaped_text_shows_exactly_as_sent(title, abstract, comment):
    """Our escapes are invisible: a reader sees the text as arXiv sent it."""
    title = title.strip() or "t"
    (cells,) = Table(render(readme(paper(title=title, abstract=abstract, comment=comment)))).rows
    lines = re.compile(r"\r\n|\r")
    assert cells[0].text == lines.sub("\n", title)
    assert cells[2].text == "Show" + lines.sub("\n", abstract)
    if len(comment) <= 20:
        assert cells[3].text.strip() == lines.sub("\n", comment).strip()  # a cell is trimmed
    else:
        assert cells[3].text == lines.sub("\n", comment[:5]) + "..." + lines.sub("\n", comment)


@settings(max_examples=200, deadline=None)
@given(comment=CELL_TEXT)
def test_long_comments_fold_and_short_ones_stay_inline(comment):
    cell = comment_cell(comment)
    if not comment:
        assert cell == ""
    elif len(comment) <= 20:
        assert cell == escape_cell(comment)
    else:
        assert cell.startswith("<details><summary>") and cell.endswith("</p></details>")


NAMES = st.text(min_size=1, max_size=40).filter(lambda s: any(c.isalnum() for c in s))


def _table() -> TomlTable:
    return TomlTable("settings.toml", "[[keywords]] #1", {})


@settings(max_examples=300, deadline=None)
@given(name=NAMES, exclude=st.lists(NAMES, max_size=3))
def test_built_queries_are_always_valid(name, exclude):
    query = build_query(Keyword(name=name, exclude=tuple(exclude)))
    assert query.count('"') % 2 == 0
    assert check_query(_table(), "query", query) == query  # balanced quotes and parentheses
    quoted = re.findall(r'"([^"]*)"', query)
    assert len(quoted) == 2 * (1 + len(exclude))
    assert all(q == " ".join(q.split()) for q in quoted), "no stray whitespace inside phrases"


@given(text=st.text(max_size=40))
def test_a_phrase_never_contains_a_quote(text):
    quoted = phrase(text)
    assert quoted.startswith('"') and quoted.endswith('"')
    assert '"' not in quoted[1:-1]


@given(query=st.text(alphabet=st.sampled_from(list('ab :()"')), max_size=20))
def test_raw_query_check_accepts_exactly_balanced_queries(query):
    depth, balanced, quoted = 0, True, False
    for char in query:
        quoted ^= char == '"'
        if not quoted:
            depth += {"(": 1, ")": -1}.get(char, 0)
        balanced &= depth >= 0
    valid = balanced and depth == 0 and query.count('"') % 2 == 0
    try:
        check_query(_table(), "query", query)
    except ConfigError:
        assert not valid
    else:
        assert valid


# A person's greeting, address or link: plain ASCII of every length around the
# 75-column limit (the fast path), and lines with what quoted-printable must encode.
PERSONAL = st.text(alphabet=st.sampled_from(list("a.= \t-é\n")), max_size=90) | st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=70, max_size=80
)


@settings(max_examples=1000, deadline=None)
@given(value=PERSONAL | st.text(max_size=90))
def test_a_value_is_encoded_as_the_email_package_encodes_it_and_decodes_back(value):
    encoded = quoted_printable(value)
    if value:
        whole = quoprimime.body_encode(value.encode().decode("latin-1"), 75, eol="\r\n")
        assert encoded.decode("ascii") in (whole, whole + "=\r\n")
    decoded = quopri.decodestring(encoded.replace(b"\r\n", b"\n")).decode()
    assert decoded == re.sub(r"\r\n?", "\n", value)  # a body's line ends are CRLF
    assert all(len(line) <= 76 for line in encoded.split(b"\r\n"))


# What has looked like a reader's spot in a digest, or could: the stand-in names of
# the earlier design, jinja's own syntax, the shape of today's stand-ins (dp + hex),
# and what escaping touches.
_SPOT_LIKE = [
    "ZZpersonalGreetingZZ", "ZZpersonalEmailZZ", "ZZpersonalUnsubscribeZZ",
    "{{ email }}", "{{ unsubscribe_link }}", "{% if 1 %}", "dp", "0123456789abcdef", "0", "9",
    "ZZbodyTextZZ", "ZZbodyHtmlZZ", "https://", "/unsubscribe/", "&quot;", "&", "<", '"', "\n",
]  # fmt: skip
PAPER_TEXT = st.lists(
    st.sampled_from(_SPOT_LIKE) | st.characters(codec="utf-8", exclude_characters="\0"),
    max_size=20,
).map("".join)
READER = Personal(
    email="reader@example.org",
    name="Rea Der",
    unsubscribe_mailto="mailto:papers@example.org?subject=unsubscribe%20readerstoken",
    unsubscribe_url="https://papers.example.org/unsubscribe/readerstoken",
    message_id="<digest.1.readerssignature@example.org>",
)
_RENDERER = Renderer(None, "{count} new", "{count} welcome", max_html_bytes=500_000)


def _digest_of(*papers: Paper) -> Digest:
    items = tuple(Item(StoredPaper(p, ("MLLM",), 1), ()) for p in papers)
    return Digest((Section("MLLM", items),))


def _mail_parts(rendered: Rendered) -> tuple[str, str]:
    """The HTML and text a reader's client shows, from the wire form `MailTemplate` builds."""
    mail = MailTemplate(rendered, sender="P <p@example.org>", list_name="P", list_id="p.org")
    wire = mail.message(READER).removesuffix(b".\r\n").replace(b"\r\n..", b"\r\n.")
    message = email.message_from_bytes(wire, policy=email.policy.default)
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    return html.replace("\r\n", "\n"), text.replace("\r\n", "\n")


_PLAIN = _RENDERER.render(_digest_of(paper()), ("MLLM",), date(2025, 3, 7), READER)
SPOTS = {  # where the shipped templates put the reader's token and address: the footer
    part: (body.shared().count("readerstoken"), body.shared().count(READER.email))
    for part, body in (("html", _PLAIN.html), ("text", _PLAIN.text))
}


@settings(max_examples=40, deadline=None)
@given(title=PAPER_TEXT, abstract=PAPER_TEXT, comment=PAPER_TEXT, author=PAPER_TEXT)
def test_paper_text_never_puts_a_readers_address_or_token_anywhere_else(
    title, abstract, comment, author
):
    """A shared render filled in for a reader is exactly the render for that reader alone,
    whatever the papers say: their text is never read as a spot, so the address and the
    token appear where the template puts them and nowhere else."""
    old_style = "ZZpersonalUnsubscribeZZ/0000001"  # an old-style id built from a stand-in
    papers = (
        paper(title=title.strip() or "t", abstract=abstract, comment=comment, authors=(author,)),
        paper(old_style, url=f"http://arxiv.org/abs/{old_style}v1", abstract=abstract),
    )
    digest = _digest_of(*papers)
    shared = _RENDERER.render(digest, ("MLLM",), date(2025, 3, 7))
    alone = _RENDERER.render(digest, ("MLLM",), date(2025, 3, 7), READER)
    html, text = shared.personalise(READER)
    assert (html, text) == alone.personalise(READER)
    sent_html, sent_text = _mail_parts(shared)
    lines = re.compile(r"\r\n|\r")  # the wire form has CRLF line ends, as the email package
    assert (sent_html, sent_text) == (lines.sub("\n", html), lines.sub("\n", text))
    for part, shown in (("html", html), ("text", text)):
        assert (shown.count("readerstoken"), shown.count(READER.email)) == SPOTS[part], part
    assert f"https://arxiv.org/abs/{old_style}" in text, "the paper's own link, from its id"
