"""Publishing the archive with real git: a bare repository on disk is the remote, a clone
of it holds the archive, and other clones play the people who push in between."""

from __future__ import annotations

import shutil
import subprocess
import time
from datetime import date

import pytest
from arxiv_server import entry
from conftest import run_cli, subscribe
from git_repos import SOMEONE, Remote, git, isolate_git

from newsletter.archive import git as publish_module
from newsletter.archive.git import commit_message
from newsletter.cycle import run_cycle
from newsletter.store import Store

DAY = date(2025, 3, 7)
NEXT_DAY = date(2025, 3, 8)
AUTHOR = "Papers Bot <bot@papers.example.org>"


@pytest.fixture
def remote(tmp_path, monkeypatch) -> Remote:
    isolate_git(monkeypatch, tmp_path / "home")
    return Remote.create(tmp_path)


@pytest.fixture
def publishing(make_settings, remote):
    """make_settings for an archive in the clone, committed and pushed to `remote`."""

    def make(**archive):
        values = {
            "path": str(remote.site / "README.md"),
            "git": True,
            "push": True,
            "git_author": AUTHOR,
        }
        return make_settings(archive=values | archive)

    return make


def cycle(settings, today=DAY):
    with Store(settings.store.path) as store:
        return run_cycle(settings, store, today=today)


def test_cycle_commits_and_pushes_with_a_message_counting_new_papers(
    publishing, remote, arxiv_server
):
    arxiv_server.add(
        entry("2503.00001", "Hallucination one"),
        entry("2503.00002", "MLLM two"),
        entry("2503.00003", "MLLM three"),
    )
    report = cycle(publishing())
    assert report.ok, report.publish
    assert report.publish.pushed == 1 and report.publish.files == 1
    message = "Update papers: 3 new (Hallucination 1, MLLM 2) 2025-03-07"
    assert remote.log() == [message, "Start the archive"]
    # Our identity comes from git_author, not from any git config (the tests have none).
    assert remote.log("%an <%ae>|%cn <%ce>")[0] == f"{AUTHOR}|{AUTHOR}"
    assert "MLLM three" in remote.show("README.md")
    assert report.publish.summary().startswith(f"git: committed {report.publish.commit} ")
    assert "pushed 1 commit to origin/main" in report.publish.summary()


def test_no_commit_when_only_the_date_would_change(publishing, remote, arxiv_server):
    arxiv_server.add(entry("2503.00001", "Hallucination one"))
    settings = publishing()
    cycle(settings)
    report = cycle(settings, today=NEXT_DAY)
    assert report.ok
    assert report.publish.commit == "" and report.publish.pushed == 0
    assert report.publish.summary() == "git: nothing to commit; origin/main up to date"
    assert len(remote.log()) == 2


def test_revisions_alone_say_so_in_the_message(publishing, remote, arxiv_server):
    arxiv_server.add(entry("2503.00001", "Hallucination one"))
    settings = publishing()
    cycle(settings)
    arxiv_server.add(
        entry(
            "2503.00001",
            "Hallucination one, revised",
            version=2,
            published="2025-03-01T12:00:00+00:00",
            updated="2025-03-06T12:00:00+00:00",
        )
    )
    cycle(settings, today=NEXT_DAY)
    assert remote.log()[0] == "Update papers: 0 new, 1 revised (Hallucination 1) 2025-03-08"


def test_only_the_archive_files_are_committed(publishing, remote, arxiv_server):
    (remote.site / "notes.md").write_text("the admin's draft\n")
    (remote.site / "staged.md").write_text("staged by the admin\n")
    git(remote.site, "add", "staged.md")
    arxiv_server.add(entry("2503.00001", "Hallucination one"))
    cycle(publishing(rotate=True, feeds=True))
    assert sorted(remote.files()) == [
        "LICENSE",
        "README.md",
        "feeds/hallucination.xml",
        "feeds/mllm.xml",
    ]
    # The admin's staged file is still staged, the untracked one still untracked.
    status = git(remote.site, "status", "--porcelain").splitlines()
    assert sorted(status) == ["?? notes.md", "A  staged.md"]


def test_rejected_push_is_rebased_onto_the_remote_and_pushed(publishing, remote, arxiv_server):
    arxiv_server.add(entry("2503.00001", "Hallucination one"))
    settings = publishing()
    cycle(settings)
    remote.push_elsewhere("CONTRIBUTING.md", "Open an issue first.\n", "Add contributing notes")

    arxiv_server.add(entry("2503.00002", "Hallucination two", day="2025-03-02"))
    report = cycle(settings, today=NEXT_DAY)

    assert report.ok, report.publish
    assert report.publish.rebased and report.publish.pushed == 1
    assert remote.log() == [
        "Update papers: 1 new (Hallucination 1) 2025-03-08",
        "Add contributing notes",
        "Update papers: 1 new (Hallucination 1) 2025-03-07",
        "Start the archive",
    ]
    assert "Hallucination two" in remote.show("README.md")
    assert "rebased onto origin/main, pushed 1 commit" in report.publish.summary()
    assert (remote.site / "CONTRIBUTING.md").exists()


