"""The command line: what an admin sees and the exit codes scripts rely on."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from arxiv_server import entry
from conftest import cli_command, cli_env, run_cli, subscribe

from newsletter.logs import setup_logging
from newsletter.store import Delivery, Store


def test_run_once_prints_each_keyword_and_exits_0(make_settings, arxiv_server):
    settings = make_settings()
    arxiv_server.add(entry("2503.00001", "Hallucination one"), entry("2503.00002", "MLLM two"))
    result = run_cli("--settings", str(settings.file), "run", "--once")
    assert result.returncode == 0, result.stderr
    assert "Hallucination: fetched 1, new 1, kept in archive 1" in result.stdout
    assert "MLLM: fetched 1, new 1, kept in archive 1" in result.stdout
    assert settings.archive.path.exists()


def test_run_once_exits_1_with_a_line_per_failed_keyword(make_settings, arxiv_server):
    settings = make_settings()
    arxiv_server.add(entry("2503.00001", "Hallucination one"))
    arxiv_server.fail("status", status=503, phrase="MLLM", times=None)
    result = run_cli("--settings", str(settings.file), "run", "--once")
    assert result.returncode == 1
    assert "MLLM: FAILED: HTTP 503 (gave up after 2 tries)" in result.stdout
    assert "Hallucination: fetched 1, new 1" in result.stdout


def test_archive_command_rebuilds_without_fetching(make_settings, arxiv_server):
    settings = make_settings()
    arxiv_server.add(entry("2503.00001", "Hallucination one"))
    run_cli("--settings", str(settings.file), "run", "--once")
    settings.archive.path.unlink()
    requests = len(arxiv_server.requests)
    result = run_cli("--settings", str(settings.file), "archive")
    assert result.returncode == 0, result.stderr
    assert "written (Hallucination 1, MLLM 0)" in result.stdout
    assert "Hallucination one" in settings.archive.path.read_text()
    assert len(arxiv_server.requests) == requests


def test_an_archive_folder_is_made_when_the_folder_above_it_exists(make_settings, tmp_path):
    settings = make_settings(archive={"path": str(tmp_path / "site" / "README.md")})
    result = run_cli("--settings", str(settings.file), "run", "--once")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "README.md").exists()


@pytest.mark.parametrize(
    "changes, says",
    [
        ({"archive": {"path": "nope/deeper/R.md"}}, "[archive] path {root}/nope/deeper/R.md: "),
        ({"digest": {"templates": "mine"}}, "[digest] templates {root}/mine: no such folder"),
        ({"inbox": {"maildir": "Maildir"}}, "[inbox] maildir {root}/Maildir: not a Maildir"),
        ({"archive": {"git": True}}, "[archive] git: {root}/archive: not inside a git repository"),
    ],
    ids=["archive", "templates", "maildir", "git"],
)
def test_every_path_is_checked_before_any_fetch(
    make_settings, arxiv_server, tmp_path, changes, says
):
    settings = make_settings(**changes)
    result = run_cli("--settings", str(settings.file), "run", "--once")
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert says.format(root=tmp_path) in result.stderr
    assert arxiv_server.requests == [], "nothing fetched"


def test_help_explains_commands_and_settings():
    result = run_cli("--help")
    assert result.returncode == 0
    for word in ("run", "archive", "--settings", "NEWSLETTER_SETTINGS", "Exit codes"):
        assert word in result.stdout


def test_unknown_command_is_a_usage_error():
    result = run_cli("frobnicate")
    assert result.returncode == 2


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "newsletter"
    assert script.exists()
    result = subprocess.run([script, "--version"], capture_output=True, text=True)
    assert result.stdout.startswith("newsletter ")


def test_settings_may_follow_the_subcommand(make_settings, tmp_path):
    settings = make_settings()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        cli_command("status", "--settings", str(settings.file), "--log-level", "warning"),
        cwd=elsewhere,
        env=cli_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert f"store: {settings.store.path}" in result.stdout
    # After the subcommand wins over before it.
    both = run_cli(
        "--settings", str(tmp_path / "nope.toml"), "status", "--settings", str(settings.file)
    )
    assert both.returncode == 0, both.stderr


def test_a_reader_that_leaves_early_gets_no_error_and_no_traceback(make_settings):
    settings = make_settings()
    settings.subscribers.dir.mkdir()
    for n in range(3000):
        (settings.subscribers.dir / f"p{n}.toml").write_text(
            f'email = "p{n}@example.org"\nkeywords = ["MLLM"]\n'
        )
    process = subprocess.Popen(
        cli_command("--settings", str(settings.file), "subscribers"),
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout.read(10)  # then leave, as `| head -c 10` does
    process.stdout.close()
    assert process.wait(30) == 1
    assert process.stderr.read() == b""


def test_status_and_the_daemon_warn_when_unsubscribing_needs_a_person(make_settings):
    settings = make_settings()
    status = run_cli("--settings", str(settings.file), "status")
    assert status.returncode == 0
    lines = status.stdout.splitlines()
    assert lines[0].startswith(f"warning: [subscribers] dir {settings.subscribers.dir} does not")
    assert lines[1].startswith("warning: neither [inbox] nor [web] is set: nothing reads")
    listing = run_cli("--settings", str(settings.file), "subscribers")
    assert listing.returncode == 2 and "does not exist" in listing.stderr
    once = run_cli("--settings", str(settings.file), "run", "--once")
    assert "WARNING newsletter.daemon: neither [inbox] nor [web] is set" in once.stderr
    web = make_settings(web={"listen": "127.0.0.1:8025", "public_url": "https://p.example.org"})
    settings.subscribers.dir.mkdir()
    assert "warning:" not in run_cli("--settings", str(web.file), "status").stdout


def test_control_characters_from_outside_are_shown_escaped(make_settings, tmp_path):
    """A name that reorders the line, a server's error with a terminal escape (set the
    title, ring, clear the screen) and a line break: printed as escapes, never obeyed."""
    settings = make_settings()
    ann = subscribe(settings, "ann@example.org", "MLLM", name="Ann \u202eevil")
    with Store(settings.store.path) as store, store.batch():
        store.deliveries.records[ann.key] = Delivery(
            ann.key, ann.created, last_cycle=1, bounces=3, state="bouncing",
            last_error="550 gone\x1b]0;pwned\x07\x1b[2J\r\nINFO forged line",
        )  # fmt: skip
        store.deliveries._put([ann.key])
    for command in ("subscribers", "status"):
        result = run_cli("--settings", str(settings.file), command)
        assert result.returncode == 0, result.stderr
        assert not any(c in result.stdout for c in "\x1b\x07\r\u202e"), command
        assert "550 gone\\x1b]0;pwned\\x07\\x1b[2J\\x0d\\x0aINFO forged line" in result.stdout
        if command == "subscribers":
            assert "Ann \\u202eevil" in result.stdout

    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("info", stream=stream)
        logging.getLogger("newsletter.test").info("from %s", "x\x1b[2J\nINFO forged")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    assert stream.getvalue().endswith("newsletter.test: from x\\x1b[2J\\x0aINFO forged\n")
