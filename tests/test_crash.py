"""Crash anywhere: SIGKILL a real cycle at named points, run again, lose nothing.

The process kills itself at a named crash point (NEWSLETTER_CRASH_AT, see
newsletter/crashpoints.py), so every case is deterministic. After the next
cycle, for every kill point: each subscriber has every paper due to them, at
most one message went out twice (the one in flight), the store loads, and the
archive is complete and well-formed. Weekly subscribers (Mondays) are among
them: their welcome issue goes out on Saturday 2025-03-01; the killed cycle runs
on the real clock, long after, so their weekly digest is due and sent in it as
the others are; the cycle after the kill runs on Monday 2025-03-03, when it is
still due if the kill came first, and not again if it went out.
"""

from __future__ import annotations

import re
import signal
import subprocess
from collections import Counter
from datetime import date

import pytest
from arxiv_server import entry
from conftest import cli_command, cli_env, run_cli
from digest_reader import paper_ids
from test_archive import gfm_cells

from newsletter.cadence import Cadence
from newsletter.cycle import run_cycle
from newsletter.store import Store
from newsletter.subscribers import save_subscriber

PEOPLE = {
    "hal@example.org": ("Hallucination",),
    "mel@example.org": ("MLLM",),
    "both@example.org": ("Hallucination", "MLLM"),
    "wes@example.org": ("Hallucination", "MLLM"),
    "wen@example.org": ("MLLM",),
}
WEEKLY = {"wes@example.org", "wen@example.org"}
FIRST = [
    entry("2502.00001", "Hallucination first A", day="2025-02-01"),
    entry("2502.00002", "Hallucination first B", day="2025-02-02"),
    entry("2502.00011", "MLLM first A", day="2025-02-01"),
    entry("2502.00012", "MLLM first B", day="2025-02-02"),
]
SECOND = [
    entry("2503.00001", "Hallucination second A | piped", day="2025-03-01"),
    entry("2503.00002", "Hallucination second B", day="2025-03-02"),
    entry(
        "2503.00011", "MLLM second A", day="2025-03-01", comment="12 pages, 5 figures, to appear"
    ),
    entry("2503.00012", "MLLM second B", day="2025-03-02"),
]

# (kill point, whether the killed cycle had already handed one message to the server
# without recording it: that message is the one allowed duplicate)
KILL_POINTS = [
    ("after-fetch", False),
    ("state-write-middle:1", False),  # the cycle's start record
    ("papers-write-middle:1", False),  # the diff
    ("state-write-middle:2", False),  # the keywords' counts in the cycle record
    ("after-diff", False),
    ("archive-write-middle", False),
    ("after-archive", False),
    ("before-record:1", True),  # the server accepted message 1, we had not recorded it
    ("after-send:1", False),
    ("before-record:5", True),  # the last message
    ("after-send:5", False),
    ("state-write-middle:3", False),  # folding the delivery journal into the state file
]


def due(email: str) -> set[str]:
    keywords = PEOPLE[email]
    return {e.id for e in SECOND if any(k in e.title for k in keywords)}


def archive_rows(text: str) -> dict[str, list[list[str]]]:
    sections: dict[str, list[list[str]]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("## "):
            current = line[3:]
            sections[current] = []
        elif current and line.startswith("| **["):
            sections[current].append(gfm_cells(line))
    return sections


@pytest.mark.parametrize("point, in_flight", KILL_POINTS, ids=[p for p, _ in KILL_POINTS])
def test_kill_anywhere_then_run_again_loses_nothing(
    make_settings, arxiv_server, smtp_server, point, in_flight
):
    settings = make_settings(smtp={"max_connections": 1})
    for email, keywords in PEOPLE.items():
        cadence = Cadence("weekly", "monday") if email in WEEKLY else None
        save_subscriber(
            settings.subscribers.dir, email, keywords, settings.keyword_names, cadence=cadence
        )
    arxiv_server.add(*FIRST)
    with Store(settings.store.path) as store:
        assert run_cycle(settings, store, today=date(2025, 3, 1)).delivery.sent == len(PEOPLE)
    smtp_server.messages.clear()

    arxiv_server.add(*SECOND)
    killed = run_cli(
        "--settings", str(settings.file), "run", "--once", env={"NEWSLETTER_CRASH_AT": point}
    )
    assert killed.returncode == -signal.SIGKILL, f"{point} was not reached: {killed.stderr}"

    with Store(settings.store.path) as store:  # loads; replays the delivery journal
        report = run_cycle(settings, store, today=date(2025, 3, 3))
        assert store.papers.count() == 8
    assert report.ok
    assert not list(settings.store.path.parent.glob(".*.tmp")), "temp files cleaned up"

    received: dict[str, set[str]] = {email: set() for email in PEOPLE}
    copies = Counter(m.to for m in smtp_server.messages)
    for message in smtp_server.messages:
        received[message.to] |= set(paper_ids(message.message))
    for email in PEOPLE:
        assert received[email] == due(email), f"{email} missed papers after {point}"
        assert copies[email] <= 2
    # Exactly: one message each, plus the one in flight when killed, if there was one.
    assert sum(copies.values()) == len(PEOPLE) + (1 if in_flight else 0), copies

    text = settings.archive.path.read_text()
    assert re.search(r"^Last update: \d{4}-\d\d-\d\d$", text, re.M)
    rows = archive_rows(text)
    assert list(rows) == ["Hallucination", "MLLM"]
    for keyword, section in rows.items():
        assert len(section) == 4, f"{keyword} rows after {point}"
        assert all(len(cells) == 4 for cells in section)
    assert "second A \\| piped" in text


def test_two_runs_at_once_one_proceeds_the_other_refuses(make_settings, arxiv_server):
    """Two `run --once` on one store at the same time: one runs, one exits 1; store intact."""
    settings = make_settings()
    arxiv_server.add(*FIRST)
    # Keep the first one busy while the second starts (a loaded machine starts Python slowly).
    arxiv_server.fail("stall", seconds=4.0)
    command = cli_command("--settings", str(settings.file), "run", "--once")
    env = cli_env()
    first = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    while not arxiv_server.requests:
        if first.poll() is not None:
            break
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)
    _, err = first.communicate(timeout=30)
    assert first.returncode == 0, err
    assert second.returncode == 1
    assert re.fullmatch(
        r".*newsletter\.json\.lock: another newsletter process is using this store "
        rf"\(pid {first.pid}\)\n",
        second.stderr,
    )
    with Store(settings.store.path) as store:
        assert store.papers.count() == 4
        assert len(store.cycles.all()) == 1
