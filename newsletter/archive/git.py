"""Publishing the archive with git: commit our files, push them, recover a rejected push.

The repository is the admin's, so we are careful guests (docs/archive.md):
- only our files are staged and committed; no commit when none changed;
- our identity comes from `archive.git_author`, never the admin's git config;
  credentials are the admin's, and git never prompts;
- nothing is force-pushed; a push rejected because the remote moved on is
  recovered only by rebasing our own unpushed archive commits, when that
  applies cleanly; any other failure is retried at the next cycle.
Every git call has a timeout and runs in its own process group, killed whole
(ssh included). What is published is git's own record, never kept in our store.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path, PurePosixPath

from ..config import ArchiveSettings
from ..errors import NewsletterError
from .files import archive_pathspecs, is_archive_file

log = logging.getLogger(__name__)

LOCAL_TIMEOUT = 60.0  # seconds for a command that does not leave the machine
NETWORK_TIMEOUT = 180.0  # fetch and push
MESSAGE_PREFIX = "Update papers:"
_REPOSITORY_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY")


class GitError(NewsletterError):
    """Publishing failed; str() is the one line for the log and the cycle summary."""


@dataclass(frozen=True)
class PublishReport:
    """What publishing did this cycle. `error` is None when everything that was due worked."""

    commit: str = ""  # short id of the commit made this cycle, "" when none
    message: str = ""
    files: int = 0  # files in that commit
    push: bool = False  # whether pushing is on
    pushed: int = 0  # commits this cycle brought to the remote
    rebased: bool = False  # a rejected push was recovered by rebasing onto the remote
    target: str = ""  # REMOTE/BRANCH
    error: str | None = None

    def summary(self) -> str:
        """One line: what was committed, then what happened to the push."""
        parts = [
            f"committed {self.commit} ({self.files} {'file' if self.files == 1 else 'files'}): "
            f"{self.message}"
            if self.commit
            else "nothing to commit"
        ]
        if self.error:
            parts.append(f"FAILED: {self.error}")
        elif self.push and self.pushed:
            rebased = f"rebased onto {self.target}, " if self.rebased else ""
            commits = "commit" if self.pushed == 1 else "commits"
            parts.append(f"{rebased}pushed {self.pushed} {commits} to {self.target}")
        elif self.push:
            parts.append(f"{self.target} up to date")
        return "git: " + "; ".join(parts)


def commit_message(counts: Sequence[tuple[str, int, int]], today: date) -> str:
    """`Update papers: 12 new (Hallucination 5, MLLM 7) 2025-03-07` from (keyword, new,
    revised) per keyword; keywords with none left out. Without new papers the message
    says what changed instead: revisions, or only the archive's layout (settings changed,
    `newsletter archive --publish`, a commit that failed before)."""
    day = today.isoformat()
    new = [(name, n) for name, n, _ in counts if n]
    if new:
        detail = ", ".join(f"{name} {n}" for name, n in new)
        return f"{MESSAGE_PREFIX} {sum(n for _, n in new)} new ({detail}) {day}"
    revised = [(name, r) for name, _, r in counts if r]
    if revised:
        detail = ", ".join(f"{name} {r}" for name, r in revised)
        return f"{MESSAGE_PREFIX} 0 new, {sum(r for _, r in revised)} revised ({detail}) {day}"
    return f"{MESSAGE_PREFIX} archive rebuilt {day}"


def publish(settings: ArchiveSettings, names: Sequence[str], message: str) -> PublishReport:
    """Commit the changed archive files, then push when `push` is on. Never raises for
    git's failures: they come back as `error`, and the next cycle tries again."""
    report = PublishReport(push=settings.push)
    try:
        repo = Repo.containing(settings.path.parent, settings.git_author)
        branch = repo.branch(settings.branch)
        report = replace(report, target=f"{settings.remote}/{branch}")
        files = repo.changed(settings, names)
        if files:
            commit = repo.commit(files, message)
            report = replace(report, commit=commit, message=message, files=len(files))
        if settings.push:
            pushed, rebased = repo.push(settings, branch)
            report = replace(report, pushed=pushed, rebased=rebased)
    except GitError as err:
        report = replace(report, error=str(err))
        log.error("%s", report.summary())
        return report
    log.info("%s", report.summary())
    return report


@dataclass(frozen=True)
class _Result:
    code: int
    out: str
    err: str


def _reason(stderr: str) -> str:
    """git's own explanation in one line: its error lines, without hints and boilerplate."""
    skip = ("hint:", "please make sure", "and the repository exists", "to ")
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    useful = [line for line in lines if not line.lower().startswith(skip)]
    text = "; ".join(
        line.removeprefix("fatal: ").removeprefix("error: ").rstrip(".") for line in useful[:3]
    )
    return text or "git gave no reason"


