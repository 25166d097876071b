"""Bad input: wrong settings, broken subscriber files, hostile paper text.

Each is refused or handled with one clear line, and nothing else is affected.
"""

from __future__ import annotations

import re
import tomllib
from datetime import date
from typing import Any

import pytest
import tomli_w
from arxiv_server import entry
from conftest import REPO, run_cli, subscribe
from digest_reader import html_part, paper_ids, text_part
from test_archive import gfm_cells

from newsletter.config import ConfigError, load_settings
from newsletter.cycle import run_cycle
from newsletter.store import Store

SHIPPED = tomllib.loads((REPO / "settings.toml").read_text())


def _wrong(value: Any) -> Any:
    """A value of another type than the shipped one."""
    if isinstance(value, bool):
        return "yes"
    if isinstance(value, int | float):
        return "many"
    if isinstance(value, str):
        return 5
    return "not a list"


SHIPPED_KEYS = [
    (section, key) for section, table in SHIPPED.items() if isinstance(table, dict) for key in table
] + [("keywords", "name")]


@pytest.mark.parametrize("section, key", SHIPPED_KEYS, ids=[f"{s}.{k}" for s, k in SHIPPED_KEYS])
def test_every_shipped_key_with_a_wrong_type_is_refused_naming_it(tmp_path, section, key):
    data = tomllib.loads((REPO / "settings.toml").read_text())
    if section == "keywords":
        data["keywords"][0]["name"] = 5
        where = "[[keywords]] #1 name"
    else:
        data[section][key] = _wrong(data[section][key])
        where = f"[{section}] {key}"
    path = tmp_path / "settings.toml"
    path.write_text(_dump(data))
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(caught.value).startswith(f"{path}: {where} must be ")
    assert "\n" not in str(caught.value)


def _dump(data: dict[str, Any]) -> str:
    return tomli_w.dumps(data)


# -- subscriber files -------------------------------------------------------------------

BAD_FILES = {
    "broken.toml": ('email = "x@example.org"\nkeywords = [', "not valid TOML"),
    "no-email.toml": ('keywords = ["MLLM"]\n', "email must be a string"),
    "bad-address.toml": (
        'email = "x@example..org"\nkeywords = ["MLLM"]\n',
        "has an invalid domain: it has an empty label",
    ),
    "unknown.toml": (
        'email = "u@example.org"\nkeywords = ["Quantum"]\n',
        "unknown keyword 'Quantum'",
    ),
    "dupe.toml": ('email = "OK@Example.org"\nkeywords = ["MLLM"]\n', "is also in"),
    "crlf-name.toml": (
        'email = "n@example.org"\nname = "Eve\\r\\nBcc: all@example.org"\nkeywords = ["MLLM"]\n',
        "the name must not contain line breaks",
    ),
    "huge.toml": (
        'email = "h@example.org"\nkeywords = ["MLLM"]\n#' + "x" * 10_000_000 + "\n",
        "a subscriber file is at most 64 KiB",
    ),
}


def test_bad_subscriber_files_are_reported_skipped_and_others_served(
    make_settings, arxiv_server, smtp_server
):
    settings = make_settings(keywords=["MLLM"])
    subscribe(settings, "ok@example.org", "MLLM")
    for name, (text, _) in BAD_FILES.items():
        (settings.subscribers.dir / name).write_text(text)
    arxiv_server.add(entry("2502.00001", "MLLM one"))
    result = run_cli("--settings", str(settings.file), "run", "--once")
    assert result.returncode == 0, result.stderr
    assert [m.to.lower() for m in smtp_server.messages] == ["ok@example.org"]  # one digest
    assert "skipped 7" in result.stdout
    listing = run_cli("--settings", str(settings.file), "subscribers")
    for name, (_, reason) in BAD_FILES.items():
        line = next(x for x in listing.stderr.splitlines() if name in x)
        assert reason in line, line
    assert "1 subscribers, 7 files skipped" in listing.stdout


# -- hostile paper content --------------------------------------------------------------

HOSTILE = [
    entry("2503.00001", "MLLM with | pipes | in the title", abstract="a | b \\| c || d"),
    entry(
        "2503.00002",
        "MLLM <script>alert('x')</script>",
        abstract="</p></details><script>x</script>",
    ),
    entry("2503.00003", "MLLM &amp; entities &lt;b&gt;", abstract="R&amp;D &amp; more"),
    entry("2503.00004", "MLLM with unbalanced $x_1 math", abstract="costs $5 and $\\alpha"),
    entry("2503.00005", "MLLM 🤖 emoji and עברית RTL", abstract="مرحبا 🤖 mixed ‮reversed‬ text"),
    entry("2503.00006", "MLLM long abstract", abstract="word " * 2000),
    entry("2503.00007", "MLLM empty comment", comment=""),
    entry("2503.00008", "MLLM spaces-only comment", comment="     "),
]


def test_hostile_paper_text_keeps_the_archive_table_intact_and_the_mail_safe(
    make_settings, arxiv_server, smtp_server
):
    settings = make_settings(keywords=["MLLM"])
    subscribe(settings, "ann@example.org", "MLLM")
    arxiv_server.add(*HOSTILE)
    with Store(settings.store.path) as store:
        report = run_cycle(settings, store, today=date(2025, 3, 7))
    assert report.ok and report.keywords[0].new == len(HOSTILE)

    text = settings.archive.path.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| **[")]
    assert len(rows) == len(HOSTILE)
    assert all(len(gfm_cells(row)) == 4 for row in rows)
    assert "<script>" not in text
    assert "MLLM with \\| pipes \\| in the title" in text
    assert "R&amp;D &amp; more" in text  # an entity arXiv sent stays as sent
    assert "| <details><summary>Show</summary><p>" + "word " * 1999 + "word</p></details> |" in text
    for title in ("empty comment", "spaces-only comment"):
        row = next(r for r in rows if title in r)
        assert row.endswith("</p></details> |  |")

    message = smtp_server.messages[0].message
    html, plain = html_part(message), text_part(message)
    assert sorted(paper_ids(message)) == sorted(e.id for e in HOSTILE)
    assert "<script>" not in html and "</p></details><script>" not in html
    assert "MLLM &lt;script&gt;" in html
    assert "MLLM <script>alert('x')</script>" in plain  # readable as plain text
    assert "🤖" in plain and "עברית" in plain
    assert "R&amp;D &amp; more" in plain
    assert "MLLM &amp; entities &lt;b&gt;" in plain  # arXiv's text, not decoded or escaped
    assert "MLLM &amp;amp; entities &amp;lt;b&amp;gt;" in html  # shown exactly as sent
    assert "&#" not in plain
    assert not re.search(r"Comment: *\n", plain), "no empty comment line"
