"""docs/reliability.md stays true: every test it names exists and is collected."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import REPO


def test_every_row_names_a_test_that_runs():
    text = (REPO / "docs" / "reliability.md").read_text()
    named = set(re.findall(r"`(tests/[\w/]+\.py::\w+(?:\[[^\]]+\])?)`", text))
    assert len(named) > 40
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=REPO,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    ids = {line.strip() for line in collected if "::" in line}
    functions = {i.split("[")[0] for i in ids}
    missing = sorted(n for n in named if n not in (ids if "[" in n else functions))
    assert not missing, f"docs/reliability.md names tests that do not exist: {missing}"
