"""`make demo`: one complete cycle of the real program, with no network and no mail server.

Trying the product should not need an arXiv connection, an SMTP relay or a
settings file of one's own. So this starts two stand-ins on 127.0.0.1 — the
test suite's arXiv server (tests/arxiv_server.py) serving the seed archive's
real papers, and an aiosmtpd mail catcher that files each message it accepts —
and drives the unmodified command line against them as subprocesses:
`newsletter init`, `subscribe` twice, `run --once`. Everything lands in one
folder (default: demo/ in the repository, git-ignored), rebuilt from scratch
each time:

    list/settings.toml        what `newsletter init` wrote, pointed at the stand-ins
    list/archive/README.md    the archive, one table per keyword
    list/subscribers/         the two subscribers' files
    mail/ADDRESS.eml          each digest as the mail server received it
    mail/ADDRESS.html         ... and its HTML part, to open in a browser

Exit 0 when the cycle worked, 1 (with one line) when it did not. Both servers
are stopped before exiting, whatever happened, so nothing is left running.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the test suite's servers are the stand-ins
try:
    import tomli_w
    from aiosmtpd.controller import Controller
    from arxiv_server import FakeArxiv, seed_entries
    from smtp_server import free_port
except ImportError as err:  # run by another Python than the project's venv
    sys.exit(f"demo: {err}; run `make demo`, which installs the test extra into .venv")

# Written into the output folder, so that a later run only ever deletes a folder
# that an earlier run made, never one of the user's that happens to have the name.
MARKER = ".daily-papers-demo"
SUBSCRIBERS = [
    ("ann@example.org", "Ann", ["MLLM", "Reasoning"]),
    ("bob@example.org", "Bob", ["Hallucination", "Reward Model"]),
]
SENDER = "Daily Papers demo <papers@example.org>"
STEP_TIMEOUT = 120  # seconds per command; a hang must not leave the demo running


class DemoError(Exception):
    """One line saying what went wrong; the demo prints it and exits 1."""


class MailCatcher:
    """aiosmtpd handler: files each accepted message per recipient, as .eml and .html.

    The .eml holds the bytes the program sent (any mail client opens it); the
    .html is the decoded HTML part, so a browser shows the digest as a reader sees it.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: list[Path] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = bytes(envelope.content)
        message = message_from_bytes(data, policy=policy.default)
        html = message.get_body(preferencelist=("html",))
        for recipient in envelope.rcpt_tos:
            name = re.sub(r"[^\w.@+-]", "_", recipient)
            eml = self.folder / f"{name}.eml"
            eml.write_bytes(data)
            self.files.append(eml)
            if html is not None:
                page = self.folder / f"{name}.html"
                # The SMTP transfer turned every line ending into CRLF; give them back.
                page.write_text(html.get_content().replace("\r\n", "\n"), encoding="utf-8")
                self.files.append(page)
        return "250 Message accepted for delivery"


def prepare(out: Path) -> None:
    """An empty `out` with our marker in it; refuse a folder that is not ours."""
    if out.exists():
        if (out / MARKER).is_file():
            shutil.rmtree(out)
        elif out.is_dir() and not any(out.iterdir()):
            pass
        else:
            raise DemoError(
                f"{out} exists and was not made by the demo; remove it or pass --out OTHER"
            )
    (out / "mail").mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("Made by tools/demo.py; deleted and rebuilt by its next run.\n")


