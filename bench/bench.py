"""`make bench`: the digest-and-send phase at a department's scale, measured.

Builds a realistic scenario in a temp dir (four keywords with 100 papers each,
real abstracts from the test fixtures; N subscriber files spread unevenly over
every keyword combination; most with a delivery record, some new) and a
loopback SMTP server that accepts and discards, in its own process. The
subscribers are a mix of cadences: 80% daily, 10% weekly on Friday (the day
delivered, so due, with the papers of two cycles) and 10% weekly on Monday
(not due: planned and skipped). Then it measures, in one run:

- the real path: `deliver_digests` over SMTP, as a cycle runs it;
- the naive path: jinja2 + premailer for every subscriber, on a sample (half
  just before the real path, half just after);
- the ceiling: one pre-rendered message sent N times over the same pool
  (just before and just after the real path; the better counts);
- for each sending run, the CPU seconds of this process and of the server, to
  say which of the two bound it (the two share the machine's cores);
- the parts (loading files, planning, rendering, building, recording), each
  alone, to say where the time goes;
- the store: diffing 400 fetched papers against a store that has seen 100,000
  (the working set in full, the rest as seen ids, as cycles leave it);
- the inbox: one poll of 10,000 mails against one of 1,000, to show that its
  cost follows the mails rather than their square (inbox.py);
- years of history: the same cycle, through `newsletter run --once`, on a
  store grown by real cycles to 100,000 papers and on a young one; the state
  on disk; the peak RSS of that cycle; an idle daemon's memory (history.py).

One module for the scenario and the sending measurements, which share its data;
the store's history and the inbox have modules of their own.

It ends with one line, always in the same form (a test checks it):
bench: N msgs in S s, R msg/s; naive X msg/s; speedup R/X; ceiling C msg/s;
efficiency R/C; peak RSS M MB; diff 400 vs 100k D ms; history 100k: cycle T s
vs young Y s, ratio T/Y; state S MB; peak RSS P MB
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from history import ROUNDS, SUBSCRIBERS, measure_history
from inbox import measure_inbox

from newsletter.cadence import Cadence
from newsletter.config import Settings, load_settings
from newsletter.papers import Paper, collapse
from newsletter.retention import papers_to_keep
from newsletter.sending.deliver import deliver_digests, make_mail, make_renderer, personal
from newsletter.sending.mime import MailTemplate
from newsletter.sending.plan import plan_all
from newsletter.sending.smtp import SENT, Mailer, Outbound, Outcome
from newsletter.store import Store
from newsletter.subscribers import Subscriber, file_name, load_subscribers, render_subscriber
from newsletter.tokens import load_or_create_secret

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
KEYWORDS = ("Hallucination", "MLLM", "Reasoning", "Reward Model")
PER_KEYWORD = 100  # papers per keyword, as arXiv's newest-100 answer
NEW_PER_CYCLE = 8  # papers per keyword first seen in each of the last two cycles
CYCLE = 3  # the cycle being delivered: 1 filled the store, 2 and 3 brought new papers
DAY = date(2025, 3, 7)  # a Friday
# Cadences by subscriber number modulo 10: 80% daily, 10% weekly on Friday, 10% on Monday.
WEEKLY_MIX = (*(Cadence(),) * 8, Cadence("weekly", "friday"), Cadence("weekly", "monday"))
ATOM = "{http://www.w3.org/2005/Atom}"
ARXIV = "{http://arxiv.org/schemas/atom}"
FETCHED = 400  # papers fetched per cycle: four keywords, 100 each


@dataclass(frozen=True)
class Text:
    """What a paper says, taken from a real arXiv answer or the seed archive."""

    title: str
    abstract: str
    authors: tuple[str, ...]
    comment: str
    categories: tuple[str, ...]


def fixture_texts() -> list[Text]:
    """Every real title and abstract in the fixtures (about 140, 1.2 KB on average)."""
    texts = [
        Text(p["title"], p["abstract"], tuple(p["authors"]), p["comment"], tuple(p["categories"]))
        for p in json.loads((FIXTURES / "seed_papers.json").read_text(encoding="utf-8"))
    ]
    for path in sorted((FIXTURES / "arxiv-api").glob("*.xml")):
        for entry in ET.parse(path).getroot().iter(f"{ATOM}entry"):
            abstract = collapse(entry.findtext(f"{ATOM}summary"))
            if len(abstract) < 200:  # the error entries
                continue
            texts.append(
                Text(
                    title=collapse(entry.findtext(f"{ATOM}title")),
                    abstract=abstract,
                    authors=tuple(
                        collapse(a.findtext(f"{ATOM}name")) for a in entry.iter(f"{ATOM}author")
                    ),
                    comment=collapse(entry.findtext(f"{ARXIV}comment")),
                    categories=tuple(c.get("term", "") for c in entry.iter(f"{ATOM}category")),
                )
            )
    return texts


def make_paper(paper_id: str, text: Text, published: datetime, version: int = 1) -> Paper:
    return Paper(
        id=paper_id,
        version=version,
        url=f"http://arxiv.org/abs/{paper_id}v{version}",
        title=text.title,
        abstract=text.abstract,
        authors=text.authors,
        comment=text.comment,
        categories=text.categories,
        primary_category=text.categories[0] if text.categories else "cs.CL",
        published=published,
        updated=published + timedelta(days=version - 1),
    )


def keyword_papers(texts: Sequence[Text]) -> tuple[dict[str, list[Paper]], dict[str, int]]:
    """Each keyword's newest 100, as arXiv would answer: 85 of its own and 15 it shares
    with the next keyword (those become tags). Returns (papers by keyword, first cycle
    of each paper id): the newest 8 of each keyword arrived in cycle 3, the next 8 in 2."""
    newest = datetime(2025, 3, 7, 12, tzinfo=UTC)
    own_count = PER_KEYWORD * 85 // 100
    own: dict[str, list[Paper]] = {}
    first_seen: dict[str, int] = {}
    counter = itertools.count()
    for k, keyword in enumerate(KEYWORDS):
        own[keyword] = []
        for n in range(own_count):
            paper_id = f"2503.{10_000 + 1_000 * k + n:05d}"
            text = texts[next(counter) % len(texts)]
            own[keyword].append(make_paper(paper_id, text, newest - timedelta(hours=3 * n + k)))
            first_seen[paper_id] = (
                CYCLE if n < NEW_PER_CYCLE else CYCLE - 1 if n < 2 * NEW_PER_CYCLE else 1
            )
    fetched = {}
    for k, keyword in enumerate(KEYWORDS):
        shared = own[KEYWORDS[(k + 1) % len(KEYWORDS)]][: PER_KEYWORD - own_count]
        fetched[keyword] = own[keyword] + shared
    return fetched, first_seen


def fill_store(store: Store, fetched: dict[str, list[Paper]], first_seen: dict[str, int]) -> None:
    """The cycles before the one we measure, as they happened."""
    for cycle in range(1, CYCLE):
        number = store.cycles.begin()
        with store.batch():
            store.papers.apply_fetch(number, seen_by(fetched, first_seen, cycle))
        store.cycles.finish(number)


def seen_by(
    fetched: dict[str, list[Paper]], first_seen: dict[str, int], cycle: int
) -> dict[str, list[Paper]]:
    """What arXiv answered in that cycle: the papers that existed by then."""
    return {k: [p for p in papers if first_seen[p.id] <= cycle] for k, papers in fetched.items()}


@dataclass(frozen=True)
class People:
    subscribers: list[Subscriber]
    # address key → (last delivered cycle, its day); absent: new, gets a welcome
    history: dict[str, tuple[int, date]]

    def summary(self) -> str:
        welcome = len(self.subscribers) - len(self.history)
        daily = [s for s in self.subscribers if not s.cadence.weekly and s.key in self.history]
        missed = sum(1 for s in daily if self.history[s.key][0] < CYCLE - 1)
        weekly = [s for s in self.subscribers if s.cadence.weekly and s.key in self.history]
        due = sum(1 for s in weekly if s.cadence.due(self.history[s.key][1], DAY))
        return (
            f"scenario: {len(combinations())} keyword combinations; {welcome} new "
            f"(welcome issue); daily: {missed} missed the last cycle, "
            f"{len(daily) - missed} up to date; weekly: {due} due, {len(weekly) - due} not; "
            f"delivering cycle {CYCLE} on {DAY:%A} {DAY}"
        )


def combinations() -> list[tuple[str, ...]]:
    return [c for r in range(1, len(KEYWORDS) + 1) for c in itertools.combinations(KEYWORDS, r)]


def make_people(count: int, rng: random.Random) -> People:
    """`count` subscribers over all 15 combinations, unevenly (Zipf-like weights in a
    shuffled order): 85% got cycle 2, 5% missed it (last got cycle 1), 10% are new.
    Every fifth is weekly: on Friday (DAY), last sent a week before in cycle 1, so due;
    or on Monday, last sent that Monday in cycle 2, so not due."""
    combos = combinations()
    rng.shuffle(combos)
    weights = [1 / (rank + 1) for rank in range(len(combos))]
    subscribers = []
    history = {}
    for i in range(count):
        keywords = combos[i] if i < len(combos) else rng.choices(combos, weights)[0]
        subscriber = Subscriber(
            email=f"reader{i:05d}@dept{i % 37}.example.edu",
            keywords=keywords,
            name=f"Reader {i}" if rng.random() < 0.6 else "",
            source="bench",
            created=f"2025-01-{1 + i % 28:02d}T09:00:00+00:00",
            cadence=WEEKLY_MIX[i % 10],
        )
        subscribers.append(subscriber)
        roll = rng.random()
        if subscriber.cadence.weekly and roll < 0.90:
            friday = subscriber.cadence.weekday == "friday"
            history[subscriber.key] = (1, DAY - timedelta(7)) if friday else (2, DAY - timedelta(4))
        elif roll < 0.85:
            history[subscriber.key] = (CYCLE - 1, DAY - timedelta(1))
        elif roll < 0.90:
            history[subscriber.key] = (CYCLE - 2, DAY - timedelta(2))
    return People(subscribers, history)


def write_people(settings: Settings, store: Store, people: People) -> None:
    """Subscriber files as `newsletter subscribe` writes them, and their delivery history."""
    folder = settings.subscribers.dir
    folder.mkdir(parents=True, exist_ok=True)
    for subscriber in people.subscribers:
        (folder / file_name(subscriber.email)).write_text(render_subscriber(subscriber))
    with store.batch():
        for subscriber in people.subscribers:
            last = people.history.get(subscriber.key)
            if last is not None:
                cycle, day = last
                store.deliveries.record_sent(
                    subscriber.key, subscriber.created, cycle, day.isoformat()
                )
        store.deliveries.flush()


SETTINGS = """\
[arxiv]
api_url = "http://127.0.0.1:9/api/query"

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
port = {port}
max_connections = {connections}
timeout_seconds = 30
retries = 1
retry_delay_seconds = 0.1

