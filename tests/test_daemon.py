"""The daemon: schedule, signals, single instance, systemd notify, status."""

from __future__ import annotations

import json
import logging
import os
import pty
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import tomllib
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import tomli_w
from arxiv_server import entry
from conftest import REPO, cli_command, cli_env, run_cli, subscribe
from mails import INBOX, confirmation_code, deliver, mail, make_maildir
from smtp_server import free_port

from newsletter.clock import missed_since, next_due, previous_due
from newsletter.config import ScheduleSettings
from newsletter.daemon import Daemon
from newsletter.logs import Progress, setup_logging
from newsletter.store import Store
from newsletter.systemd_notify import Notifier
from newsletter.tokens import load_secret, token


class Process:
    """`newsletter run` as a subprocess, its stderr collected by a thread."""

    def __init__(self, settings, env: dict[str, str] | None = None, stderr: int | None = None):
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            cli_command("--settings", str(settings.file), "run"),
            stdout=subprocess.DEVNULL,
            stderr=stderr if stderr is not None else subprocess.PIPE,
            text=True,
            env=cli_env(env),
        )
        if self.proc.stderr is not None:
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_for(self, pattern: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if re.search(pattern, line):
                    return line
            if self.proc.poll() is not None and not any(re.search(pattern, x) for x in self.lines):
                break
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(self.lines)}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def processes():
    started: list[Process] = []
    yield started
    for process in started:
        process.kill()


def start(processes, settings, **kwargs) -> Process:
    process = Process(settings, **kwargs)
    processes.append(process)
    return process


# -- the schedule's clock (pure) -------------------------------------------------


def test_times_are_read_in_the_configured_zone():
    tokyo = ScheduleSettings(times=("07:00", "18:30"), timezone="Asia/Tokyo")
    now = datetime(2025, 3, 7, 0, 0, tzinfo=UTC)  # 09:00 in Tokyo
    assert previous_due(tokyo, now) == datetime(2025, 3, 6, 22, 0, tzinfo=UTC)
    assert next_due(tokyo, now) == datetime(2025, 3, 7, 9, 30, tzinfo=UTC)


def test_daylight_saving_changes_the_utc_time_not_the_local_one():
    berlin = ScheduleSettings(times=("07:00",), timezone="Europe/Berlin")
    assert next_due(berlin, datetime(2025, 3, 20, 12, tzinfo=UTC)).hour == 6  # CET, UTC+1
    assert next_due(berlin, datetime(2025, 3, 29, 12, tzinfo=UTC)).hour == 5  # CEST, UTC+2


def test_catch_up_only_when_a_scheduled_time_passed_since_the_last_cycle():
    daily = ScheduleSettings(times=("07:00",), timezone="UTC")
    now = datetime(2025, 3, 7, 10, 0, tzinfo=UTC)
    assert not missed_since(daily, datetime(2025, 3, 7, 7, 5, tzinfo=UTC), now)
    assert missed_since(daily, datetime(2025, 3, 6, 7, 5, tzinfo=UTC), now)
    assert not missed_since(daily, None, now)


# -- the loop, in process ----------------------------------------------------------


def test_non_utc_schedule_becomes_the_right_local_next_run(make_settings):
    settings = make_settings(schedule={"times": ["07:00"], "timezone": "Asia/Tokyo"})
    daemon = Daemon(settings)
    daemon.schedule_jobs()
    local = daemon.next_run()
    assert local is not None
    tokyo = local.astimezone().astimezone(ZoneInfo("Asia/Tokyo"))
    assert (tokyo.hour, tokyo.minute) == (7, 0)
    assert timedelta(0) < local.astimezone() - datetime.now().astimezone() <= timedelta(days=1)


def test_after_the_clock_steps_back_the_next_run_follows_the_clock(make_settings, caplog):
    settings = make_settings(schedule={"times": ["07:00", "19:00"], "timezone": "Europe/Berlin"})
    daemon = Daemon(settings)
    daemon.schedule_jobs()
    expected = next_due(settings.schedule)
    assert daemon.next_run().astimezone(UTC) == expected
    # Started with the clock two days ahead, `schedule` planned two days out; the clock
    # was then corrected. That is the state a backward step leaves:
    for job in daemon.cycle_jobs:
        job.next_run += timedelta(days=2)
    daemon.follow_clock()
    assert daemon.next_run().astimezone(UTC) == expected
    assert "the clock moved back" in caplog.text
    # Agreeing, nothing is re-planned.
    caplog.clear()
    daemon.follow_clock()
    assert "the clock moved back" not in caplog.text


