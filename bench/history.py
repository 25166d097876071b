"""Years of history, measured through the real command line: does a cycle stay cheap?

A store that has seen 100,000 papers must cost a cycle about what a young one
costs, because only the working set is held in full. This takes nothing on
trust: both stores are grown by real `newsletter run --once` cycles against
the test suite's fake arXiv (a real HTTP server), subscribers are added with
`newsletter subscribe`, and the digests go to an SMTP sink. Nothing here
writes the store's files itself.

- young: the seed (20 papers a keyword) taken in by one cycle;
- old: the history taken in by one intake cycle (the whole of each keyword in
  pages of 2,000), then one ordinary cycle after it;
- the measured cycle, on each: 20 new papers a keyword, `run --once` timed
  from start to exit, young and old alternately (each round brings new
  papers), medians over the rounds; the old cycle's peak RSS comes from
  `wait4` on that process alone;
- the state on disk: the store's files after the last old cycle;
- the daemon (`newsletter run`) on the old store: its resident memory once a
  cycle has run and it waits for the next.

The fake arXiv answers from lists indexed by keyword and sorted once, so that
an answer costs the server the same for both stores: the time measured is the
command's, not the fake server's.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO / "tests"))

from arxiv_server import PHRASE, Entry, FakeArxiv, _stamp, render_feed  # noqa: E402

KEYWORDS = ("Hallucination", "MLLM", "Reasoning", "Reward Model")
SEED = 80  # the young store: 20 papers a keyword
NEW = 80  # each measured cycle: 20 new papers a keyword
SUBSCRIBERS = 10
ROUNDS = 3
SPACING = timedelta(minutes=17)  # between two papers' first versions: 100,000 span 3 years
NOW = datetime(2025, 6, 2, 6, tzinfo=UTC)  # the measured papers come after this
LAUNCHER = Path(__file__).with_name("peak.py")
SUMMARY_LINE = re.compile(r"cycle \d+: keywords ")


class TableLike(Protocol):
    def add(self, name: str, value: str) -> None: ...


class TextLike(Protocol):
    title: str
    abstract: str
    authors: tuple[str, ...]
    comment: str
    categories: tuple[str, ...]


def paper_entry(position: int, texts: Sequence[TextLike]) -> Entry:
    """The paper at `position` on one time line (negative: history, the newest at -1;
    0 and up: the papers of the measured cycles). Its first version's time, id and
    keyword follow from the position, so every paper is distinct and the young and
    old stores see the same new papers."""
    published = NOW + position * SPACING
    keyword = KEYWORDS[position % len(KEYWORDS)]
    text = texts[position % len(texts)]
    # Ids are unique: within a month (about 2,500 positions) the serial cannot repeat.
    paper_id = f"{published:%y%m}.{10_000 + position % 90_000:05d}"
    stamp = published.isoformat()
    return Entry(
        id=paper_id,
        title=text.title,
        abstract=text.abstract,
        published=stamp,
        updated=stamp,
        comment=text.comment,
        authors=list(text.authors) or ["Ada Lovelace"],
        categories=["cs.CL", *(c for c in text.categories if c != "cs.CL")],
        primary_category="cs.CL",
        terms=[keyword],
    )


class IndexedArxiv(FakeArxiv):
    """tests/arxiv_server.py's FakeArxiv, answering a one-phrase query from a list per
    phrase kept in order as entries are added (the fake's own answer scans and sorts
    every entry per request, which at 100,000 would time the server, not the cycle)."""

    def __init__(self) -> None:
        super().__init__()
        self.ordered: dict[str, list[tuple[str, Entry]]] = {}  # newest update first

    def add(self, *entries: Entry) -> None:  # ids are unique here: no replacing
        with self.lock:
            self.entries.extend(entries)
            touched = set()
            for entry in entries:
                for term in entry.terms or ():
                    key = term.casefold()
                    self.ordered.setdefault(key, []).append((_stamp(entry.updated), entry))
                    touched.add(key)
            for key in touched:
                self.ordered[key].sort(key=lambda pair: pair[0], reverse=True)

    def answer(self, params: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        query = params.get("search_query", "")
        phrases = {p.casefold() for p in PHRASE.findall(query)}
        if len(phrases) != 1 or "ANDNOT" in query or params.get("sortBy") != "lastUpdatedDate":
            return super().answer(params)
        (phrase,) = phrases
        with self.lock:
            matched = self.ordered.get(phrase, [])
        if params.get("sortOrder", "descending") != "descending":
            matched = matched[::-1]
        start = int(params.get("start", "0"))
        page = [entry for _, entry in matched[start : start + int(params.get("max_results", "10"))]]
        return 200, {}, render_feed(page, query, start, len(matched))


SETTINGS = """\
[arxiv]
api_url = "{api_url}"
max_results = {max_results}
page_size = {page_size}
delay_seconds = 0
timeout_seconds = 120
retries = 1

