"""As an admin runs it: a wheel installed (not editable) into a fresh virtualenv outside the
checkout, its `newsletter` command run from another folder, on settings in a third folder
with only relative paths. Our own suite once passed while every admin's first cycle crashed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
import tomli_w
from arxiv_server import entry
from conftest import REPO


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with the package installed from a wheel built from the checkout; its
    dependencies come from the test venv's site-packages (never the checkout: a .pth path
    is not a site folder, so the editable install's own .pth is not read)."""
    root = tmp_path_factory.mktemp("install")
    source = root / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for name in ("newsletter", "templates"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    # --no-build-isolation: setuptools from the test venv, no download.
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(root / "dist")]
    subprocess.run([*build, str(source)], check=True, capture_output=True)
    venv = root / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
    (wheel,) = (root / "dist").glob("*.whl")
    python = venv / "bin" / "python"
    install = [*pip, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)]
    subprocess.run(install, check=True, capture_output=True)
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def test_a_wheel_outside_the_checkout_runs_a_cycle_on_relative_settings(
    installed, tmp_path, arxiv_server, smtp_server
):
    etc = tmp_path / "etc" / "daily-papers"
    etc.mkdir(parents=True)
    settings = {
        "arxiv": {"api_url": arxiv_server.url, "delay_seconds": 0, "timeout_seconds": 5},
        "keywords": [{"name": "MLLM"}],
        "store": {"path": "state/newsletter.json"},
        "archive": {"path": "site/README.md"},  # made: the folder above it exists
        "digest": {"from": "Daily Papers <papers@example.org>"},
        "smtp": {"host": "127.0.0.1", "port": smtp_server.port, "timeout_seconds": 5},
    }
    (etc / "settings.toml").write_text(tomli_w.dumps(settings))
    arxiv_server.add(entry("2502.00001", "MLLM one"))
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    newsletter = [
        str(installed / "bin" / "newsletter"),
        "--settings",
        "../../etc/daily-papers/settings.toml",
    ]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
        return subprocess.run(
            [*newsletter, *args], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60
        )

    where = subprocess.run(
        [str(installed / "bin" / "python"), "-c", "import newsletter; print(newsletter.__file__)"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(installed)), f"not the installed package: {where}"
    subscribed = run("subscribe", "ann@example.org", "--keyword", "MLLM")
    assert subscribed.returncode == 0, subscribed.stderr
    result = run("run", "--once")
    assert result.returncode == 0, result.stdout + result.stderr
    (digest,) = smtp_server.messages
    assert digest.to == "ann@example.org" and "MLLM one" in digest.message["Subject"] + str(
        digest.message
    )
    assert "MLLM one" in (etc / "site" / "README.md").read_text()
    assert (etc / "state" / "newsletter.papers.json").exists()
    assert not (elsewhere / "state").exists(), "nothing written where it was started"


def test_init_then_a_cycle_works_from_the_installed_command(
    installed, tmp_path, arxiv_server, smtp_server
):
    newsletter = str(installed / "bin" / "newsletter")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    folder = tmp_path / "lists" / "lab"
    made = subprocess.run(
        [newsletter, "init", str(folder)], env=env, capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    assert "Next:" in made.stdout and "install-service" in made.stdout
    assert (folder / "subscribers").is_dir() and (folder / "archive").is_dir()
    shipped = (REPO / "settings.toml").read_text()
    assert (folder / "settings.toml").read_text() == shipped
    again = subprocess.run(
        [newsletter, "init", str(folder)], env=env, capture_output=True, text=True
    )
    assert again.returncode == 2 and "already exists; nothing was changed" in again.stderr

    # What the admin edits: the keywords, the sender, the mail server (here, the test ones).
    data = tomllib.loads(shipped)
    data["arxiv"] |= {"api_url": arxiv_server.url, "delay_seconds": 0}
    data["keywords"] = [{"name": "MLLM"}]
    data["smtp"] |= {"host": "127.0.0.1", "port": smtp_server.port}
    (folder / "settings.toml").write_text(tomli_w.dumps(data))
    arxiv_server.add(entry("2502.00001", "MLLM one"))
    run = [newsletter, "--settings", str(folder / "settings.toml")]
    subprocess.run([*run, "subscribe", "ann@example.org", "--keyword", "mllm"], env=env, check=True)
    result = subprocess.run([*run, "run", "--once"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [m.to for m in smtp_server.messages] == ["ann@example.org"]
    assert "MLLM one" in (folder / "archive" / "README.md").read_text()
