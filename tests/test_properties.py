"""Properties that must hold for any text arXiv or an admin can send us (hypothesis)."""

from __future__ import annotations

import quopri
import re
from email import quoprimime

from hypothesis import given, settings
from hypothesis import strategies as st
from test_archive import gfm_cells, paper

from newsletter.archive.markdown import comment_cell, escape_cell, row
from newsletter.config import ConfigError, Keyword
from newsletter.config.sections import check_query
from newsletter.config.toml_table import TomlTable
from newsletter.fetch.keywords import build_query, phrase
from newsletter.sending.mime import quoted_printable

# Text with everything that matters to a table cell and an HTML block, plus anything else.
CELL_TEXT = st.text(
    alphabet=st.sampled_from(list("ab |\\<>&$\n\r\t[]*_`()\"'")) | st.characters(),
    max_size=80,
)


def _unescaped_lt(text: str) -> bool:
    """A `<` that could open a tag: not part of our `<br>`, not escaped by an odd run of `\\`."""
    text = text.replace("<br>", "")
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
    # Undo exactly our three escapes (on text without '&', where '&lt;' is unambiguous).
    if "&" not in text and "\\" not in text:
        undone = cell.replace("<br>", "\n").replace("&lt;", "<").replace("\\|", "|")
        assert undone == re.sub(r"\r\n|\r", "\n", text)


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