def test_rebase_conflict_is_reported_and_the_local_commit_kept(publishing, remote, arxiv_server):
    arxiv_server.add(entry("2503.00001", "Hallucination one"))
    subscribe(publishing(), "ann@example.org", "Hallucination")
    settings = publishing()
    cycle(settings)
    remote.push_elsewhere(
        "README.md", "# Our papers\nEdited by hand.\n", "Rewrite the README by hand"
    )

    arxiv_server.add(entry("2503.00002", "Hallucination two", day="2025-03-02"))
    report = cycle(settings, today=NEXT_DAY)

    error = report.publish.error
    assert "conflicts in README.md" in error and "rebase aborted" in error
    assert "local commits kept" in error
    assert not report.ok
    # The fetch and the digest were not affected.
    assert report.keywords[0].new == 1 and report.delivery.sent == 1
    # Our commit is still the local HEAD, no rebase is left half-done, the remote is theirs.
    assert git(remote.site, "log", "-1", "--format=%s") == (
        "Update papers: 1 new (Hallucination 1) 2025-03-08\n"
    )
    assert git(remote.site, "status", "--porcelain") == ""
    assert not (remote.site / ".git" / "rebase-merge").exists()
    assert remote.log()[0] == "Rewrite the README by hand"


def test_push_to_a_remote_that_is_down_is_retried_at_the_next_cycle(
    publishing, remote, arxiv_server
):
    arxiv_server.add(entry("2503.00001", "Hallucination one"))
    settings = publishing()
    away = remote.bare.with_name("remote-away.git")
    remote.bare.rename(away)

    down = cycle(settings)
    assert "push to origin/main failed" in down.publish.error
    assert "does not appear to be a git repository" in down.publish.error
    assert down.publish.commit and not down.ok
    assert down.keywords[0].new == 1  # the cycle's own work is done

    away.rename(remote.bare)
    back = cycle(settings, today=NEXT_DAY)
    assert back.ok
    assert back.publish.commit == "" and back.publish.pushed == 1
    assert remote.log()[0] == "Update papers: 1 new (Hallucination 1) 2025-03-07"


def test_push_off_commits_locally_only(publishing, remote, arxiv_server):
    arxiv_server.add(entry("2503.00001", "Hallucination one"))
    report = cycle(publishing(push=False))
    assert report.ok and report.publish.commit
    assert report.publish.summary().endswith("Update papers: 1 new (Hallucination 1) 2025-03-07")
    assert remote.log() == ["Start the archive"]
    assert git(remote.site, "log", "-1", "--format=%s").startswith("Update papers: 1 new")


def test_a_fresh_repository_without_commits_gets_the_first_one(
    make_settings, tmp_path, monkeypatch, arxiv_server
):
    isolate_git(monkeypatch, tmp_path / "home")
    site = tmp_path / "fresh"
    git(tmp_path, "init", "--quiet", "--initial-branch=pages", str(site))
    arxiv_server.add(entry("2503.00001", "Hallucination one"))
    settings = make_settings(archive={"path": str(site / "README.md"), "git": True})
    report = cycle(settings)
    assert report.ok, report.publish
    assert git(site, "log", "--format=%s", "pages").splitlines() == [
        "Update papers: 1 new (Hallucination 1) 2025-03-07"
    ]


def test_foreign_unpushed_commits_are_never_rebased(publishing, remote, arxiv_server):
    arxiv_server.add(entry("2503.00001", "Hallucination one"))
    settings = publishing()
    cycle(settings)
    (remote.site / "LICENSE").write_text("MIT\n")
    git(remote.site, "commit", "--quiet", "-am", "Relicense")  # the admin's, not pushed
    remote.push_elsewhere("NOTES.md", "x\n", "Notes")

    arxiv_server.add(entry("2503.00002", "Hallucination two", day="2025-03-02"))
    report = cycle(settings, today=NEXT_DAY)
    assert "is not an archive update of ours, so we do not rebase" in report.publish.error
    assert git(remote.site, "log", "--format=%s", "-2").splitlines() == [
        "Update papers: 1 new (Hallucination 1) 2025-03-08",
        "Relicense",
    ]


def test_archive_outside_a_repository_is_one_clear_line_and_mail_still_goes(
    make_settings, tmp_path, monkeypatch, arxiv_server, smtp_server
):
    isolate_git(monkeypatch, tmp_path / "home")
    settings = make_settings(archive={"git": True})
    subscribe(settings, "ann@example.org", "Hallucination")
    arxiv_server.add(entry("2503.00001", "Hallucination one"))
    folder = settings.archive.path.parent
    # At start, before any work: a settings mistake.
    result = run_cli("--settings", str(settings.file), "run", "--once")
    assert result.returncode == 2
    assert result.stderr == (
        f"{settings.file}: [archive] git: {folder}: not inside a git repository "
        "(not a git repository (or any of the parent directories): .git); "
        "run git init there, or set [archive] git = false\n"
    )
    assert arxiv_server.requests == []
    # A repository that goes away while the daemon runs: that cycle's publishing fails, in
    # one line, and the rest of the cycle is done.
    report = cycle(settings)
    assert f"FAILED: {folder}: not inside a git repository" in report.publish.summary()
    assert report.keywords[0].new == 1
    assert report.delivery.sent == 1 and len(smtp_server.messages) == 1
    assert "git FAILED" in report.summary()