[web]
secret_file = "state/secret.key"
# Digests link the one-click page; the bench never starts the web server itself.
listen = "127.0.0.1:8025"
public_url = "https://papers.example.org"
"""


def write_settings(root: Path, port: int, connections: int) -> Settings:
    (root / "archive").mkdir()
    keywords = "".join(f'[[keywords]]\nname = "{k}"\n\n' for k in KEYWORDS)
    path = root / "settings.toml"
    path.write_text(
        SETTINGS.format(
            keywords=keywords,
            templates=REPO / "templates",
            port=port,
            connections=connections,
        )
    )
    return load_settings(path)


class Sink:
    """The discarding SMTP server, in a child process (smtp_sink.py)."""

    def __init__(self, lean: bool = False):
        self.lean = lean

    def __enter__(self) -> Sink:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("smtp_sink.py"))]
            + (["--lean"] if self.lean else []),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())
        self.accepted = (0, 0)
        return self

    def __exit__(self, *exc: object) -> None:
        out, _ = self.process.communicate(timeout=30)
        messages, size = out.split()
        self.accepted = (int(messages), int(size))

    def cpu_seconds(self) -> float | None:
        """CPU time the server has used so far (Linux /proc), or None elsewhere."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuShares:
    """Which side a sending run was bound by: the CPU seconds this process and the
    server each used, against the wall time (on 2 cores they also compete)."""

    def __init__(self, sink: Sink):
        self.sink = sink

    def __enter__(self) -> CpuShares:
        self.server, self.client = self.sink.cpu_seconds(), time.process_time()
        self.wall = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.client = time.process_time() - self.client
        after = self.sink.cpu_seconds()
        self.server = None if after is None or self.server is None else after - self.server

    def row(self) -> tuple[str, str]:
        server = "?" if self.server is None else f"{self.server:.1f}"
        return "  CPU: client, server, wall", f"{self.client:.1f} s, {server} s, {self.wall:.1f} s"


