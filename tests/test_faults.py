"""Faults from outside: a bad day at arXiv, at the mail server or on the disk changes
nothing but the timing."""

from __future__ import annotations

import json
import logging
import resource
import shutil
import signal
import subprocess
import time
from datetime import date
from urllib.parse import urlsplit

import pytest
from arxiv_server import entry, render_feed
from conftest import cli_command, cli_env, run_cli, subscribe
from digest_reader import paper_ids

from newsletter.cycle import run_cycle
from newsletter.store import Store

DAY = date(2025, 3, 7)


def cycle(settings):
    with Store(settings.store.path) as store:
        return run_cycle(settings, store, today=DAY)


def section(text: str, keyword: str) -> str:
    return text.split(f"## {keyword}\n")[1].split("\n## ")[0]


# -- arXiv ---------------------------------------------------------------------------

ARXIV_FAULTS = {
    "http-503": (dict(kind="status", status=503), "HTTP 503"),
    "http-429-retry-after": (dict(kind="status", status=429, retry_after="0"), "HTTP 429"),
    "http-429-no-retry-after": (dict(kind="status", status=429), "HTTP 429"),
    "stall-past-timeout": (dict(kind="stall", seconds=1.5), "no reply within 0.5 s"),
    "empty-page-nonzero-total": (dict(kind="empty", total=40), "empty page although 40 results"),
    "truncated-xml": (dict(kind="truncated"), "malformed XML"),
    "malformed-xml": (dict(kind="malformed"), "malformed XML"),
    "connection-dropped": (
        dict(kind="drop"),
        "connection to 127.0.0.1 failed: Remote end closed connection without response",
    ),
}


@pytest.mark.parametrize("fault", list(ARXIV_FAULTS))
def test_arxiv_fault_keeps_the_keyword_and_the_next_cycle_recovers(
    make_settings, arxiv_server, smtp_server, caplog, fault
):
    options, message = ARXIV_FAULTS[fault]
    settings = make_settings(arxiv={"timeout_seconds": 0.5, "retries": 1})
    subscribe(settings, "hal@example.org", "Hallucination")
    subscribe(settings, "mel@example.org", "MLLM")
    arxiv_server.add(entry("2502.00001", "Hallucination old"), entry("2502.00011", "MLLM old"))
    cycle(settings)
    before = settings.archive.path.read_text()
    smtp_server.messages.clear()

    arxiv_server.add(
        entry("2503.00001", "Hallucination new", day="2025-03-03"),
        entry("2503.00011", "MLLM new", day="2025-03-03"),
    )
    arxiv_server.fail(phrase="Hallucination", times=None, **options)
    with caplog.at_level(logging.WARNING):
        report = cycle(settings)
    hallucination, mllm = report.keywords
    assert message in hallucination.error
    assert any("Hallucination failed" in r.message and message in r.message for r in caplog.records)
    after = settings.archive.path.read_text()
    assert section(after, "Hallucination") == section(before, "Hallucination")
    assert mllm.error is None and mllm.new == 1
    assert [m.to for m in smtp_server.messages] == ["mel@example.org"], "the rest of the cycle ran"

    arxiv_server.faults.clear()
    smtp_server.messages.clear()
    recovered = cycle(settings)
    assert recovered.ok and recovered.keywords[0].new == 1
    assert "Hallucination new" in section(settings.archive.path.read_text(), "Hallucination")
    assert [paper_ids(m.message) for m in smtp_server.messages] == [["2503.00001"]]


def test_arxiv_connection_refused_keeps_everything(make_settings, arxiv_server):
    settings = make_settings(keywords=["MLLM", "Reasoning"])
    arxiv_server.add(entry("2502.00011", "MLLM old"))
    cycle(settings)
    before = settings.archive.path.read_bytes()
    port = urlsplit(arxiv_server.url).port
    arxiv_server.close()
    report = cycle(settings)
    mllm, reasoning = report.keywords
    assert mllm.error == f"127.0.0.1:{port} refused the connection: is [arxiv] api_url right?"
    assert (reasoning.tried, reasoning.error) == (False, f"arXiv cannot be reached ({mllm.error})")
    assert report.summary().startswith("cycle 2: keywords 0 fetched, 1 failed, 1 not tried;")
    assert settings.archive.path.read_bytes() == before


