"""Fixtures that start the real parts: the fake arXiv server, settings on disk, the CLI."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from arxiv_server import FakeArxiv
from smtp_server import SmtpServer

from newsletter.cli import main
from newsletter.config import Settings, load_settings
from newsletter.subscribers import Subscriber, save_subscriber

REPO = Path(__file__).resolve().parent.parent
SEED_KEYWORDS = ["Hallucination", "MLLM", "Reasoning", "Reward Model"]


def settings_dict(
    root: Path, api_url: str, smtp_port: int = 25, keywords: list[str] | None = None
) -> dict[str, Any]:
    """Settings for a test: fast arXiv pacing and SMTP retries, everything under `root`."""
    (root / "archive").mkdir(exist_ok=True)
    return {
        "arxiv": {
            "api_url": api_url,
            "delay_seconds": 0,
            "timeout_seconds": 5,
            "retries": 1,
        },
        "keywords": [{"name": n} for n in (keywords or ["Hallucination", "MLLM"])],
        "store": {"path": str(root / "state" / "newsletter.json")},
        "archive": {"path": str(root / "archive" / "README.md"), "max_papers": 100},
        "subscribers": {"dir": str(root / "subscribers")},
        "digest": {"from": "Daily Papers <papers@example.org>"},  # the shipped templates
        "smtp": {
            "host": "127.0.0.1",
            "port": smtp_port,
            "timeout_seconds": 5,
            "retries": 1,
            "retry_delay_seconds": 0.05,
        },
        "web": {"secret_file": str(root / "state" / "secret.key")},
    }


@pytest.fixture
def arxiv_server() -> Iterator[FakeArxiv]:
    server = FakeArxiv()
    yield server
    server.close()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    yield server
    server.stop()


@pytest.fixture
def make_settings(
    tmp_path: Path, arxiv_server: FakeArxiv, smtp_server: SmtpServer
) -> Callable[..., Settings]:
    """make_settings(**changes) writes settings.toml in tmp_path and loads it.

    `changes` maps a section to the keys to change, e.g. archive={"max_papers": 3};
    keywords=[...] replaces the keyword list.
    """

    def make(keywords: list[str] | list[dict[str, Any]] | None = None, **changes: Any) -> Settings:
        data = settings_dict(tmp_path, arxiv_server.url, smtp_server.port)
        if keywords is not None:
            data["keywords"] = [k if isinstance(k, dict) else {"name": k} for k in keywords]
        for section, values in changes.items():
            data.setdefault(section, {}).update(values)
        path = tmp_path / "settings.toml"
        path.write_text(tomli_w.dumps(data))
        return load_settings(path)

    return make


def cli_command(*args: str) -> list[str]:
    """The real command line: `python -m newsletter ARGS` (this checkout's package)."""
    return [sys.executable, "-m", "newsletter", *args]


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), **(extra or {})}


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the command as a subprocess and wait for it."""
    return subprocess.run(
        cli_command(*args), capture_output=True, text=True, env=cli_env(env), timeout=timeout
    )


def run_main(*args: str) -> int:
    """The command line in this process, faster than `run_cli`; the logging it sets up on
    pytest's captured stderr is put back, so no later test logs to a closed stream."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        return main(list(args))
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


def subscribe(
    settings: Settings, email: str, *keywords: str, name: str | None = None
) -> Subscriber:
    subscriber, _ = save_subscriber(
        settings.subscribers.dir, email, keywords, settings.keyword_names, name=name
    )
    return subscriber
