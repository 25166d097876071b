"""The token secret and the passwords: never silently replaced, never silently readable."""

from __future__ import annotations

import stat

from arxiv_server import entry
from conftest import run_cli, run_main, subscribe

from newsletter.tokens import check_secret


def test_a_fresh_install_makes_its_secret(tmp_path):
    path = tmp_path / "state" / "secret.key"
    secret = check_secret(path, links_mailed="")  # hand-written subscribers, no state yet
    assert len(secret) == 64 and path.read_bytes().strip() == secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert check_secret(path, links_mailed="") == secret, "kept, never replaced"


def test_a_missing_secret_once_links_went_out_stops_the_start_in_one_line(
    make_settings, arxiv_server, smtp_server, capsys
):
    settings = make_settings(keywords=["MLLM"])
    subscribe(settings, "ann@example.org", "MLLM")
    arxiv_server.add(entry("2502.00001", "MLLM paper"))
    assert run_cli("--settings", str(settings.file), "run", "--once").returncode == 0
    secret = settings.web.secret_file
    secret.unlink()  # lost: every link in the digest just sent depends on it

    result = run_cli("--settings", str(settings.file), "run", "--once")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith(
        f"{secret}: the token secret is missing, but links signed with it were mailed "
        "(1 subscribers' deliveries recorded); restore the file from a backup, or run "
        "`newsletter new-secret`"
    )
    assert not secret.exists() and len(smtp_server.messages) == 1, "nothing made, nothing sent"

    assert run_main("--settings", str(settings.file), "new-secret") == 0
    assert "Every unsubscribe link mailed before now" in capsys.readouterr().out
    assert run_main("--settings", str(settings.file), "new-secret") == 2
    assert "Add --replace to do it anyway" in capsys.readouterr().err


def test_readable_secret_and_password_files_are_named_or_refused_when_strict(
    make_settings, tmp_path
):
    password = tmp_path / "smtp-password"
    password.write_text("hunter2\n")
    settings = make_settings(
        keywords=["MLLM"], smtp={"username": "papers", "password_file": str(password)}
    )
    check_secret(settings.web.secret_file, "")
    for path in (settings.web.secret_file, password):
        path.chmod(0o644)

    status = run_cli("--settings", str(settings.file), "status")
    assert status.returncode == 0, status.stderr
    for path, what in (
        (settings.web.secret_file, "the token secret ([web] secret_file)"),
        (password, "the [smtp] password"),
    ):
        assert (
            f"warning: {path}: {what} can be read by group or others (mode -rw-r--r--); "
            f"chmod 600 {path}"
        ) in status.stdout
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, "the admin's to change, not ours"

    strict = make_settings(
        keywords=["MLLM"],
        smtp={"username": "papers", "password_file": str(password)},
        security={"strict_permissions": True},
    )
    result = run_cli("--settings", str(strict.file), "run", "--once")
    assert result.returncode == 2
    assert result.stderr == (
        f"{settings.web.secret_file}: the token secret ([web] secret_file) can be read by "
        f"group or others (mode -rw-r--r--); chmod 600 {settings.web.secret_file} "
        "([security] strict_permissions is on)\n"
    )