def test_an_unknown_arxiv_host_is_named_with_its_cause_and_not_retried(make_settings):
    settings = make_settings(
        keywords=["MLLM", "Reasoning"],
        arxiv={"api_url": "http://arxiv.invalid/api/query", "retries": 3, "delay_seconds": 1},
    )
    started = time.monotonic()
    report = cycle(settings)
    assert time.monotonic() - started < 5, "no retries: a name that does not resolve stays so"
    mllm, reasoning = report.keywords
    assert mllm.error.startswith("cannot resolve arxiv.invalid (")
    assert mllm.error.endswith("): check the network, or [arxiv] api_url")
    assert not reasoning.tried
    result = run_cli("--settings", str(settings.file), "run", "--once")
    assert result.returncode == 1
    assert "MLLM: FAILED: cannot resolve arxiv.invalid (" in result.stdout
    assert "Reasoning: NOT TRIED: arXiv cannot be reached (cannot resolve" in result.stdout


def test_entry_missing_fields_is_skipped_and_named_the_rest_kept(
    make_settings, arxiv_server, caplog
):
    settings = make_settings(keywords=["MLLM"])
    arxiv_server.add(
        entry("2503.00001", "MLLM good one"),
        entry("2503.00002", "MLLM without a date", omit=("published",)),
        entry("2503.00003", "MLLM without an id", omit=("id",)),
    )
    with caplog.at_level(logging.WARNING):
        report = cycle(settings)
    assert report.ok and report.keywords[0].new == 1
    assert any("skipped 2 of 3 entries that could not be read" in r.message for r in caplog.records)


def test_an_entry_the_parser_chokes_on_costs_only_itself(
    make_settings, arxiv_server, smtp_server, caplog
):
    """A date like 2025-13-45 made the arxiv library's parser raise for the whole page:
    the cycle died, and every keyword lost its cycle, every cycle, while arXiv listed it."""
    settings = make_settings(keywords=["Hallucination", "MLLM"])
    subscribe(settings, "ann@example.org", "Hallucination", "MLLM")
    good = entry("2503.00001", "MLLM good one")
    bad = entry("2503.00002", "MLLM with an impossible date")
    arxiv_server.add(entry("2503.00011", "Hallucination one"), good, bad)
    # The second entry's first <published> is read; make it a date that cannot be.
    body = render_feed([good, bad], '"MLLM"', 0, 2).replace(
        b"2503.00002v1</id>", b"2503.00002v1</id><published>2025-13-45T99:00:00Z</published>"
    )
    arxiv_server.fail("raw", status=200, body=body, phrase="MLLM", times=None)
    with caplog.at_level(logging.WARNING):
        report = cycle(settings)
    assert report.ok, report.summary()
    assert [(k.name, k.new) for k in report.keywords] == [("Hallucination", 1), ("MLLM", 1)]
    (digest,) = smtp_server.messages
    assert sorted(paper_ids(digest.message)) == ["2503.00001", "2503.00011"]
    assert "2503.00001" in settings.archive.path.read_text()
    named = [r.message for r in caplog.records if "2503.00002" in r.message]
    assert named and "skipped" in named[0] and "month must be in 1..12" in named[0]


def test_a_reply_over_the_size_cap_fails_its_keyword_only(make_settings, arxiv_server):
    settings = make_settings(keywords=["Hallucination", "MLLM"], arxiv={"max_reply_bytes": 100_000})
    arxiv_server.add(entry("2503.00011", "Hallucination one"))
    arxiv_server.add(
        *(entry(f"2504.{n:05d}", f"MLLM {n}", abstract="MLLM " + "x" * 5000) for n in range(40))
    )
    report = cycle(settings)
    errors = {k.name: k.error for k in report.keywords}
    assert errors["Hallucination"] is None
    assert errors["MLLM"].startswith("reply larger than [arxiv] max_reply_bytes (100000 bytes)")
    with Store(settings.store.path, lock=False) as store:
        assert [p.paper.id for p in store.papers.stored()] == ["2503.00011"]


