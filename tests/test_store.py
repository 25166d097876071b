"""The store: atomic writes that survive SIGKILL, a broken file never reset, one instance only."""

from __future__ import annotations

import json
import os
import signal

import pytest
from arxiv_server import entry
from conftest import run_cli

from newsletter.files import AlreadyRunning
from newsletter.store import Store, StoreError


def test_kill_during_store_write_leaves_a_loadable_store(make_settings, arxiv_server):
    settings = make_settings()
    arxiv_server.add(entry("2503.00001", "Hallucination one"))
    assert run_cli("--settings", str(settings.file), "run", "--once").returncode == 0
    papers_file = settings.store.path.with_name("newsletter.papers.json")
    before = papers_file.read_bytes()

    arxiv_server.add(*(entry(f"2503.{n:05d}", f"MLLM {n}") for n in range(2, 60)))
    killed = run_cli(
        "--settings",
        str(settings.file),
        "run",
        "--once",
        env={"NEWSLETTER_CRASH_AT": "papers-write-middle:1"},  # the diff
    )
    assert killed.returncode == -signal.SIGKILL
    assert papers_file.read_bytes() == before, "the previous working set, whole"
    with Store(settings.store.path) as store:
        assert store.papers.count() == 1
        assert not list(settings.store.path.parent.glob(".*.tmp")), "stale temp file removed"

    again = run_cli("--settings", str(settings.file), "run", "--once")
    assert again.returncode == 0, again.stderr
    with Store(settings.store.path) as store:
        assert store.papers.count() == 59


def test_unparsable_store_stops_with_its_name_and_is_not_touched(make_settings):
    settings = make_settings()
    settings.store.path.parent.mkdir(parents=True)
    settings.store.path.write_text('{"papers": {"1": ')
    with pytest.raises(StoreError, match=r"newsletter\.json: the store is not valid JSON"):
        Store(settings.store.path)
    result = run_cli("--settings", str(settings.file), "run", "--once")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "not valid JSON" in result.stderr
    assert settings.store.path.read_text() == '{"papers": {"1": '


def test_empty_store_file_is_an_error_not_a_reset(make_settings):
    settings = make_settings()
    settings.store.path.parent.mkdir(parents=True)
    settings.store.path.write_text("")
    with pytest.raises(StoreError, match="empty"):
        Store(settings.store.path)


def test_second_instance_is_refused_with_the_owner_pid(tmp_path):
    path = tmp_path / "state.json"
    with Store(path), pytest.raises(AlreadyRunning, match=r"pid \d+"):
        Store(path)
    with Store(path):
        pass  # released on close


def test_readers_do_not_need_the_lock(tmp_path):
    path = tmp_path / "state.json"
    with Store(path) as writer, Store(path, lock=False) as reader:
        writer.cycles.begin()
        assert Store(path, lock=False).cycles.last_number() == 1
        assert reader.cycles.last_number() == 0, "a reader sees the file as it was at open"


def test_batch_writes_once(tmp_path):
    with Store(tmp_path / "s.json") as store:
        with store.batch():
            for _ in range(5):
                store.cycles.begin()
            assert store.writes == 0
        assert store.writes == 1
        assert json.loads((tmp_path / "s.json").read_text())["cycles"]


def test_each_delivery_is_journaled_at_once_and_the_store_rewritten_per_batch(
    tmp_path, monkeypatch
):
    monkeypatch.setattr("newsletter.store.deliveries.FLUSH_EVERY", 3)
    path = tmp_path / "s.json"
    with Store(path) as store:
        for n in range(7):
            store.deliveries.record_sent(f"p{n}@example.org", "2025-01-01T00:00:00+00:00", 1)
        assert store.writes == 2, "after the 3rd and the 6th, not after each"
        assert store.journal.lines == 1
    # The process ends without its final flush (a kill): the journal still has p6.
    with Store(path) as again:
        assert {d.key for d in again.deliveries.all().values()} == {
            f"p{n}@example.org" for n in range(7)
        }
        assert again.journal.lines == 0 and again.writes == 1, "replayed and folded at open"


def test_journal_lines_are_fsynced_in_groups_or_each_with_zero(tmp_path, monkeypatch):
    synced: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (synced.append(fd), real(fd)))
    at = "2025-01-01T00:00:00+00:00"
    with Store(tmp_path / "each" / "s.json", journal_sync_ms=0) as store:
        for n in range(5):
            store.deliveries.record_sent(f"p{n}@example.org", at, 1)
        assert store.journal.syncs == 5, "a power loss can cost no accepted message"
    with Store(tmp_path / "grouped" / "s.json", journal_sync_ms=60_000) as store:
        for n in range(5):
            store.deliveries.record_sent(f"p{n}@example.org", at, 1)
        assert store.journal.syncs == 0, "all five within one group"
    # Closed without the state write that would take them in: the group is synced.
    assert store.journal.syncs == 1
    assert len(synced) == 6