class Repo:
    """The git repository holding the archive, and the git commands we run in it."""

    def __init__(self, top: Path, env: dict[str, str]):
        self.top = top
        self.env = env

    @classmethod
    def containing(cls, folder: Path, author: str) -> Repo:
        name, _, address = author.rpartition(" <")
        # GIT_DIR and friends would point git at another repository than the archive's.
        inherited = {k: v for k, v in os.environ.items() if k not in _REPOSITORY_ENV}
        env = {
            **inherited,
            "GIT_TERMINAL_PROMPT": "0",  # never ask for a password: fail instead
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": address.rstrip(">"),
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": address.rstrip(">"),
            "GIT_EDITOR": "true",
            "GIT_LITERAL_PATHSPECS": "1",  # our paths are file names, not patterns
            "LC_ALL": "C",  # English messages, to classify push failures
        }
        if not folder.is_dir():
            raise GitError(f"{folder}: the archive directory does not exist")
        probe = cls(folder, env)
        result = probe.run("rev-parse", "--show-toplevel", check=False)
        if result.code:
            raise GitError(
                f"{folder}: not inside a git repository ({_reason(result.err)}); "
                "run git init there, or set [archive] git = false"
            )
        repo = cls(Path(result.out.strip()), env)
        own_ssh = "GIT_SSH_COMMAND" in env or "GIT_SSH" in env
        if not own_ssh and repo.run("config", "--get", "core.sshCommand", check=False).code:
            env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"  # no passphrase or host prompts
        return repo

    def run(
        self,
        *args: str,
        check: bool = True,
        stdin: str | None = None,
        timeout: float = LOCAL_TIMEOUT,
    ) -> _Result:
        command = ["git", "-C", str(self.top), *args]
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.env,
                text=True,
                encoding="utf-8",
                errors="surrogateescape",
                start_new_session=True,  # so a timeout can kill ssh with it
            )
        except FileNotFoundError:
            raise GitError("the git program is not installed (or not on PATH)") from None
        try:
            out, err = process.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise GitError(
                f"git {args[0]} gave no answer within {timeout:g} s and was stopped; "
                "the next cycle tries again"
            ) from None
        result = _Result(process.returncode, out, err)
        if check and result.code:
            raise GitError(f"git {args[0]} failed in {self.top}: {_reason(err)}")
        return result

    def branch(self, wanted: str) -> str:
        """The checked-out branch, which must be `wanted` when set: we commit on what is
        checked out and never switch branches in the admin's repository."""
        for state in ("rebase-merge", "rebase-apply", "MERGE_HEAD"):
            marker = self.run("rev-parse", "--git-path", state).out.strip()
            if (self.top / marker).exists():
                raise GitError(
                    f"{self.top}: a rebase or merge is in progress; finish or abort it "
                    "(git rebase --abort), the next cycle publishes"
                )
        result = self.run("symbolic-ref", "--quiet", "--short", "HEAD", check=False)
        current = result.out.strip()
        if result.code or not current:
            raise GitError(f"{self.top}: HEAD is not on a branch; check out the archive's branch")
        if wanted and wanted != current:
            raise GitError(
                f"{self.top}: on branch {current!r}, but [archive] branch is {wanted!r}; "
                f"check out {wanted!r} there"
            )
        return current

    def changed(self, settings: ArchiveSettings, names: Sequence[str]) -> list[str]:
        """Our files that differ from HEAD (new, modified, deleted), repository-relative."""
        folder = self._relative(settings.path.parent)
        specs = [self._relative(path) for path in archive_pathspecs(settings, names)]
        out = self.run("status", "--porcelain=v1", "-z", "--untracked-files=all", "--", *specs).out
        fields = out.split("\0")
        paths: list[str] = []
        index = 0
        while index < len(fields) and fields[index]:
            status, path = fields[index][:2], fields[index][3:]
            index += 2 if status[0] in "RC" else 1
            inside = _under(path, folder)
            if inside is not None and is_archive_file(settings, inside) and path not in paths:
                paths.append(path)
        return paths

    def _relative(self, path: Path) -> str:
        """`path` relative to the repository's top, in git's spelling ('' for the top)."""
        full = path.resolve()
        try:
            relative = full.relative_to(self.top.resolve())
        except ValueError:
            raise GitError(f"{path}: outside the git repository {self.top}") from None
        return "" if relative == Path() else relative.as_posix()

    def commit(self, files: list[str], message: str) -> str:
        pathspecs = "\0".join(files) + "\0"
        self.run("add", "--all", "--pathspec-from-file=-", "--pathspec-file-nul", stdin=pathspecs)
        self.run(
            "commit",
            "--quiet",
            "--no-edit",
            f"--message={message}",
            "--pathspec-from-file=-",
            "--pathspec-file-nul",
            stdin=pathspecs,
        )
        return self.run("rev-parse", "--short", "HEAD").out.strip()

    def unpushed(self, remote: str, branch: str) -> int | None:
        """Local commits not on the remote branch as last seen; None when never seen."""
        tracking = f"refs/remotes/{remote}/{branch}"
        if self.run("rev-parse", "--verify", "--quiet", tracking, check=False).code:
            return None
        return int(self.run("rev-list", "--count", f"{tracking}..HEAD").out.strip())

    def push(self, settings: ArchiveSettings, branch: str) -> tuple[int, bool]:
        """Push what is unpushed; (commits pushed, whether a rebase was needed)."""
        remote = settings.remote
        if self.unpushed(remote, branch) == 0:
            return 0, False
        pushed = self._push(remote, branch)
        if pushed is not None:
            return pushed, False
        self.run("fetch", "--quiet", remote, branch, timeout=NETWORK_TIMEOUT)
        upstream = f"refs/remotes/{remote}/{branch}"
        if self.run("rev-parse", "--verify", "--quiet", upstream, check=False).code:
            upstream = "FETCH_HEAD"  # a remote without the usual fetch refspec
        self._check_ours(settings, upstream, remote, branch)
        self._rebase(upstream, remote, branch)
        pushed = self._push(remote, branch)
        if pushed is None:
            raise GitError(
                f"push to {remote}/{branch} rejected again after rebasing (the remote moved "
                "on meanwhile); local commits kept, the next cycle tries again"
            )
        return pushed, True

    def _push(self, remote: str, branch: str) -> int | None:
        """Commits pushed (0: the remote had them); None when rejected as not a
        fast-forward (the remote moved on); GitError for anything else (the remote
        down, a hook refusing)."""
        ref = f"refs/heads/{branch}"
        result = self.run(
            "push", "--porcelain", remote, f"{ref}:{ref}", check=False, timeout=NETWORK_TIMEOUT
        )
        for line in result.out.splitlines():
            flag, _, rest = line.partition("\t")
            target, _, summary = rest.partition("\t")
            if not target.endswith(f":{ref}"):
                continue
            if flag == "=":
                return 0
            if flag == " " and ".." in summary:
                return int(self.run("rev-list", "--count", summary.split()[0]).out.strip())
            if flag == "*":
                return int(self.run("rev-list", "--count", ref).out.strip())
            if flag == "!" and "[rejected]" in summary and "(fetch first" in summary:
                return None
            if flag == "!" and "[rejected]" in summary and "(non-fast-forward" in summary:
                return None
            if flag == "!":
                raise GitError(
                    f"push to {remote}/{branch} refused: {summary}; local commits kept, "
                    "the next cycle tries again"
                )
        raise GitError(
            f"push to {remote}/{branch} failed: {_reason(result.err)}; local commits kept, "
            "the next cycle tries again"
        )

    def _check_ours(
        self, settings: ArchiveSettings, upstream: str, remote: str, branch: str
    ) -> None:
        """Rebase only what we made: our author, archive files only, no merges."""
        folder = self._relative(settings.path.parent)
        author = settings.git_author
        for sha in self.run("rev-list", f"{upstream}..HEAD").out.split():
            who, parents, subject = (
                self.run("show", "--no-patch", "--format=%an <%ae>%x00%P%x00%s", sha)
                .out.rstrip("\n")
                .split("\0")
            )
            touched = self.run(
                "diff-tree", "--no-commit-id", "--name-only", "-r", "-z", "--root", sha
            ).out.split("\0")
            ours = (
                who == author
                and len(parents.split()) == 1
                and subject.startswith(MESSAGE_PREFIX)
                and all(
                    _under(path, folder) is not None
                    and is_archive_file(settings, _under(path, folder))
                    for path in touched
                    if path
                )
            )
            if not ours:
                raise GitError(
                    f"push to {remote}/{branch} rejected (the remote has commits we do not), "
                    f"and local commit {sha[:7]} is not an archive update of ours, so we do "
                    "not rebase; merge by hand, the next cycle pushes"
                )

    def _rebase(self, upstream: str, remote: str, branch: str) -> None:
        dirty = self.run("status", "--porcelain=v1", "-z", "--untracked-files=no").out
        if dirty.strip("\0"):
            raise GitError(
                f"push to {remote}/{branch} rejected (the remote has commits we do not), and "
                f"{self.top} has uncommitted changes, so we cannot rebase onto it; commit or "
                "stash them, the next cycle tries again"
            )
        result = self.run("rebase", "--no-autostash", upstream, check=False)
        if result.code == 0:
            return
        conflicts = self.run("diff", "--name-only", "--diff-filter=U", "-z").out.split("\0")
        self.run("rebase", "--abort", check=False)
        files = ", ".join(c for c in conflicts if c) or _reason(result.err)
        raise GitError(
            f"push to {remote}/{branch} rejected (the remote has commits we do not), and "
            f"rebasing our archive commits onto it conflicts in {files}; rebase aborted, "
            f"local commits kept: merge {remote}/{branch} by hand, the next cycle pushes"
        )


def _under(path: str, folder: str) -> PurePosixPath | None:
    """`path` relative to `folder` (both repository-relative), or None when outside."""
    try:
        return PurePosixPath(path).relative_to(folder or ".")
    except ValueError:
        return None