def test_an_unexpected_error_in_one_keyword_fails_that_keyword_only(
    make_settings, arxiv_server, monkeypatch
):
    from newsletter import cycle as cycle_module

    real = cycle_module.fetch_keyword

    def failing(client, keyword, *args):
        if keyword.name == "MLLM":
            raise RuntimeError("a bug in one keyword's fetch")
        return real(client, keyword, *args)

    monkeypatch.setattr(cycle_module, "fetch_keyword", failing)
    settings = make_settings(keywords=["Hallucination", "MLLM"])
    arxiv_server.add(entry("2503.00011", "Hallucination one"), entry("2503.00001", "MLLM one"))
    report = cycle(settings)
    errors = {k.name: k.error for k in report.keywords}
    assert errors == {
        "Hallucination": None,
        "MLLM": "unexpected error: RuntimeError: a bug in one keyword's fetch",
    }
    assert "Hallucination one" in settings.archive.path.read_text()


def test_duplicate_entries_across_pages_are_folded(make_settings, arxiv_server):
    settings = make_settings(keywords=["MLLM"], arxiv={"page_size": 2, "max_results": 6})
    arxiv_server.add(
        *(entry(f"2503.{n:05d}", f"MLLM {n}", day=f"2025-03-{n:02d}") for n in range(1, 7))
    )
    arxiv_server.fail("overlap", min_start=2, times=None)
    report = cycle(settings)
    assert report.ok
    with Store(settings.store.path, lock=False) as store:
        ids = [s.paper.id for s in store.papers.stored()]
    assert len(ids) == len(set(ids))
    assert settings.archive.path.read_text().count("**[MLLM ") == len(ids)


# -- SMTP -------------------------------------------------------------------------------


def smtp_story(make_settings, arxiv_server, smtp_server, **smtp):
    """Three subscribers, one cycle already delivered, new papers waiting."""
    settings = make_settings(keywords=["MLLM"], smtp={"max_connections": 1, **smtp})
    for name in ("ann", "ben", "cat"):
        subscribe(settings, f"{name}@example.org", "MLLM")
    arxiv_server.add(entry("2502.00001", "MLLM old"))
    assert cycle(settings).delivery.sent == 3
    smtp_server.messages.clear()
    arxiv_server.add(entry("2503.00001", "MLLM new", day="2025-03-03"))
    return settings


def later_everyone_gets_it_once(settings, arxiv_server, smtp_server):
    arxiv_server.add(entry("2503.00002", "MLLM newer", day="2025-03-04"))
    report = cycle(settings)
    assert report.delivery.pending == 0
    by_person = {}
    for message in smtp_server.messages:
        assert message.to not in by_person, f"{message.to} got two digests"
        by_person[message.to] = paper_ids(message.message)
    return by_person


def test_smtp_connection_refused_then_delivered_once(make_settings, arxiv_server, smtp_server):
    settings = smtp_story(make_settings, arxiv_server, smtp_server)
    smtp_server.stop()
    report = cycle(settings)
    assert (report.delivery.sent, report.delivery.pending) == (0, 3)
    assert report.delivery.error.startswith(
        f"cannot use the SMTP server 127.0.0.1:{smtp_server.port}"
    )
    assert not report.ok, "run --once exits 1: the mail server could not be used"
    assert "; FAILED: cannot use the SMTP server" in report.delivery.summary()
    smtp_server.start()
    got = later_everyone_gets_it_once(settings, arxiv_server, smtp_server)
    assert got == {f"{n}@example.org": ["2503.00002", "2503.00001"] for n in ("ann", "ben", "cat")}


def test_smtp_421_at_connect_then_delivered_once(make_settings, arxiv_server, smtp_server, caplog):
    settings = smtp_story(make_settings, arxiv_server, smtp_server)
    smtp_server.greet_421 = True
    with caplog.at_level(logging.WARNING):
        report = cycle(settings)
    assert report.delivery.pending == 3 and report.delivery.bounced == 0
    assert any("421" in r.message for r in caplog.records)
    smtp_server.greet_421 = False
    got = later_everyone_gets_it_once(settings, arxiv_server, smtp_server)
    assert len(got) == 3 and all(ids == ["2503.00002", "2503.00001"] for ids in got.values())