def test_a_failing_cycle_is_recorded_and_rescheduled(make_settings, arxiv_server, tmp_path):
    broken = tmp_path / "broken-templates"
    broken.mkdir()
    (broken / "digest.html.j2").write_text("{% if %}\n")  # rendering the digest fails
    settings = make_settings(keywords=["MLLM"], digest={"templates": str(broken)})
    subscribe(settings, "ann@example.org", "MLLM")
    arxiv_server.add(entry("2502.00001", "MLLM one"))
    daemon = Daemon(settings)
    daemon.store = Store(settings.store.path)
    try:
        daemon.schedule_jobs()
        (job,) = daemon.scheduler.jobs
        job.next_run = datetime.now() - timedelta(seconds=1)
        daemon.scheduler.run_pending()  # the cycle raises TemplateSyntaxError inside
        assert job.next_run > datetime.now(), "rescheduled despite the failure"
        (cycle,) = daemon.store.cycles.all()
        assert cycle["error"].startswith("TemplateSyntaxError")
        assert daemon.store.papers.count() == 1, "what was fetched before the failure is kept"
    finally:
        daemon.store.close()


def test_a_run_due_while_a_cycle_was_running_is_skipped(make_settings, arxiv_server):
    settings = make_settings(keywords=["MLLM"])
    daemon = Daemon(settings)
    daemon.store = Store(settings.store.path)
    try:
        daemon.schedule_jobs()
        (job,) = daemon.scheduler.jobs
        due = datetime.now() - timedelta(seconds=1)
        job.next_run = due
        daemon.last_cycle_started = (datetime.now() - timedelta(seconds=5)).astimezone(UTC)
        daemon.last_cycle_finished = datetime.now(UTC)
        daemon.scheduler.run_pending()
        assert daemon.store.cycles.all() == [] and daemon.cycles_run == 0
        assert job.next_run > datetime.now()
    finally:
        daemon.store.close()


# -- the process --------------------------------------------------------------------


def soon(seconds: float, zone: str) -> str:
    return (datetime.now(ZoneInfo(zone)) + timedelta(seconds=seconds)).strftime("%H:%M:%S")


def test_runs_on_schedule_in_a_non_utc_zone_and_stops_on_sigterm(
    make_settings, arxiv_server, processes
):
    zone = "America/New_York"
    settings = make_settings(
        keywords=["MLLM"], schedule={"times": ["00:00"], "timezone": zone, "run_on_start": False}
    )
    arxiv_server.add(entry("2502.00001", "MLLM one"))
    daemon = start(processes, settings)
    daemon.wait_for(r"running: cycles at 00:00 America/New_York")
    # Now that it runs, move the schedule to two seconds from now (and reload it).
    text = settings.file.read_text().replace('"00:00"', f'"{soon(2, zone)}"')
    settings.file.write_text(text)
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_for(r"reloaded .* cycles at \d\d:\d\d:\d\d America/New_York")
    assert arxiv_server.requests == []
    daemon.wait_for(r"cycle 1: keywords 1 fetched", timeout=20)
    assert len(arxiv_server.requests) == 1
    assert daemon.stop() == 0
    with Store(settings.store.path, lock=False) as store:
        assert store.papers.count() == 1


def test_daemon_survives_a_failing_cycle_and_the_next_one_runs(
    make_settings, arxiv_server, smtp_server, processes, tmp_path
):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "digest.html.j2").write_text("{% if %}\n")  # rendering the digest fails
    settings = make_settings(keywords=["MLLM"], digest={"templates": str(templates)})
    subscribe(settings, "ann@example.org", "MLLM")
    arxiv_server.add(entry("2502.00001", "MLLM one"))
    daemon = start(processes, settings)
    daemon.wait_for("the cycle failed; the daemon goes on")
    daemon.wait_for("TemplateSyntaxError")  # the traceback is in the log
    assert daemon.proc.poll() is None

    for name in ("digest.html.j2", "digest.txt.j2", "digest.css"):
        shutil.copy(REPO / "templates" / name, templates / name)
    text = settings.file.read_text().replace("[schedule]\n", "")
    settings.file.write_text(text + f'\n[schedule]\ntimes = ["{soon(2, "UTC")}"]\n')
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_for(r"cycle 2: keywords 1 fetched", timeout=20)
    assert [m.to for m in smtp_server.messages] == ["ann@example.org"]
    assert daemon.stop() == 0