{keywords}
[store]
path = "state/newsletter.json"

[archive]
path = "archive/README.md"
public_url = "https://github.com/lab/daily-papers"

[subscribers]
dir = "subscribers"

[digest]
from = "Daily Papers <papers@example.org>"
templates = "{templates}"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
timeout_seconds = 30
retries = 1
retry_delay_seconds = 0.1

[web]
secret_file = "state/secret.key"
listen = "127.0.0.1:{web_port}"  # the daemon serves the unsubscribe pages, as in production
public_url = "https://papers.example.org"

[schedule]
times = ["{far_away}"]
timezone = "UTC"
run_on_start = true
"""


@dataclass
class Instance:
    """One installation: its folder, settings file and fake arXiv."""

    root: Path
    arxiv: IndexedArxiv
    smtp_port: int

    @property
    def settings(self) -> Path:
        return self.root / "settings.toml"

    def configure(self, max_results: int = 100, page_size: int = 100) -> None:
        far_away = (datetime.now(UTC) + timedelta(hours=12)).strftime("%H:%M")
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "archive").mkdir(exist_ok=True)
        self.settings.write_text(
            SETTINGS.format(
                api_url=self.arxiv.url,
                max_results=max_results,
                page_size=page_size,
                keywords="".join(f'[[keywords]]\nname = "{k}"\n\n' for k in KEYWORDS),
                templates=REPO / "templates",
                smtp_port=self.smtp_port,
                web_port=free_port(),
                far_away=far_away,
            )
        )

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "newsletter", "--settings", str(self.settings), *args]

    def state_files(self) -> list[Path]:
        state = self.root / "state"
        names = ("newsletter.json", "newsletter.json.journal")
        names += ("newsletter.papers.json", "newsletter.seen.json")
        return [state / n for n in names if (state / n).exists()]

    def state_mb(self) -> float:
        return sum(p.stat().st_size for p in self.state_files()) / 1e6

    def close(self) -> None:
        self.arxiv.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cli_env() -> dict[str, str]:
    """This checkout's package, as tests/conftest.py's cli_env gives it."""
    return {**os.environ, "PYTHONPATH": str(REPO)}


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_mb: float  # this process's own high-water mark (wait4's ru_maxrss)
    output: str


def run_once(instance: Instance, log: Path) -> Run:
    """`newsletter run --once`, timed from start to exit, its peak RSS from `wait4` on
    that process alone (through peak.py: see there why not straight from here); fails
    loudly unless it exits 0."""
    result = log.with_suffix(".rusage")
    with open(log, "w") as out:
        subprocess.run(
            [sys.executable, str(LAUNCHER), str(result), *instance.command("run", "--once")],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=cli_env(),
            cwd=instance.root,
            check=True,
        )
    seconds, maxrss, code = result.read_text().split()
    output = log.read_text()
    if code != "0":
        raise RuntimeError(f"run --once failed ({code}) in {instance.root}:\n{output}")
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    peak = int(maxrss) / (1024 * 1024 if sys.platform == "darwin" else 1024)
    return Run(float(seconds), peak, output)


def subscribe(instance: Instance, count: int) -> None:
    """`newsletter subscribe` for `count` people over the keywords' combinations (all at
    once: each writes its own file, and nothing here is timed)."""
    processes = []
    for i in range(count):
        keywords = [KEYWORDS[i % 4]] + ([KEYWORDS[(i + 1) % 4]] if i % 3 else [])
        args = [f"reader{i}@dept{i % 3}.example.edu"]
        for keyword in keywords:
            args += ["--keyword", keyword]
        processes.append(
            subprocess.Popen(
                instance.command("subscribe", *args),
                env=cli_env(),
                cwd=instance.root,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        )
    for process in processes:
        output, _ = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"subscribe failed: {output.decode()}")


def sent_by(output: str) -> int:
    match = re.search(r"emails sent (\d+)", output)
    return int(match.group(1)) if match else -1


def idle_daemon_mb(instance: Instance, log: Path, timeout: float = 600) -> tuple[float, float]:
    """Start `newsletter run` (run_on_start), wait for its cycle's summary line, let it
    settle 2 s, read its VmRSS; then SIGTERM. Returns (resident MB, the cycle's seconds)."""
    with open(log, "w") as err:
        started = time.perf_counter()
        daemon = subprocess.Popen(
            instance.command("run"),
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=cli_env(),
            cwd=instance.root,
        )
        try:
            while not SUMMARY_LINE.search(log.read_text()):
                if daemon.poll() is not None:
                    raise RuntimeError(
                        f"the daemon exited ({daemon.returncode}):\n{log.read_text()}"
                    )
                if time.perf_counter() - started > timeout:
                    raise RuntimeError(f"no cycle summary within {timeout:.0f} s")
                time.sleep(0.05)
            cycle = time.perf_counter() - started
            time.sleep(2)
            status = Path(f"/proc/{daemon.pid}/status").read_text()
            resident = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
    if daemon.returncode != 0:
        raise RuntimeError(f"the daemon exited {daemon.returncode}:\n{log.read_text()}")
    return resident, cycle


@dataclass(frozen=True)
class History:
    papers: int
    cycle: float  # median seconds of the measured cycle on the old store
    young: float  # and on the young one
    state_mb: float
    peak_mb: float  # median peak RSS of the measured cycle on the old store
    idle_mb: float

    @property
    def ratio(self) -> float:
        return self.cycle / self.young

    def label(self) -> str:
        return f"{self.papers // 1000}k" if self.papers >= 1000 else str(self.papers)

    def summary(self) -> str:
        return (
            f"history {self.label()}: cycle {self.cycle:.2f} s vs young {self.young:.2f} s, "
            f"ratio {self.ratio:.2f}; state {self.state_mb:.1f} MB; "
            f"peak RSS {self.peak_mb:.0f} MB"
        )


def measure_history(
    root: Path,
    texts: Sequence[Any],
    papers: int,
    smtp_port: int,
    table: TableLike,
    rounds: int = ROUNDS,
    subscribers: int = SUBSCRIBERS,
) -> History:
    """Grow a young and an old store by real cycles, then time the same cycle on both."""
    if papers < SEED or papers % len(KEYWORDS):
        raise ValueError(f"--history-papers: a multiple of {len(KEYWORDS)}, at least {SEED}")
    logs = root / "logs"
    logs.mkdir(parents=True)
    young = Instance(root / "young", IndexedArxiv(), smtp_port)
    old = Instance(root / "old", IndexedArxiv(), smtp_port)
    try:
        young.arxiv.add(*(paper_entry(p, texts) for p in range(-SEED, 0)))
        old.arxiv.add(*(paper_entry(p, texts) for p in range(-papers, 0)))
        young.configure()
        subscribe(young, subscribers)
        old.configure(max_results=papers // len(KEYWORDS), page_size=2000)
        shutil.copytree(young.root / "subscribers", old.root / "subscribers")

        seed = run_once(young, logs / "young-seed.log")
        table.add(
            f"young store: seed of {SEED} papers, {subscribers} subscribers",
            f"taken in by one cycle, {seed.seconds:.2f} s",
        )
        intake = run_once(old, logs / "old-intake.log")
        table.add(
            f"old store: {papers:,} papers taken in by one cycle",
            f"{intake.seconds:.1f} s, peak RSS {intake.peak_mb:.0f} MB, "
            f"state {old.state_mb():.1f} MB",
        )
        old.configure()
        after = run_once(old, logs / "old-after.log")
        table.add(
            "  the ordinary cycle after it (nothing new)",
            f"{after.seconds:.2f} s, peak RSS {after.peak_mb:.0f} MB",
        )

        runs: dict[str, list[Run]] = {"young": [], "old": []}
        for round_ in range(rounds):
            new = [paper_entry(p, texts) for p in range(round_ * NEW, (round_ + 1) * NEW)]
            for instance, name in ((young, "young"), (old, "old")):
                instance.arxiv.add(*new)
                run = run_once(instance, logs / f"{name}-{round_ + 1}.log")
                if sent_by(run.output) != subscribers:
                    raise RuntimeError(f"{name}: not every subscriber got a digest:\n{run.output}")
                runs[name].append(run)
        for name, label in (("young", f"young ({SEED} papers)"), ("old", f"old ({papers:,})")):
            seconds = ", ".join(f"{r.seconds:.2f}" for r in runs[name])
            peaks = ", ".join(f"{r.peak_mb:.0f}" for r in runs[name])
            table.add(
                f"cycle with {NEW} new papers: {label}",
                f"{seconds} s; peak RSS {peaks} MB",
            )
        result = History(
            papers=papers,
            cycle=statistics.median(r.seconds for r in runs["old"]),
            young=statistics.median(r.seconds for r in runs["young"]),
            state_mb=old.state_mb(),
            peak_mb=statistics.median(r.peak_mb for r in runs["old"]),
            idle_mb=0.0,
        )
        table.add(
            "  medians: old vs young, ratio",
            f"{result.cycle:.2f} s vs {result.young:.2f} s, {result.ratio:.2f}",
        )
        files = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.2f}" for p in old.state_files())
        table.add(f"  old store's state on disk: {result.state_mb:.1f} MB", files)
        table.add("  young store's state on disk", f"{young.state_mb():.2f} MB")

        old.arxiv.add(*(paper_entry(p, texts) for p in range(rounds * NEW, (rounds + 1) * NEW)))
        idle, cycle = idle_daemon_mb(old, logs / "daemon.log")
        table.add(
            "daemon idle after a cycle, old store (VmRSS)",
            f"{idle:.0f} MB (its cycle done {cycle:.1f} s after start)",
        )
        return replace(result, idle_mb=idle)
    finally:
        young.close()
        old.close()