def test_smtp_451_for_one_recipient_is_retried_later_others_unaffected(
    make_settings, arxiv_server, smtp_server
):
    settings = smtp_story(make_settings, arxiv_server, smtp_server)
    smtp_server.refuse("ben@example.org", "451 4.7.1 Greylisted, try again later")
    report = cycle(settings)
    assert (report.delivery.sent, report.delivery.pending, report.delivery.bounced) == (2, 1, 0)
    assert sorted(m.to for m in smtp_server.messages) == ["ann@example.org", "cat@example.org"]
    smtp_server.refusals.clear()
    smtp_server.messages.clear()
    got = later_everyone_gets_it_once(settings, arxiv_server, smtp_server)
    assert got["ben@example.org"] == ["2503.00002", "2503.00001"], "the missed paper too"
    assert got["ann@example.org"] == ["2503.00002"]


def test_smtp_550_for_one_recipient_counts_a_bounce_others_unaffected(
    make_settings, arxiv_server, smtp_server
):
    settings = smtp_story(make_settings, arxiv_server, smtp_server)
    smtp_server.refuse("ben@example.org")
    report = cycle(settings)
    assert (report.delivery.sent, report.delivery.bounced) == (2, 1)
    with Store(settings.store.path, lock=False) as store:
        assert store.deliveries.get("ben@example.org").bounces == 1


def test_smtp_connection_dropped_in_data_is_retried_and_delivered_once(
    make_settings, arxiv_server, smtp_server
):
    settings = smtp_story(make_settings, arxiv_server, smtp_server)
    smtp_server.drop_in_data = 1
    report = cycle(settings)
    assert report.delivery.sent == 3 and report.delivery.pending == 0
    assert sorted(m.to for m in smtp_server.messages) == [
        "ann@example.org",
        "ben@example.org",
        "cat@example.org",
    ]


def test_smtp_slower_than_the_timeout_stays_pending_then_delivered_once(
    make_settings, arxiv_server, smtp_server
):
    settings = smtp_story(make_settings, arxiv_server, smtp_server, timeout_seconds=0.3, retries=0)
    smtp_server.delay = 0.6
    report = cycle(settings)
    assert report.delivery.sent == 0 and report.delivery.pending == 3
    smtp_server.delay = 0
    got = later_everyone_gets_it_once(settings, arxiv_server, smtp_server)
    assert len(got) == 3


# -- the disk ------------------------------------------------------------------------------


def run_limited(settings, *, file_size: int | None = None, wrap: list[str] | None = None):
    """`run --once` in a subprocess, optionally with a file size limit (a full disk)."""

    def limit() -> None:
        if file_size is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))

    command = cli_command("--settings", str(settings.file), "run", "--once")
    return subprocess.run(
        [*(wrap or []), *command],
        env=cli_env(),
        capture_output=True,
        text=True,
        preexec_fn=limit,
        timeout=60,
    )


def test_disk_full_gives_a_clear_error_and_keeps_store_and_archive(make_settings, arxiv_server):
    settings = make_settings(keywords=["MLLM"])
    arxiv_server.add(entry("2502.00001", "MLLM old"))
    assert run_cli("--settings", str(settings.file), "run", "--once").returncode == 0
    store_before = settings.store.path.read_bytes()
    archive_before = settings.archive.path.read_bytes()

    arxiv_server.add(*(entry(f"2503.{n:05d}", f"MLLM {n}", abstract="x" * 3000) for n in range(30)))
    result = run_limited(settings, file_size=len(store_before) + 4096)
    assert result.returncode == 1
    assert "cannot save the store: File too large; the previous file is intact" in result.stderr
    with Store(settings.store.path, lock=False) as store:  # loads: not truncated
        assert [s.paper.id for s in store.papers.stored()] == ["2502.00001"]
    assert settings.archive.path.read_bytes() == archive_before
    assert not list(settings.store.path.parent.glob(".*.tmp"))
    again = run_cli("--settings", str(settings.file), "run", "--once")
    assert again.returncode == 0, again.stderr
    with Store(settings.store.path, lock=False) as store:
        assert store.papers.count() == 31