def test_archive_command_commits_only_with_publish(publishing, remote, arxiv_server):
    arxiv_server.add(entry("2503.00001", "Hallucination one"))
    settings = publishing(push=False)
    cycle(settings)
    shutil.rmtree(remote.site / "feeds", ignore_errors=True)
    settings = publishing(feeds=True)

    rebuilt = run_cli("--settings", str(settings.file), "archive")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "feeds: 2, 2 written" in rebuilt.stdout
    assert "git:" not in rebuilt.stdout
    assert git(remote.site, "status", "--porcelain").splitlines() == ["?? feeds/"]

    published = run_cli("--settings", str(settings.file), "archive", "--publish")
    assert published.returncode == 0, published.stderr
    assert "git: committed" in published.stdout
    assert "pushed 2 commits to origin/main" in published.stdout
    assert remote.log()[0].startswith("Update papers: archive rebuilt ")
    assert sorted(remote.files()) == [
        "LICENSE",
        "README.md",
        "feeds/hallucination.xml",
        "feeds/mllm.xml",
    ]


def test_publish_flag_without_git_is_a_usage_error(make_settings):
    settings = make_settings()
    result = run_cli("--settings", str(settings.file), "archive", "--publish")
    assert result.returncode == 2
    assert "--publish needs [archive] git = true" in result.stderr


def test_commit_message_leaves_out_keywords_without_news():
    counts = [("Hallucination", 5, 1), ("Reasoning", 0, 2), ("MLLM", 7, 0)]
    assert commit_message(counts, DAY) == (
        "Update papers: 12 new (Hallucination 5, MLLM 7) 2025-03-07"
    )
    assert commit_message([("MLLM", 0, 0)], DAY) == "Update papers: archive rebuilt 2025-03-07"


def test_removed_monthly_pages_are_committed_as_deletions(publishing, remote, arxiv_server):
    arxiv_server.add(
        entry("2502.00001", "Hallucination february", day="2025-02-03"),
        entry("2503.00001", "Hallucination march", day="2025-03-01"),
    )
    cycle(publishing(rotate=True, max_papers=1))
    assert "hallucination/2025-02.md" in remote.files()
    report = cycle(publishing(rotate=True, max_papers=5), today=NEXT_DAY)
    assert report.ok and report.publish.files == 2
    assert "hallucination/2025-02.md" not in remote.files()
    assert remote.log()[0] == "Update papers: archive rebuilt 2025-03-08"


def test_a_push_that_hangs_is_killed_at_the_timeout(publishing, remote, arxiv_server, monkeypatch):
    monkeypatch.setattr(publish_module, "NETWORK_TIMEOUT", 1.0)
    git(remote.site, "config", "remote.origin.receivepack", "sleep 30; git-receive-pack")
    arxiv_server.add(entry("2503.00001", "Hallucination one"))
    started = time.monotonic()
    report = cycle(publishing())
    assert time.monotonic() - started < 20  # the sleeping child was killed with git
    assert report.publish.error.startswith("git push gave no answer within 1 s and was stopped")
    assert report.publish.commit


def test_a_branch_other_than_the_configured_one_is_refused(publishing, remote, arxiv_server):
    git(remote.site, "checkout", "--quiet", "-b", "drafts")
    arxiv_server.add(entry("2503.00001", "Hallucination one"))
    report = cycle(publishing(branch="main"))
    assert report.publish.error == (
        f"{remote.site}: on branch 'drafts', but [archive] branch is 'main'; check out 'main' there"
    )
    assert report.publish.commit == "" and remote.log() == ["Start the archive"]


def test_a_rebase_left_in_progress_stops_commits_until_aborted(publishing, remote, arxiv_server):
    arxiv_server.add(entry("2503.00001", "Hallucination one"))
    settings = publishing()
    cycle(settings)
    other = remote.clone("other")
    (other / "LICENSE").write_text("MIT\n")
    git(other, "commit", "--quiet", "-am", "Relicense")
    (remote.site / "LICENSE").write_text("GPL\n")
    git(remote.site, "commit", "--quiet", "-am", "Relicense differently")
    git(other, "push", "--quiet", "origin", "main")
    git(remote.site, "fetch", "--quiet", "origin")
    rebase = subprocess.run(
        ["git", *SOMEONE, "rebase", "origin/main"],
        cwd=remote.site,
        capture_output=True,
        text=True,
    )
    assert "CONFLICT" in rebase.stdout  # the admin's rebase stopped on a conflict
    arxiv_server.add(entry("2503.00002", "Hallucination two", day="2025-03-02"))
    report = cycle(settings, today=NEXT_DAY)
    assert "a rebase or merge is in progress" in report.publish.error
    assert report.publish.commit == ""
