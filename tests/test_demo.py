"""`make demo` (tools/demo.py): a whole cycle offline, its files, and nothing left running.

The demo is the first thing a newcomer runs, so it is tested as they run it: a
subprocess, from this checkout, reading only what it leaves behind.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import tomllib
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import urlsplit

from arxiv_server import seed_entries
from conftest import REPO, SEED_KEYWORDS
from digest_reader import html_part, sections

DEMO = REPO / "tools" / "demo.py"


def run_demo(out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DEMO), "--out", str(out)], capture_output=True, text=True, timeout=120
    )


def archive_sections(text: str) -> dict[str, list[str]]:
    """{keyword: [paper ids, in row order]} from the archive README."""
    found: dict[str, list[str]] = {}
    for block in text.split("\n## ")[1:]:
        name, _, rows = block.partition("\n")
        found[name] = re.findall(r"^\| \*\*\[.*?\]\(http://arxiv\.org/abs/(.+?)v\d+\)", rows, re.M)
    return found


def test_demo_writes_the_archive_and_both_digests_and_leaves_nothing_running(tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    (out / ".daily-papers-demo").write_text("")  # a previous demo: rebuilt from scratch
    (out / "stale.txt").write_text("from the last run")

    result = run_demo(out)

    assert result.returncode == 0, result.stdout + result.stderr
    assert not (out / "stale.txt").exists()
    readme = out / "list" / "archive" / "README.md"
    assert f"{readme}   the archive" in result.stdout

    archive = archive_sections(readme.read_text())
    assert list(archive) == SEED_KEYWORDS
    counts = {name: len(ids) for name, ids in archive.items()}
    assert counts == {"Hallucination": 21, "MLLM": 20, "Reasoning": 5, "Reward Model": 0}
    for e in seed_entries():  # each recorded row is in the section it was recorded in
        assert e.id in archive[e.terms[0]]

    mail = out / "mail"
    assert sorted(p.name for p in mail.iterdir()) == [
        "ann@example.org.eml",
        "ann@example.org.html",
        "bob@example.org.eml",
        "bob@example.org.html",
    ]
    expected = {
        # A paper under both keywords comes once, in the first section.
        "ann@example.org": ("Ann", ["MLLM", "Reasoning"], archive["MLLM"] + archive["Reasoning"]),
        # Reward Model has no papers, so no section (the footer still names it); a welcome
        # issue has at most [digest] max_papers_per_keyword (20) papers per keyword.
        "bob@example.org": ("Bob", ["Hallucination"], archive["Hallucination"][:20]),
    }
    for address, (name, headings, papers) in expected.items():
        message = message_from_bytes((mail / f"{address}.eml").read_bytes(), policy=policy.default)
        assert message["To"] == f"{name} <{address}>"
        assert message["From"] == "Daily Papers demo <papers@example.org>"
        assert message["Subject"].startswith("[Daily Papers] Welcome: ")
        found = sections(message)
        assert list(found) == headings
        ids = [i for section in found.values() for i in section]
        assert sorted(ids) == sorted(set(papers))
        page = (mail / f"{address}.html").read_text()
        assert page == html_part(message)
        assert f"Hello {name}," in page
        assert f"{mail / address}.html" in result.stdout

    settings = tomllib.loads((out / "list" / "settings.toml").read_text())
    arxiv_port = urlsplit(settings["arxiv"]["api_url"]).port
    for port in (arxiv_port, settings["smtp"]["port"]):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still listening"


def test_demo_refuses_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")

    result = run_demo(tmp_path)

    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "was not made by the demo" in result.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