@pytest.mark.skipif(
    shutil.which("unshare") is None, reason="needs unshare(1) for a read-only mount"
)
def test_read_only_store_directory_gives_a_clear_error_and_keeps_the_store(
    make_settings, arxiv_server
):
    settings = make_settings(keywords=["MLLM"])
    arxiv_server.add(entry("2502.00001", "MLLM old"))
    assert run_cli("--settings", str(settings.file), "run", "--once").returncode == 0
    before = settings.store.path.read_bytes()
    arxiv_server.add(entry("2503.00001", "MLLM new"))
    state = str(settings.store.path.parent)
    # A private mount namespace where the state directory is read-only for this process only
    # (chmod does not stop root; a read-only mount stops everyone).
    script = (
        f'mount --bind "{state}" "{state}" && mount -o remount,bind,ro "{state}" "{state}" '
        '&& exec "$@"'
    )
    result = run_limited(settings, wrap=["unshare", "-rm", "sh", "-c", script, "sh"])
    if "mount:" in result.stderr and "Read-only" not in result.stderr:
        pytest.skip(f"cannot make a read-only mount here: {result.stderr.strip()}")
    assert result.returncode == 1, result.stderr
    assert "Read-only file system" in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert settings.store.path.read_bytes() == before


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1) to mount a tmpfs")
def test_a_full_disk_is_one_line_and_the_store_stays_whole(make_settings, arxiv_server, tmp_path):
    """The state folder on a small tmpfs (in a private mount namespace) that fills up."""
    settings = make_settings(keywords=["MLLM"])
    arxiv_server.add(entry("2502.00001", "MLLM old"))
    assert run_cli("--settings", str(settings.file), "run", "--once").returncode == 0
    arxiv_server.add(*(entry(f"2503.{n:05d}", f"MLLM {n}", abstract="x" * 3000) for n in range(60)))
    state = settings.store.path.parent
    shutil.copytree(state, tmp_path / "state-before")
    status = cli_command("--settings", str(settings.file), "status")
    script = (
        f'mount -t tmpfs -o size=100k tmpfs "{state}" && cp -a "{tmp_path}/state-before/." '
        f'"{state}/" && "$@"; echo "exit $?" >&2; exec {" ".join(status)}'
    )
    result = run_limited(settings, wrap=["unshare", "-rm", "sh", "-c", script, "sh"])
    if "mount:" in result.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    cycle_output, _, after = result.stderr.partition("exit ")
    assert after.startswith("1\n"), result.stderr
    assert "Traceback" not in cycle_output
    (failure,) = [line for line in cycle_output.splitlines() if "No space left" in line]
    assert "newsletter.papers.json: cannot save the store: No space left on device" in failure
    assert "the previous file is intact" in failure
    assert "1 papers in full" in result.stdout, "the store still loads, as it was"


@pytest.mark.parametrize(
    "table, change, says",
    [
        ("deliveries", {"colour": "red"}, "has an unknown field 'colour'"),
        ("deliveries", {"since": None}, "lacks the field 'since'"),
        ("cycles", {"started": None}, "lacks the field 'started'"),
    ],
)
def test_a_store_record_from_another_release_is_one_line(
    make_settings, arxiv_server, smtp_server, table, change, says
):
    settings = make_settings(keywords=["MLLM"])
    subscribe(settings, "ann@example.org", "MLLM")
    arxiv_server.add(entry("2502.00001", "MLLM one"))
    assert run_cli("--settings", str(settings.file), "run", "--once").returncode == 0
    data = json.loads(settings.store.path.read_text())
    record = next(iter(data[table].values()))
    for field, value in change.items():
        if value is None:
            del record[field]
        else:
            record[field] = value
    settings.store.path.write_text(json.dumps(data))
    before = settings.store.path.read_bytes()
    for command in (["run", "--once"], ["status"]):
        result = run_cli("--settings", str(settings.file), *command)
        assert result.returncode == 1, result.stdout
        assert result.stderr.count("\n") == 1 and says in result.stderr, result.stderr
        assert f"newsletter.json: table '{table}': the record" in result.stderr
    assert settings.store.path.read_bytes() == before
