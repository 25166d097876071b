"""Finding settings.toml, reading it, and building `Settings` section by section.

Every mistake in the file stops the program before any work is done, with one
line that names the file, the key and what was expected, so an admin can fix it
without reading our source.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from .sections import (
    archive_section,
    arxiv_section,
    check_slugs,
    digest_section,
    inbox_section,
    keywords_section,
    schedule_section,
    security_section,
    smtp_section,
    store_section,
    subscribers_section,
    web_section,
)
from .settings import Settings
from .toml_table import ConfigError, TomlTable

DEFAULT_SETTINGS = "settings.toml"
SETTINGS_ENV = "NEWSLETTER_SETTINGS"


def settings_path(cli_value: str | None) -> Path:
    """--settings wins over $NEWSLETTER_SETTINGS, which wins over ./settings.toml."""
    return Path(cli_value or os.environ.get(SETTINGS_ENV) or DEFAULT_SETTINGS)


def load_settings(path: Path) -> Settings:
    """Read and validate settings.toml; raises ConfigError with one line for the admin."""
    file = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{file}: settings file not found (use --settings PATH or ${SETTINGS_ENV})"
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{file}: cannot read settings: {err}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{file}: not valid TOML: {err}") from None
    return parse_settings(raw, path)


def parse_settings(raw: dict[str, Any], path: Path) -> Settings:
    file = str(path)
    base = path.parent
    # Under systemd, StateDirectory= sets $STATE_DIRECTORY (colon-separated if several).
    state_dir = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    state_base = Path(state_dir) if state_dir else base

    top = TomlTable(file, "top level", raw)
    arxiv = arxiv_section(top.table("arxiv"))
    keywords = keywords_section(file, top.value("keywords", None, "", lambda v: True))
    store = store_section(top.table("store"), state_base)
    archive = archive_section(top.table("archive"), base)
    check_slugs(file, keywords, archive)
    subscribers = subscribers_section(top.table("subscribers"), base)
    digest = digest_section(top.table("digest"), base)
    smtp = smtp_section(top.table("smtp"), base)
    web = web_section(top.table("web"), store, state_base)
    inbox = inbox_section(top.table("inbox"), base, digest) if "inbox" in raw else None
    schedule = schedule_section(top.table("schedule"))
    security = security_section(top.table("security"))
    top.finish()
    return Settings(
        file=path,
        arxiv=arxiv,
        keywords=keywords,
        store=store,
        archive=archive,
        subscribers=subscribers,
        digest=digest,
        smtp=smtp,
        web=web,
        schedule=schedule,
        inbox=inbox,
        security=security,
    )
