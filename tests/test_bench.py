"""`make bench` runs end to end; its speed is measured by hand, never asserted here."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import REPO

NUMBER = r"\d+(?:\.\d+)?"
SENDING = (
    rf"bench: \d+ msgs in {NUMBER} s, {NUMBER} msg/s; naive {NUMBER} msg/s; "
    rf"speedup {NUMBER}; ceiling {NUMBER} msg/s; efficiency {NUMBER}; "
    rf"peak RSS {NUMBER} MB; diff 400 vs 1k {NUMBER} ms"
)
HISTORY = (
    rf"; history 2k: cycle {NUMBER} s vs young {NUMBER} s, ratio {NUMBER}; "
    rf"state {NUMBER} MB; peak RSS {NUMBER} MB"
)
SUMMARY = {"aiosmtpd": re.compile(SENDING + HISTORY), "lean": re.compile(SENDING)}
SMALL = ["200", "--naive-sample", "10", "--store-papers", "1000", "--inbox-mails", "200"]
SMALL += ["--history-papers", "2000", "--history-rounds", "1", "--history-subscribers", "3"]


def test_short_benchmark_runs_end_with_their_summary_line(tmp_path):
    # Both servers at once: most of a run is waiting on its own child processes, and
    # nothing here is timed, so the two share the machine and the test takes half as long.
    runs = {}
    # The lean server's run measures the sending alone: the rest would be the same again.
    for name, server in (("aiosmtpd", []), ("lean", ["--lean-server", "--sending-only"])):
        (tmp_path / name).mkdir()
        runs[name] = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "bench.py"), *SMALL, *server],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path / name,
        )
    try:
        outputs = {name: run.communicate(timeout=180) for name, run in runs.items()}
    finally:
        for run in runs.values():
            if run.poll() is None:
                run.kill()
                run.wait()
    for name, (stdout, stderr) in outputs.items():
        assert runs[name].returncode == 0, f"{name}: {stderr}"
        *table, last = stdout.splitlines()
        assert SUMMARY[name].fullmatch(last), f"{name}: {last}"
        assert any("real path: deliver_digests" in row for row in table)
        assert sum("CPU: client, server, wall" in row for row in table) == 3
        assert "sink accepted                                  " in stdout
        if name == "aiosmtpd":
            assert any(row.startswith("  inbox: 200 mails in one poll ") for row in table)
            assert any("daemon idle after a cycle" in row for row in table)
