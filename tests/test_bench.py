"""`make bench` runs end to end; its speed is measured by hand, never asserted here."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import REPO

NUMBER = r"\d+(?:\.\d+)?"
SUMMARY = re.compile(
    rf"bench: 200 msgs in {NUMBER} s, {NUMBER} msg/s; naive {NUMBER} msg/s; "
    rf"speedup {NUMBER}; ceiling {NUMBER} msg/s; efficiency {NUMBER}; "
    rf"peak RSS {NUMBER} MB; diff 400 vs 1k {NUMBER} ms"
)


@pytest.mark.parametrize("server", [[], ["--lean-server"]], ids=["aiosmtpd", "lean"])
def test_a_short_benchmark_run_ends_with_its_summary_line(tmp_path, server):
    command = [sys.executable, str(REPO / "bench" / "bench.py"), "200", *server]
    command += ["--naive-sample", "10", "--store-papers", "1000"]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False
    )
    assert result.returncode == 0, result.stderr
    *table, last = result.stdout.splitlines()
    assert SUMMARY.fullmatch(last), last
    assert any("real path: deliver_digests" in row for row in table)
    assert sum("CPU: client, server, wall" in row for row in table) == 3
    assert "sink accepted                                  " in result.stdout