# -- measuring ------------------------------------------------------------------


def rss_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (the peak) of this process from /proc, in MB; where
    there is no /proc, the peak from getrusage (kB on Linux, bytes on macOS)."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(re.search(rf"{field}:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
    except (OSError, AttributeError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def reset_peak() -> bool:
    """Start a new peak-RSS measurement (Linux: clear_refs 5); False if not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def timed(action: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = action()
    return result, time.perf_counter() - started


def send(settings: Settings, items: Iterator[Outbound]) -> int:
    """Through the product's pool (smtp.max_connections workers on one iterator);
    returns how many the server accepted."""
    sent = 0

    def count(outcome: Outcome) -> None:
        nonlocal sent
        if outcome.status != SENT:
            raise RuntimeError(f"the sink refused a message: {outcome.detail}")
        sent += 1

    mailer = Mailer(settings.smtp, settings.digest.sender_address)
    asyncio.run(mailer.send_all(items, count, threading.Event()))
    return sent


@dataclass
class Table:
    """The printed table: rows as they are measured, so a slow run shows progress."""

    rows: list[tuple[str, str]]

    def add(self, name: str, value: str) -> None:
        self.rows.append((name, value))
        print(f"  {name:<46} {value}", flush=True)


@dataclass(frozen=True)
class Prepared:
    """Everyone due a digest, grouped, with each group's mail built (the real path's
    work before sending, done here alone to time each part)."""

    groups: Any
    mails: dict[tuple, MailTemplate]
    secret: bytes
    cycle: int

    def everyone(self) -> list[tuple[tuple, Subscriber]]:
        return [(key, s) for key, members in self.groups.members.items() for s in members]

    def message(self, settings: Settings, key: tuple, subscriber: Subscriber) -> bytes:
        return self.mails[key].message(personal(settings, self.secret, subscriber, self.cycle))


def measure_parts(settings: Settings, store: Store, cycle: int, table: Table) -> Prepared:
    roster, load = timed(lambda: load_subscribers(settings.subscribers.dir, settings.keyword_names))
    table.add(f"load {len(roster.subscribers)} subscriber files", f"{load * 1000:.0f} ms")
    (groups, _, _), plan = timed(lambda: plan_all(settings, store, roster, DAY))
    table.add("plan and group everyone", f"{plan * 1000:.0f} ms")
    renderer = make_renderer(settings)
    rendered, render = timed(
        lambda: {
            key: renderer.render(groups.digests[key], members[0].keywords, DAY)
            for key, members in groups.members.items()
        }
    )
    table.add(
        f"render {len(rendered)} distinct digests",
        f"{render * 1000 / len(rendered):.0f} ms each "
        f"({renderer.renders} jinja2 + premailer passes)",
    )
    mails, prepare = timed(lambda: {key: make_mail(settings, r) for key, r in rendered.items()})
    table.add("  encode each as mail, once", f"{prepare * 1000 / len(mails):.1f} ms each")
    prepared = Prepared(groups, mails, load_or_create_secret(settings.web.secret_file), cycle)
    everyone = prepared.everyone()
    sample = everyone[:: max(1, len(everyone) // 1000)]

    def address_all() -> None:
        for key, subscriber in sample:  # each message dropped at once, as once sent
            prepared.message(settings, key, subscriber)

    _, build = timed(address_all)
    table.add(
        "address one message (headers, personal parts)",
        f"{build * 1e6 / len(sample):.0f} µs ({len(sample)} timed)",
    )
    return prepared


@dataclass(frozen=True)
class Real:
    sent: int
    seconds: float
    peak_mb: float

    @property
    def rate(self) -> float:
        return self.sent / self.seconds


def measure_real(settings: Settings, store: Store, cycle: int, sink: Sink, table: Table) -> Real:
    """(a) `deliver_digests` as a cycle runs it: load, plan, render, send, record."""
    writes, write_seconds = store.writes, store.write_seconds
    baseline = rss_mb("VmRSS")
    exact_peak = reset_peak()
    with CpuShares(sink) as cpu:
        report, seconds = timed(lambda: deliver_digests(settings, store, cycle, today=DAY))
    peak = rss_mb("VmHWM")
    real = Real(report.sent, seconds, peak)
    table.add("real path: deliver_digests", f"{report.sent} msgs in {seconds:.2f} s")
    table.add("  messages/s", f"{real.rate:.0f}")
    table.add(*cpu.row())
    table.add(
        "  distinct digests (each rendered once)",
        f"{report.digests}, {report.renders} jinja2 + premailer passes",
    )
    table.add(
        "  peak RSS during the phase" + ("" if exact_peak else " (whole process)"),
        f"{peak:.0f} MB (at its start: {baseline:.0f} MB)",
    )
    table.add(
        "  store writes in the phase",
        f"{store.writes - writes}, {(store.write_seconds - write_seconds) * 1000:.0f} ms",
    )
    return real


@dataclass
class Naive:
    """(b) jinja2 + premailer (and the encoding) for every one of a sample, then send.
    Run in two halves, just before and just after the real path, so that a machine
    that gets slower or faster during the run moves both sides of the speedup."""

    settings: Settings
    prepared: Prepared
    cycle: int
    sent: int = 0
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.renderer = make_renderer(self.settings)  # one, as a cycle has

    def run(self, part: Sequence[tuple[tuple, Subscriber]]) -> None:
        settings, prepared, renderer = self.settings, self.prepared, self.renderer

        def items() -> Iterator[Outbound]:
            for key, subscriber in part:
                person = personal(settings, prepared.secret, subscriber, self.cycle)
                digest = prepared.groups.digests[key]
                alone = renderer.render(digest, subscriber.keywords, DAY, person)
                yield Outbound(subscriber.email, make_mail(settings, alone).message(person))

        sent, seconds = timed(lambda: send(settings, items()))
        self.sent += sent
        self.seconds += seconds

    @property
    def rate(self) -> float:
        return self.sent / self.seconds


def ceiling_message(settings: Settings, prepared: Prepared, table: Table) -> bytes:
    """A real message of about the mean size (so the ceiling moves the same bytes)."""
    everyone = prepared.everyone()
    sizes = {
        key: len(prepared.message(settings, key, members[0]))
        for key, members in prepared.groups.members.items()
    }
    mean = sum(sizes[key] for key, _ in everyone) / len(everyone)
    table.add("message size, mean over everyone", f"{mean / 1000:.0f} kB")
    key = min(sizes, key=lambda k: abs(sizes[k] - mean))
    return prepared.message(settings, key, prepared.groups.members[key][0])


def measure_ceiling(
    settings: Settings, prepared: Prepared, data: bytes, when: str, sink: Sink, table: Table
) -> float:
    """(c) One pre-built message to everyone over the same pool: sending alone (bound
    by the client or by the server, whichever is slower: `CpuShares` says which)."""
    everyone = prepared.everyone()
    with CpuShares(sink) as cpu:
        sent, seconds = timed(
            lambda: send(settings, (Outbound(s.email, data) for _, s in everyone))
        )
    table.add(f"ceiling {when}: {len(data) / 1000:.0f} kB x {sent}", f"{sent / seconds:.0f} msg/s")
    table.add(*cpu.row())
    return sent / seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "subscribers",
        nargs="?",
        type=int,
        default=int(os.environ.get("BENCH_N", "10000")),
        help="how many subscribers (default: $BENCH_N or 10000)",
    )
    parser.add_argument(
        "--naive-sample", type=int, default=300, help="subscribers the naive path renders (300)"
    )
    parser.add_argument(
        "--store-papers", type=int, default=100_000, help="papers in the diff store (100000)"
    )
    parser.add_argument(
        "--history-papers",
        type=int,
        default=100_000,
        help="papers the old store has taken in, by real cycles (100000)",
    )
    parser.add_argument(
        "--history-rounds",
        type=int,
        default=ROUNDS,
        help=f"measured cycles on each store, young and old alternately ({ROUNDS})",
    )
    parser.add_argument(
        "--history-subscribers",
        type=int,
        default=SUBSCRIBERS,
        help=f"subscribers of both stores, added by `newsletter subscribe` ({SUBSCRIBERS})",
    )
    parser.add_argument(
        "--inbox-mails",
        type=int,
        default=10_000,
        help="mails in the large inbox poll; the small one has a tenth (10000)",
    )
    parser.add_argument(
        "--sending-only",
        action="store_true",
        help="leave out the inbox and the years of history (the summary line ends at diff)",
    )
    parser.add_argument("--connections", type=int, default=4, help="smtp.max_connections (4)")
    parser.add_argument("--seed", type=int, default=5, help="for the scenario's random choices")
    parser.add_argument(
        "--lean-server",
        action="store_true",
        help="the server skips aiosmtpd's MAIL/RCPT address parsing, so that the "
        "ceiling is our client's limit rather than the server's (see smtp_sink.py)",
    )
    args = parser.parse_args(argv)
    if args.subscribers < 15:
        parser.error("at least 15 subscribers: one per keyword combination")

    rng = random.Random(args.seed)
    texts = fixture_texts()
    print(
        f"Daily Papers benchmark: {args.subscribers} subscribers, {len(KEYWORDS)} keywords x "
        f"{PER_KEYWORD} papers ({len(texts)} real abstracts), "
        f"{args.connections} SMTP connections, {os.cpu_count()} cores"
        + (", lean server" if args.lean_server else ""),
        flush=True,
    )
    table = Table([])
    with (
        tempfile.TemporaryDirectory(prefix="daily-papers-bench-") as tmp,
        Sink(args.lean_server) as sink,
    ):
        root = Path(tmp)
        settings = write_settings(root, sink.port, args.connections)
        fetched, first_seen = keyword_papers(texts)
        people = make_people(args.subscribers, rng)
        with Store(settings.store.path) as store:
            fill_store(store, fetched, first_seen)
            write_people(settings, store, people)
            print(people.summary(), flush=True)
            del people
            # The measured cycle starts as cycle.py runs it: begin, then the diff.
            writes, write_seconds = store.writes, store.write_seconds
            cycle = store.cycles.begin()
            with store.batch():
                store.papers.apply_fetch(cycle, seen_by(fetched, first_seen, CYCLE))

            print("the real path's parts, each timed alone:", flush=True)
            prepared = measure_parts(settings, store, cycle, table)
            print("the digest-and-send phase:", flush=True)
            # The ceiling just before and just after the real path; the better of the
            # two counts, so that a busy machine cannot flatter the efficiency.
            data = ceiling_message(settings, prepared, table)
            everyone = prepared.everyone()
            sample = rng.sample(everyone, min(args.naive_sample, len(everyone)))
            naive = Naive(settings, prepared, cycle)
            naive.run(sample[: len(sample) // 2])
            before = measure_ceiling(settings, prepared, data, "before", sink, table)
            real = measure_real(settings, store, cycle, sink, table)
            after = measure_ceiling(settings, prepared, data, "after", sink, table)
            store.cycles.finish(cycle)
            table.add(
                "store writes in the whole cycle",
                f"{store.writes - writes} (begin, diff, mail, end), "
                f"{(store.write_seconds - write_seconds) * 1000:.0f} ms",
            )
            naive.run(sample[len(sample) // 2 :])
            table.add(
                f"naive path: render each of {naive.sent} (2 halves)",
                f"{naive.rate:.1f} msg/s",
            )

        print("the store:", flush=True)
        measure_recording(root / "recording", args.subscribers, table)
        diff_ms = measure_diff(root / "big", settings, texts, args.store_papers, table)

        # Their replies and digests go to a sink of their own, so that the count of
        # the digest phase's messages above stays exact.
        history_summary = ""
        with contextlib.nullcontext() if args.sending_only else Sink() as other:
            if other is not None:
                print("the inbox:", flush=True)
                measure_inbox(root / "inbox", args.inbox_mails, other.port, table)
                print("years of history, through `newsletter run --once`:", flush=True)
                history = measure_history(
                    root / "history",
                    texts,
                    args.history_papers,
                    other.port,
                    table,
                    rounds=args.history_rounds,
                    subscribers=args.history_subscribers,
                )
                history_summary = "; " + history.summary()

    accepted, accepted_bytes = sink.accepted
    ceiling = max(before, after)
    expected = 3 * real.sent + min(args.naive_sample, real.sent)
    table.add("sink accepted", f"{accepted} of {expected} messages, {accepted_bytes / 1e6:.0f} MB")
    print(
        f"bench: {real.sent} msgs in {real.seconds:.2f} s, {real.rate:.0f} msg/s; "
        f"naive {naive.rate:.1f} msg/s; speedup {real.rate / naive.rate:.1f}; "
        f"ceiling {ceiling:.0f} msg/s; efficiency {real.rate / ceiling:.2f}; "
        f"peak RSS {real.peak_mb:.0f} MB; "
        f"diff {FETCHED} vs {args.store_papers // 1000}k {diff_ms:.0f} ms" + history_summary
    )
    return 0 if accepted == expected else 1


def measure_recording(folder: Path, count: int, table: Table) -> None:
    """Recording `count` accepted messages as the real path does, on a store of its own:
    the journal line each costs, with the journal fsynced in groups (the default
    `[store] journal_sync_ms`) and after every line (0), and the store rewrites."""
    for sync_ms, how in ((None, "fsync per 50 ms"), (0.0, "fsync per line")):
        options = {} if sync_ms is None else {"journal_sync_ms": sync_ms}
        with Store(folder / how.replace(" ", "-") / "store.json", **options) as store:
            started = time.perf_counter()
            for i in range(count):
                store.deliveries.record_sent(
                    f"reader{i:05d}@example.edu", "2025-01-01T09:00:00+00:00", 1
                )
            store.deliveries.flush()
            seconds = time.perf_counter() - started
            table.add(
                f"record {count} deliveries: journal, {how}",
                f"{(seconds - store.write_seconds) * 1e6 / count:.1f} µs a message, "
                f"{store.journal.syncs} fsyncs",
            )
    table.add("  and store rewrites", f"{store.writes}, {store.write_seconds * 1000:.0f} ms")


def measure_diff(
    folder: Path, settings: Settings, texts: Sequence[Text], size: int, table: Table
) -> float:
    """Diff 400 fetched papers (70% known, 15% revised, 15% new) against a store that has
    seen `size`, as cycles leave it: the working set in full, the rest as seen ids. The
    diff reads the seen ids (a new paper may be an old one) and writes the working set,
    as in a cycle."""
    newest = datetime(2025, 3, 7, 12, tzinfo=UTC)
    path = folder / "store.json"
    per_keyword = size // len(KEYWORDS)
    stored = {
        keyword: [
            make_paper(
                f"{2503 - n // 90_000 - 100 * k:04d}.{n % 90_000 + 10_000:05d}",
                texts[(k * per_keyword + n) % len(texts)],
                newest - timedelta(minutes=n + k),
            )
            for n in range(per_keyword)
        ]
        for k, keyword in enumerate(KEYWORDS)
    }
    with Store(path) as store:  # one cycle took them all in, and pruned as cycles do
        number = store.cycles.begin()
        store.papers.apply_fetch(number, stored)
        keep = papers_to_keep(settings, store.papers.stored(), (), pages_written=True)
        store.papers.prune(keep)
        store.papers.release_seen()
        store.cycles.finish(number)
    fetched = {}
    for k, keyword in enumerate(KEYWORDS):
        known = stored[keyword][: FETCHED // len(KEYWORDS)]
        papers = []
        for n, paper in enumerate(known):
            if n % 100 < 15:  # new
                papers.append(replace(paper, id=f"2504.{1000 * k + n:05d}"))
            elif n % 100 < 30:  # a new version of a known paper
                papers.append(replace(paper, version=2, updated=paper.updated + timedelta(days=1)))
            else:
                papers.append(paper)
        fetched[keyword] = papers
    del stored
    store, open_seconds = timed(lambda: Store(path))
    with store:
        size_mb = sum(p.stat().st_size for p in store.files()) / 1e6
        full = store.papers.count()
        table.add(
            f"open a store that has seen {size // 1000}k papers",
            f"{open_seconds * 1000:.0f} ms ({full} in full, the rest as seen ids; "
            f"{size_mb:.1f} MB)",
        )
        writes = store.writes
        number = store.cycles.begin()
        written = store.papers.database.write_seconds
        diff, diff_seconds = timed(lambda: store.papers.apply_fetch(number, fetched))
        write_seconds = store.papers.database.write_seconds - written
        store.cycles.finish(number)
        new = sum(d.new for d in diff.values())
        updated = sum(d.updated for d in diff.values())
        table.add(
            f"diff {FETCHED} fetched vs {size // 1000}k stored",
            f"{diff_seconds * 1000:.0f} ms ({new} new, {updated} updated; "
            "with reading the seen ids and writing the working set)",
        )
        table.add(
            f"  its write of the working set ({store.papers.count()} papers)",
            f"{write_seconds * 1000:.0f} ms",
        )
        table.add("  store writes in that cycle", f"{store.writes - writes}")
    return diff_seconds * 1000


if __name__ == "__main__":
    sys.exit(main())
