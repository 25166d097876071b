"""Real git repositories for the publishing tests: a bare repository as the remote,
a clone of it holding the archive, and more clones for "someone else".

Git's configuration is isolated (HOME, GIT_CONFIG_GLOBAL, GIT_CONFIG_NOSYSTEM), so
the tests neither read nor need the machine's git identity: the daemon's commits
must get theirs from [archive] git_author. The other people's commits made here
pass their identity on the command line.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

SOMEONE = ("-c", "user.name=Someone Else", "-c", "user.email=someone@example.org")


def isolate_git(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / ".gitconfig").write_text("")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(home.parent))
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        monkeypatch.delenv(name, raising=False)


def git(cwd: Path, *args: str) -> str:
    """Run git as someone else; fails the test if git fails."""
    result = subprocess.run(
        ["git", *SOMEONE, *args], cwd=cwd, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout


@dataclass
class Remote:
    """`bare` is the remote; `site` the admin's clone where the archive lives."""

    root: Path
    bare: Path
    site: Path

    @classmethod
    def create(cls, root: Path) -> Remote:
        bare, site = root / "remote.git", root / "site"
        git(root, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
        git(root, "init", "--quiet", "--initial-branch=main", str(site))
        (site / "LICENSE").write_text("CC0\n")
        git(site, "add", "LICENSE")
        git(site, "commit", "--quiet", "-m", "Start the archive")
        git(site, "remote", "add", "origin", str(bare))
        git(site, "push", "--quiet", "-u", "origin", "main")
        return cls(root, bare, site)

    def log(self, fmt: str = "%s", ref: str = "main") -> list[str]:
        return git(self.bare, "log", f"--format={fmt}", ref).splitlines()

    def files(self, ref: str = "main") -> list[str]:
        return git(self.bare, "ls-tree", "-r", "--name-only", ref).splitlines()

    def show(self, path: str, ref: str = "main") -> str:
        return git(self.bare, "show", f"{ref}:{path}")

    def clone(self, name: str) -> Path:
        """Someone else's working copy."""
        path = self.root / name
        git(self.root, "clone", "--quiet", str(self.bare), str(path))
        return path

    def push_elsewhere(self, name: str, text: str, message: str) -> None:
        """Someone else commits `name` with `text` and pushes it to the remote first."""
        other = self.clone("other")
        (other / name).write_text(text)
        git(other, "add", name)
        git(other, "commit", "--quiet", "-m", message)
        git(other, "push", "--quiet", "origin", "main")
