"""Subscribing and unsubscribing from the command line, and the files it writes."""

from __future__ import annotations

import os
import signal
import subprocess
import tomllib

from arxiv_server import entry
from conftest import cli_command, cli_env, run_cli, subscribe

from newsletter.store import Store
from newsletter.subscribers import file_name, load_subscribers


def cli(settings, *args, **kwargs):
    return run_cli("--settings", str(settings.file), *args, **kwargs)


def test_subscribe_writes_a_reviewable_file(make_settings):
    settings = make_settings()
    result = cli(
        settings,
        "subscribe",
        "Ann@Example.ORG",
        "--keyword",
        "mllm",
        "--keyword",
        "Hallucination",
        "--name",
        "Ann",
    )
    assert result.returncode == 0, result.stderr
    assert "Ann@example.org: subscribed to Hallucination, MLLM" in result.stdout
    path = settings.subscribers.dir / "ann@example.org.toml"
    data = tomllib.loads(path.read_text())
    assert data["email"] == "Ann@example.org"
    assert data["keywords"] == ["Hallucination", "MLLM"]  # settings spelling and order
    assert data["name"] == "Ann" and data["source"] == "cli" and data["created"]
    assert path.read_text().startswith("# A Daily Papers subscription.")


def test_subscribe_again_updates_keywords_and_keeps_history(make_settings):
    settings = make_settings()
    cli(settings, "subscribe", "ann@example.org", "--keyword", "MLLM", "--name", "Ann")
    before = tomllib.loads((settings.subscribers.dir / "ann@example.org.toml").read_text())
    result = cli(settings, "subscribe", "ANN@example.org", "--keyword", "Hallucination")
    assert "updated to Hallucination" in result.stdout
    files = list(settings.subscribers.dir.glob("*.toml"))
    assert len(files) == 1
    after = tomllib.loads(files[0].read_text())
    assert after["keywords"] == ["Hallucination"]
    assert after["created"] == before["created"] and after["name"] == "Ann"


def test_unknown_keyword_is_refused_with_the_valid_names(make_settings):
    settings = make_settings()
    result = cli(settings, "subscribe", "ann@example.org", "--keyword", "Quantum")
    assert result.returncode == 2
    assert result.stderr == (
        "ann@example.org: unknown keyword 'Quantum'; valid keywords: Hallucination, MLLM\n"
    )
    assert not settings.subscribers.dir.exists() or not list(settings.subscribers.dir.iterdir())


def test_bad_addresses_are_refused(make_settings):
    settings = make_settings()
    for bad, reason in [
        ("ann@example.org\r\nBcc: all@example.org", "must not contain line breaks"),
        ("ann@example.org, bob@example.org", "one bare address"),
        ("not-an-address", "not an address like name@example.org"),
        # One label is a domain (ann@localhost is accepted); an underscore is not in one.
        ("ann@exa_mple.org", "label 'exa_mple' may hold only letters, digits and hyphens"),
    ]:
        result = cli(settings, "subscribe", bad, "--keyword", "MLLM")
        assert result.returncode == 2, bad
        assert reason in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_name_with_line_break_is_refused(make_settings):
    settings = make_settings()
    result = cli(settings, "subscribe", "a@example.org", "--keyword", "MLLM", "--name", "A\nB")
    assert result.returncode == 2 and "line breaks" in result.stderr


def test_names_beyond_the_basic_plane_are_saved_and_read_back_exactly(make_settings):
    settings = make_settings()
    # A flag (two regional indicators), a tag character (U+E0041) and an accent.
    name = "Zoë \U0001f1eb\U0001f1f7 \U000e0041"
    result = cli(settings, "subscribe", "zoe@example.org", "--keyword", "MLLM", "--name", name)
    assert result.returncode == 0, result.stderr
    path = settings.subscribers.dir / "zoe@example.org.toml"
    assert tomllib.loads(path.read_text(encoding="utf-8"))["name"] == name
    listed = cli(settings, "subscribers")
    assert f"zoe@example.org ({name}): MLLM" in listed.stdout
    assert "0 files skipped" in listed.stdout


