"""settings.toml: defaults, and one clear line for every mistake."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO, run_cli

from newsletter.config import ConfigError, load_settings

MINIMAL = '[[keywords]]\nname = "MLLM"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(text)
    return path


def test_shipped_settings_hold_the_seed_keywords_with_safe_defaults():
    settings = load_settings(REPO / "settings.toml")
    assert settings.keyword_names == ("Hallucination", "MLLM", "Reasoning", "Reward Model")
    assert settings.arxiv.delay_seconds == 3
    assert settings.arxiv.api_url == "https://export.arxiv.org/api/query"
    assert settings.archive.max_papers == 100


def test_every_key_of_the_shipped_settings_has_a_comment():
    lines = (REPO / "settings.toml").read_text().splitlines()
    for number, line in enumerate(lines):
        if "=" in line and not line.lstrip().startswith("#") and not line.startswith("name ="):
            assert lines[number - 1].lstrip().startswith("#"), f"no comment above: {line}"


def test_defaults_and_relative_paths(tmp_path, monkeypatch):
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    settings = load_settings(write(tmp_path, MINIMAL))
    assert settings.arxiv.categories == ("cs", "stat")
    assert settings.arxiv.max_results == 100
    assert settings.store.path == tmp_path / "state" / "newsletter.json"
    assert settings.archive.path == tmp_path / "archive" / "README.md"


def test_store_goes_to_the_systemd_state_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/newsletter")
    settings = load_settings(write(tmp_path, MINIMAL))
    assert settings.store.path == Path("/var/lib/newsletter/state/newsletter.json")
    assert settings.archive.path == tmp_path / "archive" / "README.md"


BAD = [
    (
        '[arxiv]\ndelay_seconds = "fast"\n' + MINIMAL,
        '[arxiv] delay_seconds must be a number ≥ 0, got "fast"',
    ),
    (
        "[arxiv]\ndelay_seconds = -1\n" + MINIMAL,
        "[arxiv] delay_seconds must be a number ≥ 0, got -1",
    ),
    ("[arxiv]\nmax_results = 0\n" + MINIMAL, "[arxiv] max_results must be an integer ≥ 1, got 0"),
    (
        "[arxiv]\nmax_results = 1.5\n" + MINIMAL,
        "[arxiv] max_results must be an integer ≥ 1, got 1.5",
    ),
    ("[arxiv]\nretries = true\n" + MINIMAL, "[arxiv] retries must be an integer ≥ 0, got true"),
    (
        "[arxiv]\ntimeout_seconds = 0\n" + MINIMAL,
        "[arxiv] timeout_seconds must be a number ≥ 0.1, got 0",
    ),
    ('[arxiv]\npage_size = "10"\n' + MINIMAL, '[arxiv] page_size must be an integer ≥ 1, got "10"'),
    (
        '[arxiv]\ncategories = "cs"\n' + MINIMAL,
        '[arxiv] categories must be a list of non-empty strings, got "cs"',
    ),
    (
        '[arxiv]\napi_url = "ftp://x/api"\n' + MINIMAL,
        '[arxiv] api_url must be an http:// or https:// URL, got "ftp://x/api"',
    ),
    ("[arxiv]\ndelay_second = 3\n" + MINIMAL, "[arxiv] has unknown key 'delay_second'"),
    ("arxiv = 3\n" + MINIMAL, "[arxiv] must be a table, got 3"),
    ("[store]\n", "[[keywords]] must list at least one keyword, got none"),
    ("keywords = []\n", "[[keywords]] must list at least one keyword, got none"),
    ('[[keywords]]\nquery = "x"\n', "[[keywords]] #1 name must be a non-empty string, got nothing"),
    ('[[keywords]]\nname = "  "\n', '[[keywords]] #1 name must be a non-empty string, got "  "'),
    (
        '[[keywords]]\nname = "\\"\\""\n',
        "[[keywords]] #1 name must be a name containing a letter or digit",
    ),
    (
        '[[keywords]]\nname = "MLLM"\n[[keywords]]\nname = "mllm"\n',
        '[[keywords]] #2 name must be unique (keyword #1 has it too), got "mllm"',
    ),
    (
        '[[keywords]]\nname = "A"\nquery = "ti:(x"\n',
        '[[keywords]] #1 query must be a query with balanced parentheses, got "ti:(x"',
    ),
    (
        '[[keywords]]\nname = "A"\nquery = "ti:\\"x"\n',
        "[[keywords]] #1 query must be a query with balanced double quotes",
    ),
    (
        '[[keywords]]\nname = "A"\nexclude = "survey"\n',
        '[[keywords]] #1 exclude must be a list of non-empty strings, got "survey"',
    ),
    ('[[keywords]]\nname = "A"\ncolour = "red"\n', "[[keywords]] #1 has unknown key 'colour'"),
    (MINIMAL + "[archive]\nmax_papers = 0\n", "[archive] max_papers must be an integer ≥ 1, got 0"),
    (MINIMAL + "[store]\npath = 5\n", "[store] path must be a non-empty string, got 5"),
    (MINIMAL + '[stroe]\npath = "x"\n', "top level has unknown key 'stroe'"),
    ("[[keywords]\n", "not valid TOML"),
]


@pytest.mark.parametrize("text, message", BAD, ids=[m for _, m in BAD])
def test_bad_settings_give_one_line_naming_file_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    line = str(caught.value)
    assert line.startswith(f"{path}: ")
    assert message in line
    assert "\n" not in line


def test_names_with_colons_and_parentheses_are_fine(tmp_path):
    settings = load_settings(write(tmp_path, '[[keywords]]\nname = "RL: (Reward) Model"\n'))
    assert settings.keyword_names == ("RL: (Reward) Model",)


def test_cli_reports_bad_settings_with_exit_code_2(tmp_path):
    path = write(tmp_path, "[arxiv]\nretries = -1\n" + MINIMAL)
    result = run_cli("--settings", str(path), "run", "--once")
    assert result.returncode == 2
    assert result.stderr == f"{path}: [arxiv] retries must be an integer ≥ 0, got -1\n"
    assert not (tmp_path / "state").exists(), "nothing was done"


def test_settings_from_environment_variable(tmp_path):
    path = write(tmp_path, "[arxiv]\nretries = -1\n" + MINIMAL)
    result = run_cli("archive", env={"NEWSLETTER_SETTINGS": str(path)})
    assert result.returncode == 2 and str(path) in result.stderr


def test_missing_settings_file(tmp_path):
    result = run_cli("--settings", str(tmp_path / "nope.toml"), "archive")
    assert result.returncode == 2
    assert "nope.toml: settings file not found" in result.stderr
