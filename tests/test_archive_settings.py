"""The [archive] keys for rotation, feeds and git publishing: defaults and one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.config import ConfigError, load_settings

MINIMAL = '[[keywords]]\nname = "MLLM"\n'


def load(tmp_path: Path, text: str):
    path = tmp_path / "settings.toml"
    path.write_text(text)
    return load_settings(path)


def test_everything_new_is_off_by_default(tmp_path):
    archive = load(tmp_path, MINIMAL).archive
    assert (archive.rotate, archive.feeds, archive.git, archive.push) == (False,) * 4
    assert archive.remote == "origin" and archive.branch == ""
    assert archive.git_author == "Daily Papers <daily-papers@localhost>"


def test_publishing_keys_are_read(tmp_path):
    archive = load(
        tmp_path,
        MINIMAL + "[archive]\nrotate = true\nfeeds = true\ngit = true\npush = true\n"
        'remote = "upstream"\nbranch = "gh-pages/archive"\n'
        'git_author = "  Papers Bot   <bot@papers.example.org> "\n',
    ).archive
    assert (archive.rotate, archive.feeds, archive.git, archive.push) == (True,) * 4
    assert (archive.remote, archive.branch) == ("upstream", "gh-pages/archive")
    assert archive.git_author == "Papers Bot <bot@papers.example.org>"


BAD = [
    ('rotate = "yes"', '[archive] rotate must be true or false, got "yes"'),
    ("feeds = 1", "[archive] feeds must be true or false, got 1"),
    ("push = true", "[archive] push must be false unless git = true"),
    (
        'git_author = "bot@example.org"',
        "[archive] git_author must be 'Name <address>', like 'Daily Papers "
        '<daily-papers@localhost>\', got "bot@example.org"',
    ),
    ('git_author = "<bot@example.org>"', "[archive] git_author must be 'Name <address>'"),
    ('git_author = "Bot <not an address>"', "[archive] git_author must be 'Name <address>'"),
    ('git_author = "A <b> <c@d>"', "[archive] git_author must be 'Name <address>'"),
    ('remote = "--upload-pack=evil"', "[archive] remote must be a remote name like origin"),
    ('remote = ""', "[archive] remote must be a non-empty string"),
    ('branch = "-f"', '[archive] branch must be a branch name like main, got "-f"'),
    ('branch = "a..b"', "[archive] branch must be a branch name like main"),
    ('branch = "main lines"', "[archive] branch must be a branch name like main"),
    ('branch = "main.lock"', "[archive] branch must be a branch name like main"),
    ('branch = "main/"', "[archive] branch must be a branch name like main"),
    ('branch = "main\\n"', "[archive] branch must be a branch name like main"),
    ("gti = true", "[archive] has unknown key 'gti'"),
]


@pytest.mark.parametrize("line, message", BAD, ids=[line for line, _ in BAD])
def test_bad_archive_keys_give_one_line(tmp_path, line, message):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, MINIMAL + "[archive]\n" + line + "\n")
    assert str(caught.value).startswith(f"{tmp_path / 'settings.toml'}: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_keywords_sharing_a_file_name_are_refused_only_when_files_are_made(tmp_path):
    keywords = '[[keywords]]\nname = "Reward Model"\n[[keywords]]\nname = "reward-model"\n'
    assert load(tmp_path, keywords).keyword_names == ("Reward Model", "reward-model")
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, keywords + "[archive]\nfeeds = true\n")
    assert str(caught.value).endswith(
        '[[keywords]] #2 name "reward-model" gives the same archive file name '
        "'reward-model' as keyword #1; rename one of them"
    )
