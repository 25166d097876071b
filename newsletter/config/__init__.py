"""settings.toml → frozen dataclasses: the types, the TOML checks, each section, loading."""

from .load import SETTINGS_ENV, load_settings, parse_settings, settings_path
from .settings import (
    ArchiveSettings,
    ArxivSettings,
    DigestSettings,
    InboxSettings,
    Keyword,
    ScheduleSettings,
    SecuritySettings,
    Settings,
    SmtpSettings,
    StoreSettings,
    SubscribersSettings,
    WebSettings,
)
from .toml_table import ConfigError

__all__ = [
    "SETTINGS_ENV",
    "ArchiveSettings",
    "ArxivSettings",
    "ConfigError",
    "DigestSettings",
    "InboxSettings",
    "Keyword",
    "ScheduleSettings",
    "SecuritySettings",
    "Settings",
    "SmtpSettings",
    "StoreSettings",
    "SubscribersSettings",
    "WebSettings",
    "load_settings",
    "parse_settings",
    "settings_path",
]