def test_names_that_would_not_survive_a_file_are_refused_in_one_line(make_settings, tmp_path):
    settings = make_settings()
    command = cli_command("--settings", str(settings.file), "subscribe", "bob@example.org")
    command += ["--keyword", "MLLM", "--name"]
    for name in (b"Bob\x07", b"Bob \xff\xfe"):  # a control character; bytes that are not UTF-8
        result = subprocess.run(
            [os.fsencode(part) for part in command] + [name],
            capture_output=True,
            env=cli_env(),
            check=False,
        )
        assert result.returncode == 2, result.stderr
        assert result.stderr.decode() == (
            "bob@example.org: the name must be UTF-8 text without control characters\n"
        )
    assert not list(settings.subscribers.dir.glob("*.toml"))


def test_unsubscribe_removes_the_file(make_settings):
    settings = make_settings()
    cli(settings, "subscribe", "ann@example.org", "--keyword", "MLLM")
    result = cli(settings, "unsubscribe", "ANN@example.org")
    assert result.returncode == 0 and "unsubscribed" in result.stdout
    assert not list(settings.subscribers.dir.glob("*.toml"))
    again = cli(settings, "unsubscribe", "ann@example.org")
    assert again.returncode == 1 and "not subscribed" in again.stderr


def test_unsubscribe_finds_hand_written_files(make_settings):
    settings = make_settings()
    settings.subscribers.dir.mkdir()
    (settings.subscribers.dir / "ann.toml").write_text(
        'email = "ann@example.org"\nkeywords = ["Gone"]\n'
    )
    assert cli(settings, "unsubscribe", "ann@example.org").returncode == 0
    assert not (settings.subscribers.dir / "ann.toml").exists()


def test_unsubscribe_then_subscribe_starts_with_a_welcome(make_settings, arxiv_server, smtp_server):
    settings = make_settings(keywords=["MLLM"])
    arxiv_server.add(entry("2502.00001", "MLLM one"))
    subscribe(settings, "ann@example.org", "MLLM")
    cli(settings, "run", "--once")
    cli(settings, "unsubscribe", "ann@example.org")
    cli(settings, "subscribe", "ann@example.org", "--keyword", "MLLM")
    cli(settings, "run", "--once")
    assert [
        m.message["Subject"].startswith("[Daily Papers] Welcome") for m in smtp_server.messages
    ] == [
        True,
        True,
    ]


def test_file_names_are_safe(make_settings):
    assert file_name("Ann@Example.org") == "ann@example.org.toml"
    odd = file_name("a/b..c@example.org")
    assert "/" not in odd and odd.endswith(".toml")
    assert file_name(".hidden@example.org") != ".hidden@example.org.toml"


def test_subscribers_lists_state(make_settings, arxiv_server):
    settings = make_settings(keywords=["MLLM"])
    subscribe(settings, "ann@example.org", "MLLM", name="Ann")
    result = cli(settings, "subscribers")
    assert (
        "ann@example.org (Ann): MLLM; daily; last delivery never; new (welcome issue next)"
        in result.stdout
    )
    arxiv_server.add(entry("2502.00001", "MLLM one"))
    cli(settings, "run", "--once")
    result = cli(settings, "subscribers")
    assert "ann@example.org (Ann): MLLM; daily; last delivery 20" in result.stdout
    assert "(cycle 1); active" in result.stdout
    assert "1 subscribers, 0 files skipped" in result.stdout


def test_delivery_is_recorded_right_after_each_accepted_message(
    make_settings, arxiv_server, smtp_server
):
    settings = make_settings(keywords=["MLLM"], smtp={"max_connections": 1})
    for n in range(5):
        subscribe(settings, f"p{n}@example.org", "MLLM")
    arxiv_server.add(entry("2502.00001", "MLLM one"))
    killed = cli(settings, "run", "--once", env={"NEWSLETTER_CRASH_AT": "after-send:2"})
    assert killed.returncode == -signal.SIGKILL
    assert len(smtp_server.messages) == 2
    done = cli(settings, "run", "--once")
    assert done.returncode == 0, done.stdout + done.stderr
    received = sorted(m.to for m in smtp_server.messages)
    assert received == [f"p{n}@example.org" for n in range(5)], "each exactly once"
    with Store(settings.store.path, lock=False) as store:
        assert all(d.last_cycle >= 1 for d in store.deliveries.all().values())
    roster = load_subscribers(settings.subscribers.dir, settings.keyword_names)
    assert len(roster.subscribers) == 5