def test_second_instance_exits_at_once_naming_the_pid(make_settings, processes):
    settings = make_settings(schedule={"run_on_start": False})
    daemon = start(processes, settings)
    daemon.wait_for("running: cycles at")
    second = run_cli("--settings", str(settings.file), "run", timeout=10)
    assert second.returncode == 1
    assert f"pid {daemon.proc.pid}" in second.stderr and second.stderr.count("\n") == 1
    once = run_cli("--settings", str(settings.file), "run", "--once", timeout=10)
    assert once.returncode == 1 and "another newsletter process" in once.stderr
    assert daemon.stop() == 0


def test_deleting_the_lock_file_does_not_let_a_second_instance_in(make_settings, processes):
    settings = make_settings(schedule={"run_on_start": False})
    daemon = start(processes, settings)
    daemon.wait_for("running: cycles at")
    lock = settings.store.path.with_name("newsletter.json.lock")
    lock.unlink()
    once = run_cli("--settings", str(settings.file), "run", "--once", timeout=10)
    assert once.returncode == 1, once.stdout
    assert once.stderr == (
        f"{lock}: another newsletter process is using this store (pid unknown)\n"
    )
    assert daemon.proc.poll() is None
    assert daemon.stop() == 0


def test_a_daemon_whose_store_folder_is_replaced_stops_writing(make_settings, processes, tmp_path):
    make_maildir(tmp_path / "Maildir")
    settings = make_settings(
        schedule={"run_on_start": False},
        inbox={"address": INBOX, "maildir": str(tmp_path / "Maildir"), "poll_seconds": 1},
    )
    daemon = start(processes, settings)
    daemon.wait_for("running: cycles at")
    state = settings.store.path.parent
    state.rename(tmp_path / "moved-away")
    state.mkdir()  # now another instance could lock this one
    daemon.wait_for("the store's folder was removed or replaced", timeout=10)
    assert daemon.proc.wait(10) == 1
    assert list(state.iterdir()) == [], "nothing written beside another instance"


def test_sighup_reloads_settings_and_keeps_them_when_invalid(make_settings, processes):
    settings = make_settings(schedule={"run_on_start": False})
    daemon = start(processes, settings)
    daemon.wait_for("running: cycles at")
    data = tomllib.loads(settings.file.read_text())

    data["keywords"].append({"name": "Reasoning"})
    settings.file.write_text(tomli_w.dumps(data))
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_for(r"reloaded .*settings.toml: 3 keywords")

    data["arxiv"]["delay_seconds"] = "fast"
    settings.file.write_text(tomli_w.dumps(data))
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_for(
        r"reload refused, keeping the previous settings: .*delay_seconds must be a number"
    )
    assert daemon.proc.poll() is None
    assert daemon.stop() == 0


def test_sigterm_mid_send_exits_0_with_deliveries_saved(
    make_settings, arxiv_server, smtp_server, processes
):
    settings = make_settings(keywords=["MLLM"], smtp={"max_connections": 1})
    for n in range(8):
        subscribe(settings, f"p{n}@example.org", "MLLM")
    arxiv_server.add(entry("2502.00001", "MLLM one"))
    smtp_server.delay = 0.4
    daemon = start(processes, settings)
    smtp_server.wait_for(2)
    started = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - started < 5
    accepted = {m.to for m in smtp_server.messages}
    assert 2 <= len(accepted) < 8
    with Store(settings.store.path, lock=False) as store:
        recorded = {k for k, d in store.deliveries.all().items() if d.last_cycle == 1}
    assert recorded == accepted, "every accepted message was recorded, nothing else"

    smtp_server.delay = 0
    again = run_cli("--settings", str(settings.file), "run", "--once")
    assert again.returncode == 0, again.stdout + again.stderr
    received = sorted(m.to for m in smtp_server.messages)
    assert received == sorted(f"p{n}@example.org" for n in range(8)), "each exactly once"


def test_stop_deadline_exits_even_when_a_request_hangs(make_settings, arxiv_server, processes):
    settings = make_settings(
        keywords=["MLLM"],
        arxiv={"timeout_seconds": 30},
        schedule={"stop_timeout_seconds": 1},
    )
    arxiv_server.fail("stall", seconds=20, times=None)
    daemon = start(processes, settings)
    deadline = time.monotonic() + 15
    while not arxiv_server.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(arxiv_server.requests) == 1
    started = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - started < 4
    daemon.wait_for("exiting now")