def newsletter(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command line, `python -m newsletter ARGS`, from this checkout."""
    env = dict(os.environ)
    # These would move the state files or the settings away from the demo's folder.
    for name in ("STATE_DIRECTORY", "CREDENTIALS_DIRECTORY", "NEWSLETTER_SETTINGS"):
        env.pop(name, None)
    try:
        return subprocess.run(
            [sys.executable, "-m", "newsletter", *args],
            cwd=REPO,  # `-m` imports the package from here
            env=env,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        command = " ".join(args)
        raise DemoError(f"newsletter {command}: no answer within {STEP_TIMEOUT} s") from None


def check(result: subprocess.CompletedProcess[str], what: str) -> None:
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["(no output)"]
        raise DemoError(f"{what} failed (exit {result.returncode}): {lines[-1]}")


def configure(path: Path, api_url: str, smtp_port: int) -> None:
    """Point the settings `newsletter init` wrote at the stand-ins."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    data["arxiv"].update(api_url=api_url, delay_seconds=0)
    data["smtp"].update(host="127.0.0.1", port=smtp_port, security="none")
    data["digest"]["from"] = SENDER
    header = (
        "# Written by `newsletter init`, then pointed at the demo's local stand-ins by\n"
        "# tools/demo.py (comments dropped): the repository's settings.toml explains each key.\n"
    )
    path.write_text(header + tomli_w.dumps(data), encoding="utf-8")


def cycle(out: Path) -> None:
    """Start the stand-ins, run the commands against them, and stop them whatever happens."""
    arxiv = FakeArxiv()
    try:
        # As arXiv answers ti:"X" OR abs:"X": by the words of title and abstract, so a
        # paper can come under several keywords (the recorded rows each name one).
        arxiv.add(*(dataclasses.replace(e, terms=None) for e in seed_entries()))
        smtp = Controller(MailCatcher(out / "mail"), hostname="127.0.0.1", port=free_port())
        smtp.start()
        try:
            commands(out, arxiv.url, smtp.port)
        finally:
            smtp.stop()
    finally:
        arxiv.close()


def commands(out: Path, api_url: str, smtp_port: int) -> None:
    """`newsletter init`, `subscribe` for each sample subscriber, `run --once`."""
    print(f"arXiv stand-in: {api_url}, serving the seed archive's recorded papers")
    print(f"mail catcher:   smtp://127.0.0.1:{smtp_port}, filing mail in {out / 'mail'}")
    folder = out / "list"
    check(newsletter("init", str(folder)), "newsletter init")
    settings = folder / "settings.toml"
    configure(settings, api_url, smtp_port)
    for email, name, keywords in SUBSCRIBERS:
        words = [arg for k in keywords for arg in ("--keyword", k)] + ["--name", name]
        result = newsletter("--settings", str(settings), "subscribe", email, *words)
        check(result, f"newsletter subscribe {email}")
    args = ("--settings", str(settings), "--log-level", "warning", "run", "--once")
    print(f"$ newsletter {' '.join(args)}")
    run = newsletter(*args)
    sys.stdout.write(run.stdout)
    sys.stdout.write(run.stderr)
    check(run, "newsletter run --once")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "demo",
        help="the folder to (re)build (default: demo/ in the repository)",
    )
    args = parser.parse_args(argv)
    out = args.out.resolve()
    started = time.monotonic()
    try:
        prepare(out)
        cycle(out)
        readme = out / "list" / "archive" / "README.md"
        pages = sorted((out / "mail").glob("*.html"))
        if not readme.is_file() or len(pages) != len(SUBSCRIBERS):
            raise DemoError(
                f"the cycle exited 0, but the mail catcher has {len(pages)} digests "
                f"for {len(SUBSCRIBERS)} subscribers"
            )
    except Exception as err:  # ours, or a stand-in that could not start, a file not written
        why = str(err) if isinstance(err, DemoError) else f"failed: {type(err).__name__}: {err}"
        sys.stdout.flush()  # the cycle's output first, then the reason
        print(f"demo: {why}", file=sys.stderr)
        return 1
    print(f"\nDone in {time.monotonic() - started:.1f} s; nothing is left running. Open:")
    print(f"  {readme}   the archive (Markdown)")
    for page in pages:
        print(f"  {page}   {page.stem}'s digest (also {page.with_suffix('.eml').name})")
    print(f"  {out / 'list' / 'settings.toml'}   the settings used")
    return 0


if __name__ == "__main__":
    sys.exit(main())
