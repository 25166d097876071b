"""[inbox] settings: where mail is read from, with one clear line for every mistake."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO

from newsletter.config import ConfigError, load_settings

KEYWORDS = '[[keywords]]\nname = "MLLM"\n'


def load(tmp_path: Path, text: str):
    path = tmp_path / "settings.toml"
    path.write_text(KEYWORDS + text)
    return load_settings(path)


def test_without_an_inbox_table_mail_commands_are_off(tmp_path):
    settings = load(tmp_path, "")
    assert settings.inbox is None
    assert settings.reply_address == "daily-papers@example.org"


def test_maildir_defaults(tmp_path):
    settings = load(
        tmp_path, '[digest]\nfrom = "P <p@example.org>"\n[inbox]\nmaildir = "Maildir"\n'
    )
    inbox = settings.inbox
    assert inbox.maildir == tmp_path / "Maildir"
    assert inbox.address == "p@example.org", "the digest's address unless set"
    assert (inbox.poll_seconds, inbox.confirm_hours, inbox.max_replies_per_hour) == (300, 48, 5)
    assert settings.reply_address == "p@example.org"


def test_imap_defaults_to_tls_on_993(tmp_path):
    settings = load(
        tmp_path,
        '[inbox]\naddress = "In@Example.ORG"\nimap_host = "mail.example.org"\n'
        'username = "papers"\npassword_env = "IMAP_PASSWORD"\n',
    )
    inbox = settings.inbox
    assert (inbox.security, inbox.imap_port, inbox.folder) == ("tls", 993, "INBOX")
    assert settings.reply_address == "In@example.org"


def test_the_commented_inbox_example_in_the_shipped_settings_is_valid(tmp_path):
    text = (REPO / "settings.toml").read_text()
    block = re.search(r"^# \[inbox\]\n(?:#.*\n)+", text, re.M)
    assert block, "settings.toml documents [inbox]"
    example = "\n".join(
        line[2:] for line in block.group(0).splitlines() if not line.startswith("# #")
    )
    path = tmp_path / "settings.toml"
    path.write_text(text.replace(block.group(0), example + "\n"))
    settings = load_settings(path)
    assert settings.inbox is not None and settings.inbox.maildir is not None


BAD = [
    ("[inbox]\n", "[inbox] needs where mail is read from: maildir = PATH, or imap_host"),
    (
        '[inbox]\nmaildir = "M"\nimap_host = "h"\n',
        "[inbox] set either maildir or imap_host, not both",
    ),
    ('[inbox]\nimap_host = "h"\n', "[inbox] username must be set when imap_host is set"),
    (
        '[inbox]\nimap_host = "h"\nusername = "u"\n',
        "[inbox] password_env must be set (or password_file) when imap_host is set",
    ),
    (
        '[inbox]\nmaildir = "M"\nusername = "u"\n',
        "[inbox] username must be left out when mail is read from maildir (it is for IMAP), "
        'got "u"',
    ),
    (
        '[inbox]\nmaildir = "M"\naddress = "a, b@x.org"\n',
        "[inbox] address must be one bare address like papers@example.org",
    ),
    ('[inbox]\nmaildir = "M"\nconfirm_hours = 0\n', "[inbox] confirm_hours must be a number ≥ 1"),
    (
        '[inbox]\nmaildir = "M"\nmax_replies_per_hour = 0\n',
        "[inbox] max_replies_per_hour must be an integer ≥ 1, got 0",
    ),
    ('[inbox]\nmaildir = "M"\npoll_seconds = "5m"\n', "[inbox] poll_seconds must be a number ≥ 1"),
    (
        '[inbox]\nimap_host = "h"\nusername = "u"\npassword_env = "P"\nsecurity = "ssl"\n',
        '[inbox] security must be none | starttls | tls, got "ssl"',
    ),
    (
        '[inbox]\nimap_host = "h"\nusername = "u"\npassword_env = "P"\nfolder = "Bo\\"x"\n',
        "[inbox] folder must be an ASCII folder name without quotes",
    ),
    ('[inbox]\nmaildir = "M"\npoll = 5\n', "[inbox] has unknown key 'poll'"),
    ('[inbox]\nmail_dir = "M"\n', "[inbox] has unknown key 'mail_dir'"),
]


@pytest.mark.parametrize("text, message", BAD, ids=[m for _, m in BAD])
def test_bad_inbox_settings_give_one_line(tmp_path, text, message):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    line = str(caught.value)
    assert line.startswith(f"{tmp_path / 'settings.toml'}: ") and "\n" not in line
    assert message in line