class NotifySocket:
    """What systemd listens on ($NOTIFY_SOCKET): the datagrams the daemon sends, timed."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.received: list[tuple[float, str]] = []
        self.done = threading.Event()
        self.listener = threading.Thread(target=self._listen, daemon=True)
        self.listener.start()

    def _listen(self) -> None:
        while not self.done.is_set():
            try:
                self.received.append((time.monotonic(), self.sock.recv(4096).decode()))
            except TimeoutError:
                continue

    def pings(self, start: float, end: float) -> list[float]:
        return [t for t, m in self.received if m == "WATCHDOG=1" and start < t < end]

    def close(self) -> None:
        self.done.set()
        self.listener.join()
        self.sock.close()


def test_notify_protocol_ready_watchdog_during_a_slow_cycle_and_stopping(
    make_settings, arxiv_server, processes, tmp_path
):
    settings = make_settings(keywords=["MLLM"])
    arxiv_server.add(entry("2502.00001", "MLLM one"))
    arxiv_server.fail("stall", seconds=1.5)
    notify = NotifySocket(tmp_path / "notify.sock")
    daemon = start(
        processes, settings, env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "400000"}
    )
    daemon.wait_for(r"cycle 1: keywords 1 fetched")
    assert daemon.stop() == 0
    notify.close()

    received = notify.received
    messages = [m for _, m in received]
    ready = next(i for i, m in enumerate(messages) if "READY=1" in m)
    cycle_start = next(t for t, m in received if "STATUS=running a cycle" in m)
    cycle_end = next(t for t, m in received if "STATUS=cycle 1:" in m)
    pings = notify.pings(cycle_start, cycle_end)
    assert ready < messages.index(next(m for m in messages if "STATUS=running a cycle" in m))
    assert len(pings) >= 4, f"pings at half of WATCHDOG_USEC while the cycle ran: {messages}"
    assert "STOPPING=1" in messages
    assert any("new papers" in m for m in messages if m.startswith("STATUS=cycle 1"))


def test_a_stuck_main_loop_stops_the_watchdog_pings(
    make_settings, arxiv_server, processes, tmp_path
):
    # Every wait has a 1 s timeout, so the daemon counts as stuck after 2 s without progress.
    settings = make_settings(
        keywords=["MLLM"], arxiv={"timeout_seconds": 1}, smtp={"timeout_seconds": 1}
    )
    arxiv_server.add(entry("2502.00001", "MLLM one"))
    settings.subscribers.dir.mkdir()
    stuck = settings.subscribers.dir / "stuck.toml"
    os.mkfifo(stuck)  # opening it blocks until someone writes: a hung file system, say
    notify = NotifySocket(tmp_path / "notify.sock")
    daemon = start(
        processes, settings, env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "400000"}
    )
    try:
        daemon.wait_for(r"no progress for \d+ s: the daemon seems stuck", timeout=20)
        silent_from = time.monotonic()
        time.sleep(1.5)
        assert notify.pings(silent_from, time.monotonic()) == [], "no pings while stuck"
        assert notify.pings(0, silent_from), "pings until it counted as stuck"
        with open(stuck, "wb"):  # the file system answers again: the cycle goes on
            pass
        daemon.wait_for(r"cycle 1: keywords 1 fetched", timeout=20)
        # Then it waits for its next run, longer than the 2 s limit: idle is no hang.
        resumed = time.monotonic()
        time.sleep(3)
        pings = notify.pings(resumed, time.monotonic())
        assert len(pings) >= 10, f"pings go on while it waits for the next run: {pings}"
        assert daemon.stop() == 0
    finally:
        notify.close()


def test_notifier_does_nothing_without_notify_socket():
    notifier = Notifier(environ={})
    assert not notifier.enabled
    notifier.ready("x")  # no socket, no error
    assert notifier.start_watchdog(threading.Event()) is None


def test_journal_logging_has_priorities_and_no_timestamps(tmp_path, monkeypatch):
    log_file = (tmp_path / "log").open("w")
    stat = os.fstat(log_file.fileno())
    monkeypatch.setenv("JOURNAL_STREAM", f"{stat.st_dev}:{stat.st_ino}")
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("info", stream=log_file)
        logging.getLogger("newsletter.test").warning("disk nearly full")
        logging.getLogger("newsletter.test").info("hello")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        log_file.close()
    assert (tmp_path / "log").read_text() == (
        "<4>newsletter.test: disk nearly full\n<6>newsletter.test: hello\n"
    )


def test_status_works_while_the_daemon_runs(make_settings, arxiv_server, processes):
    settings = make_settings(keywords=["MLLM"], schedule={"times": ["07:00"], "timezone": "UTC"})
    subscribe(settings, "ann@example.org", "MLLM")
    subscribe(settings, "ben@example.org", "MLLM")
    arxiv_server.add(entry("2502.00001", "MLLM one"))
    arxiv_server.fail("status", status=400, phrase="MLLM")
    daemon = start(processes, settings)
    daemon.wait_for(r"cycle 1: keywords 0 fetched, 1 failed")
    result = run_cli("--settings", str(settings.file), "status")
    assert result.returncode == 0, result.stderr
    assert f"daemon: running (pid {daemon.proc.pid})" in result.stdout
    assert "subscribers: 2 (0 active, 2 new, 0 bouncing; 0 files skipped)" in result.stdout
    assert "MLLM: fetched 0, new 0; error: HTTP 400" in result.stdout
    data = json.loads(run_cli("--settings", str(settings.file), "status", "--json").stdout)
    assert data["cycles"][0]["keywords"]["MLLM"]["error"].startswith("HTTP 400")
    assert datetime.fromisoformat(data["next_run"]).time().strftime("%H:%M") == "07:00"
    assert data["daemon_pid"] == daemon.proc.pid
    assert daemon.stop() == 0
    stopped = run_cli("--settings", str(settings.file), "status")
    assert "daemon: not running" in stopped.stdout


def read_all(master: int) -> str:
    """Everything written to a pty whose other end is closed: one read may return only part."""
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the other end is closed and all was read
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return b"".join(chunks).decode()


def test_progress_line_on_a_terminal_is_cleared_before_log_lines():
    master, slave = pty.openpty()
    stream = os.fdopen(slave, "w")
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        progress = setup_logging("info", stream=stream)
        assert progress.enabled
        progress("fetching MLLM (1/4 keywords)")
        logging.getLogger("newsletter.test").info("arXiv: MLLM: 3 papers")
        progress("mail: 10 sent, 10/20 done")
        progress.clear()
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        stream.close()
    output = read_all(master)
    assert "\r\x1b[Kfetching MLLM (1/4 keywords)\r\x1b[K" in output
    assert output.index("fetching MLLM") < output.index("arXiv: MLLM: 3 papers")
    assert "mail: 10 sent, 10/20 done\r\x1b[K" in output


def test_no_progress_when_not_a_terminal(tmp_path):
    with (tmp_path / "out").open("w") as stream:
        progress = Progress(stream)
        progress("anything")
    assert (tmp_path / "out").read_text() == ""


def test_daemon_reads_the_inbox_between_cycles_and_serves_unsubscribe_pages(
    make_settings, smtp_server, processes, tmp_path
):
    box = make_maildir(tmp_path / "Maildir")
    port = free_port()
    settings = make_settings(
        keywords=["MLLM"],
        schedule={"run_on_start": False},
        inbox={"address": INBOX, "maildir": str(tmp_path / "Maildir"), "poll_seconds": 1},
        web={"listen": f"127.0.0.1:{port}", "public_url": "https://papers.example.org"},
    )
    daemon = start(processes, settings)
    # The start line names the next cycle, not the inbox's next read (one second away).
    due = next_due(settings.schedule)
    daemon.wait_for(
        rf"running: cycles at 07:00 UTC; next cycle {due:%Y-%m-%d %H:%M} UTC; "
        r"inbox read every 1 s$"
    )
    deliver(box, mail("Ann <ann@example.org>", subject="subscribe MLLM"))
    smtp_server.wait_for(1)
    (question,) = smtp_server.to("ann@example.org")
    assert confirmation_code(question)
    assert daemon.proc.poll() is None

    ben = subscribe(settings, "ben@example.org", "MLLM")
    good = token(load_secret(settings.web.secret_file), ben.email, ben.created)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/unsubscribe/{good}", timeout=5) as page:
        assert page.status == 200 and "ben@example.org" in page.read().decode()
    with pytest.raises(urllib.error.HTTPError) as forged:
        fake = ("b" if good[0] == "a" else "a") + good[1:]
        urllib.request.urlopen(f"http://127.0.0.1:{port}/unsubscribe/{fake}", timeout=5)
    assert forged.value.code == 404

    # A new secret, made on purpose and reloaded: the web thread signs as the cycles do.
    made = run_cli("--settings", str(settings.file), "new-secret", "--replace")
    assert made.returncode == 0 and "no longer works" in made.stdout, made.stderr
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_for("a new token secret is in use")
    new = token(load_secret(settings.web.secret_file), ben.email, ben.created)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/unsubscribe/{new}", timeout=5) as page:
        assert page.status == 200 and "ben@example.org" in page.read().decode()
    with pytest.raises(urllib.error.HTTPError) as old:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/unsubscribe/{good}", timeout=5)
    assert old.value.code == 404
    good = new
    assert daemon.stop() == 0
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/unsubscribe/{good}", timeout=2)
